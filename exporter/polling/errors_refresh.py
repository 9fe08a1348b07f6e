"""When a running job's errors listing is read again (a source's ``errors_refresh``).

Opt in, as each refresh reads every page of the listing at the vendor's
expense: a job is refreshed once its error count has grown since the last
listing, and at most every ``errors_refresh`` seconds, so a six-hour import
shows its error codes as they appear rather than only at its end.  A refresh
that fails is tried again after the same interval, never sooner.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from exporter.clock import Clock
from exporter.jobs.entry import JobView
from exporter.jobs.keys import JobKey
from exporter.jobs.table import JobTable
from exporter.model import Snapshot
from exporter.polling.errors_read import ErrorsRead
from exporter.polling.outcomes import Deferred, PollFailed
from exporter.polling.runtime import PollClient, Runtime

__all__ = ["ErrorsRefresh"]

LOG = logging.getLogger(__name__)
# Reads a listing's pages into an ErrorsRead through the source's gate (the poller's).
ReadPages = Callable[[Runtime[PollClient], ErrorsRead], Awaitable[None]]
# The per-job memory is swept of jobs no longer watched once it holds this many.
SWEEP_MIN = 64


class ErrorsRefresh:
    """Per running job: when its listing was last asked for, and how many errors it listed.

    A refresh the gate defers (the job request just used a rate-capped
    source's slot) is kept, and the job's next poll goes on with it instead of
    the job request, so a refresh finishes under any rate cap.
    """

    def __init__(self, table: JobTable, clock: Clock) -> None:
        self._table = table
        self._clock = clock
        # key -> (the entry, monotonic time asked, error items listed): a job watched
        # anew under the same key starts afresh.
        self._last: dict[JobKey, tuple[JobView, float, int]] = {}
        self._kept: dict[JobKey, ErrorsRead] = {}
        self._sweep_at = SWEEP_MIN

    async def run(
        self, entry: JobView, src: Runtime[PollClient], snap: Snapshot, read_pages: ReadPages
    ) -> float | None:
        """Read a running job's listing again, if its source asks for it and its errors grew.

        Returns when to come back sooner than the interval (a page deferred), or
        ``None``.  Its requests go through the gate like any other; one that fails
        leaves the last complete read on show and is tried again after the interval.
        """
        now = self._clock.monotonic()
        if not self.due(entry, snap, now, src.client.source.errors_refresh):
            return None
        self.asked(entry, now)
        read = ErrorsRead(entry, snap, self._clock.time(), src.client.source, refresh=True)
        return await self._read(entry, src, read, read_pages)

    async def resume(
        self, entry: JobView, src: Runtime[PollClient], read_pages: ReadPages
    ) -> float | None:
        """Go on with a refresh the gate deferred; ``None`` when there is none to go on with."""
        read = self._kept.pop(entry.key, None)
        if read is None or read.entry is not entry or read.source is not src.client.source:
            return None
        later = await self._read(entry, src, read, read_pages)
        return src.interval if later is None else later

    async def _read(
        self, entry: JobView, src: Runtime[PollClient], read: ErrorsRead, read_pages: ReadPages
    ) -> float | None:
        key = entry.key
        try:
            await read_pages(src, read)
        except Deferred as deferred:
            if self._table.get(key) is entry:
                self._kept[key] = read
            return deferred.delay
        except PollFailed as exc:
            LOG.debug("errors of %s/%s: refresh failed (%s)", *key, exc.reason)
            return None
        if self._table.get(key) is entry:
            self._table.record_errors(key, tuple(sorted(read.totals.items())))
            at = self._last[key][1] if key in self._last else self._clock.monotonic()
            self._last[key] = (entry, at, read.snap.error_items or 0)
        return None

    def due(self, entry: JobView, snap: Snapshot, now: float, every: float | None) -> bool:
        """Whether to read the listing of a job whose request just said ``snap``."""
        if every is None or snap.status.finished or not snap.error_items:
            return False
        last = self._last.get(entry.key)
        if last is None or last[0] is not entry:
            return True
        _, at, listed = last
        return snap.error_items > listed and now - at >= every

    def asked(self, entry: JobView, now: float) -> None:
        """A refresh starts at ``now``: whatever comes of it, the next waits its interval."""
        last = self._last.get(entry.key)
        listed = last[2] if last is not None and last[0] is entry else 0
        self._last[entry.key] = (entry, now, listed)
        if len(self._last) > self._sweep_at:
            table = self._table
            self._last = {k: v for k, v in self._last.items() if table.get(k) is v[0]}
            self._kept = {k: r for k, r in self._kept.items() if table.get(k) is r.entry}
            self._sweep_at = max(SWEEP_MIN, 2 * len(self._last))

    def forget(self, key: JobKey) -> None:
        """The job finished: its final listing is read as for every job."""
        self._last.pop(key, None)
        self._kept.pop(key, None)
