"""One poll of one job: ask the source politely, parse, and record the outcome.

This is the only place that turns HTTP outcomes into job state.  It knows the
:class:`~exporter.vendors.base.ApiSpec` contract but no vendor by name, and tells
the scheduler when the job wants polling again (``None``: finished, never).
It talks HTTP only through :class:`~exporter.polling.asking.SourceRequests`
(the gate and the source's manners) over each source's
:class:`~exporter.polling.runtime.PollClient` (the pool's real clients, or a
test's fake) and changes a job only through the table's methods.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping

from exporter.clock import Clock
from exporter.jobs.entry import JobView
from exporter.jobs.keys import JobKey
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status, VendorError
from exporter.polling.asking import PollStats, SourceRequests
from exporter.polling.errors_read import MAX_ERROR_PAGES, ErrorsRead, read_errors
from exporter.polling.errors_refresh import ErrorsRefresh
from exporter.polling.gate import Backoff
from exporter.polling.outcomes import Deferred, PollFailed
from exporter.polling.runtime import PollClient, Runtime

LOG = logging.getLogger(__name__)

# A job created a moment ago may not be visible yet: only this many 404s in a row mean gone.
NOT_FOUND_AFTER = 3
# Reads kept for jobs dropped mid-read are swept once there are more than this many.
SWEEP_MIN = 64
# Poll failures that are the source's manners, not the listing's: they do not wear a read out.
WAITS = frozenset({"rate_limited", "unauthorized"})
Src = Runtime[PollClient]


class Poller:
    """Polls jobs of every source into the job table."""

    def __init__(
        self,
        sources: Mapping[str, Src],
        table: JobTable,
        *,
        clock: Clock,
        rng: random.Random,
        stats: PollStats,
        max_error_pages: int = MAX_ERROR_PAGES,
    ) -> None:
        self._sources = sources
        self._table = table
        self._clock = clock
        self._rng = rng
        self._stats = stats
        self._ask = SourceRequests(clock=clock, stats=stats)
        self._job_backoff = Backoff(base=1.0, cap=900.0)
        self._reads: dict[JobKey, ErrorsRead] = {}
        self._sweep_at = SWEEP_MIN
        self._max_error_pages = max_error_pages
        self._refresh = ErrorsRefresh(table, clock)

    async def poll(self, key: JobKey) -> float | None:
        """Poll ``key`` once; the delay until the next poll, or ``None`` to stop."""
        entry = self._table.get(key)
        src = self._sources.get(key[0])
        if entry is None or src is None:
            self._reads.pop(key, None)
            if src is not None and src.plan is not None:
                src.plan.forget(key[1])
            return None
        plan = src.plan
        if plan is not None:
            plan.started(key[1], self._clock.monotonic())
        try:
            delay = await self._poll(entry, src)
        except Deferred as deferred:
            return deferred.delay
        except PollFailed as failed:
            # Dropped, or replaced (its source reloaded to another API), while in flight.
            if self._table.get(key) is not entry:
                return None
            failures = self._table.record_failure(key, failed.reason)
            self._stats.poll_failed(key[0], failed.reason)
            delay = failed.retry_in
            if plan is not None:
                # The plan notes the failure; a Retry-After or backoff still decides when.
                backoff = self._job_backoff.delay(failures, self._rng)
                planned = plan.failed(key[1], now=self._clock.monotonic(), backoff=backoff)
                return planned if delay is None else delay
            if delay is None:
                delay = max(src.interval, self._job_backoff.delay(failures, self._rng))
            return delay
        return delay

    async def _poll(self, entry: JobView, src: Src) -> float | None:
        key = entry.key
        if (later := await self._refresh.resume(entry, src, self._read)) is not None:
            return later  # a refresh the rate cap deferred went on instead of the job request
        read = self._reads.pop(key, None)
        if read is None or read.entry is not entry or read.source is not src.client.source:
            started = await self._start(entry, src)
            if not isinstance(started, ErrorsRead):
                return started
            read = started
        return await self._finish(entry, src, read)

    async def _start(self, entry: JobView, src: Src) -> ErrorsRead | float | None:
        """The job request (or a finish saved before a restart): a listing to read, or the delay."""
        key = entry.key
        if entry.pending_finish is not None and entry.pending_finish_at is not None:
            # Seen finished before a restart: read its listing afresh, not the job again.
            pending, seen_at = entry.pending_finish, entry.pending_finish_at
            return ErrorsRead(entry, pending, seen_at, src.client.source)
        snap = await self._job(entry, src)
        if snap is None:
            return None
        if not src.spec.reads_errors(snap):
            delay = self._succeeded(entry, src, snap)
            if delay is not None:
                later = await self._refresh.run(entry, src, snap, self._read)
                return delay if later is None else later
            return delay
        self._refresh.forget(key)
        read = ErrorsRead(entry, snap, self._clock.time(), src.client.source)
        self._table.record_pending_finish(key, snap, read.seen_at)
        return read

    async def _finish(self, entry: JobView, src: Src, read: ErrorsRead) -> float | None:
        """Read the listing on from where ``read`` stands, then record the job finished."""
        key = entry.key
        try:
            await self._read(src, read)
        except Deferred:
            # The job request (or an earlier page) used the rate slot, or the listing is not
            # ready: the next poll goes on from the page it could not read, not restarting.
            self._keep(key, read)
            raise
        except PollFailed as failed:
            if self._table.get(key) is not entry:
                raise
            now = self._clock.monotonic()
            # A Retry-After or refused credentials say nothing of the listing: only the
            # retention bounds how long a read waits for them.
            if failed.reason not in WAITS:
                read.failed(now)
            if not read.give_up(now, self._clock.time(), self._table.retention):
                self._keep(key, read)  # resumed from the failed page, after the usual backoff
                raise
            self._stats.poll_failed(key[0], failed.reason)
            LOG.warning(
                "errors of %s/%s: listing failed %d times in a row (%s); "
                "recording the job finished with the %d pages read",
                *key,
                read.failures,
                failed.reason,
                read.pages,
            )
        if self._table.get(key) is not entry:
            return None
        known = entry.errors_by_code
        if known is None or sum(read.totals.values()) >= sum(n for _, n in known):
            # A read given up part-way never replaces a fuller one (a refresh's).
            self._table.record_errors(key, tuple(sorted(read.totals.items())))
        return self._succeeded(entry, src, read.snap, read.seen_at)

    async def _read(self, src: Src, read: ErrorsRead) -> None:
        """Read the listing's pages into ``read``, each through the gate."""
        await read_errors(
            src, read, self._ask.get, now=self._clock.time, within=self._table.retention,
            max_pages=self._max_error_pages,
        )  # fmt: skip

    async def _job(self, entry: JobView, src: Src) -> Snapshot | None:
        """The job's snapshot from its job request; ``None`` if it was dropped meanwhile."""
        source, job_id = key = entry.key
        resp = await self._ask.get(src, src.client.url(src.client.source.path, job_id))
        if self._table.get(key) is not entry:  # dropped or replaced while we waited
            return None
        if resp.status == 404:
            streak = self._table.not_found(key)
            if streak < NOT_FOUND_AFTER:
                LOG.debug("job %s/%s: 404 (%d in a row)", source, job_id, streak)
                raise PollFailed("not_found", src.interval)
            return Snapshot(Status.NOT_FOUND, "http_404")
        if resp.status in src.spec.ok_statuses:
            try:
                return src.spec.parse_job(resp)
            except VendorError as exc:
                LOG.warning("job %s/%s: %s", source, job_id, exc)
                raise PollFailed(exc.reason) from None
        detail = src.spec.error_text(resp) or f"HTTP {resp.status}"
        LOG.warning("job %s/%s: unexpected answer: %s", source, job_id, detail)
        raise PollFailed("unexpected_status")

    def _succeeded(
        self, entry: JobView, src: Src, snap: Snapshot, seen_at: float | None = None
    ) -> float | None:
        # A deferred errors read finishes later: the snapshot is as of its job request,
        # and the retention counts from now, when its series are complete.
        now = self._clock.time()
        at = now if seen_at is None else seen_at
        entry = self._table.record_success(entry.key, snap, at, expires_from=now)
        plan = src.plan
        if plan is None:
            return None if entry.finished else src.interval
        source, job_id = entry.key
        mono = self._clock.monotonic()
        if entry.finished:
            plan.finished(job_id, mono - (now - at))
            return None
        if plan.needs_sweep:
            table = self._table
            plan.sweep(lambda other: table.get((source, other)) is not None)
        return plan.succeeded(job_id, snap, now=mono, wall=now, first_seen=entry.first_seen)

    def _keep(self, key: JobKey, read: ErrorsRead) -> None:
        if self._table.get(key) is not read.entry:
            return  # a poll of a job replaced meanwhile must not take the new one's read
        self._reads[key] = read
        # A job dropped while its read waits is never polled again to pop it: sweep now and then.
        if len(self._reads) > self._sweep_at:
            table = self._table
            self._reads = {k: r for k, r in self._reads.items() if table.get(k) is r.entry}
            self._sweep_at = max(SWEEP_MIN, 2 * len(self._reads))
