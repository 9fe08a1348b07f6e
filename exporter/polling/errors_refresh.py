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
    """Per running job: when its listing was last asked for, and how many errors it listed."""

    def __init__(self, table: JobTable, clock: Clock) -> None:
        self._table = table
        self._clock = clock
        self._last: dict[JobKey, tuple[float, int]] = {}  # key -> (monotonic time, error items)
        self._sweep_at = SWEEP_MIN

    async def run(
        self, entry: JobView, src: Runtime[PollClient], snap: Snapshot, read_pages: ReadPages
    ) -> None:
        """Read a running job's listing again, if its source asks for it and its errors grew.

        Its requests go through the gate like any other; one that fails or is
        deferred leaves the last complete read on show and is tried again later.
        """
        key, now = entry.key, self._clock.monotonic()
        if not self.due(key, snap, now, src.client.source.errors_refresh):
            return
        self.asked(key, now)
        read = ErrorsRead(entry, snap, self._clock.time())
        try:
            await read_pages(src, read)
        except (Deferred, PollFailed) as exc:
            LOG.debug("errors of %s/%s: refresh not done (%r)", *key, exc)
            return
        if self._table.get(key) is entry:
            self._table.record_errors(key, tuple(sorted(read.totals.items())))
            self.listed(key, snap)

    def due(self, key: JobKey, snap: Snapshot, now: float, every: float | None) -> bool:
        """Whether to read the listing of a job whose request just said ``snap``."""
        if every is None or snap.status.finished or not snap.error_items:
            return False
        last = self._last.get(key)
        if last is None:
            return True
        at, listed = last
        return snap.error_items > listed and now - at >= every

    def asked(self, key: JobKey, now: float) -> None:
        """A refresh starts at ``now``: whatever comes of it, the next waits its interval."""
        listed = self._last.get(key, (0.0, 0))[1]
        self._last[key] = (now, listed)
        if len(self._last) > self._sweep_at:
            self._last = {k: v for k, v in self._last.items() if k in self._table}
            self._sweep_at = max(SWEEP_MIN, 2 * len(self._last))

    def listed(self, key: JobKey, snap: Snapshot) -> None:
        """The refresh read the whole listing of a job whose request said ``snap``."""
        at = self._last.get(key, (0.0, 0))[0]
        self._last[key] = (at, snap.error_items or 0)

    def forget(self, key: JobKey) -> None:
        """The job finished: its final listing is read as for every job."""
        self._last.pop(key, None)
