"""The job table: every watched job's state, changed only through its methods.

The table is the one owner of :class:`~exporter.jobs.entry.JobEntry` objects:
the poller records what a poll said, the watchlist adds, relabels, restores
and removes jobs, and readers get a read-only
:class:`~exporter.jobs.entry.JobView`.  Whoever keeps something derived from a
job (its exposition lines, its saved record) subscribes a
:class:`TableListener` and is told of every change and every removal.  A
finished job is dropped once its retention has passed (:meth:`JobTable.expire`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Protocol

from exporter.jobs.entry import JobEntry, JobView, Saved
from exporter.jobs.keys import JobKey, Labels, Origin
from exporter.model import Snapshot

__all__ = ["JobEntry", "JobKey", "JobTable", "JobView", "TableListener"]


class TableListener(Protocol):
    """Told of every change to a job and every removal, in the order they happen."""

    def changed(self, entry: JobView) -> None:
        """``entry`` was added or changed in a way that shows (its series, its record)."""
        ...

    def removed(self, key: JobKey) -> None:
        """The job ``key`` is no longer watched."""
        ...


class JobTable:
    """The watched jobs and what their last polls said."""

    def __init__(self, *, retention: float) -> None:
        self._jobs: dict[JobKey, JobEntry] = {}
        self._retention = retention
        self._expiry: list[tuple[float, JobKey]] = []
        self._per_source: dict[str, int] = {}
        self._counts = MappingProxyType(self._per_source)
        # Configured sources: each gets a watched-jobs series, 0 while it has no job.
        self._sources: frozenset[str] = frozenset()
        self._listeners: list[TableListener] = []

    def subscribe(self, listener: TableListener) -> None:
        """Tell ``listener`` of every change and removal from now on."""
        self._listeners.append(listener)

    @property
    def retention(self) -> float:
        """How long a finished job keeps its series; a change applies to jobs finishing later."""
        return self._retention

    @retention.setter
    def retention(self, seconds: float) -> None:
        self._retention = seconds

    def __contains__(self, key: object) -> bool:
        return key in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[JobView]:
        return iter(self._jobs.values())

    def get(self, key: JobKey) -> JobView | None:
        """The entry for ``key``, if watched."""
        return self._jobs.get(key)

    def set_sources(self, names: frozenset[str]) -> None:
        """The configured sources, shown with ``batchjob_exporter_watched_jobs`` even when empty."""
        self._sources = names

    @property
    def sources(self) -> frozenset[str]:
        """The configured sources (a source with jobs may have left the config)."""
        return self._sources

    @property
    def counts(self) -> Mapping[str, int]:
        """How many jobs each source with jobs has, as a live read-only view."""
        return self._counts

    def count(self, source: str) -> int:
        """How many jobs of ``source`` are watched, in constant time."""
        return self._per_source.get(source, 0)

    def add(
        self, key: JobKey, api: str, labels: Labels = (), origin: Origin = Origin.CONFIG
    ) -> JobView:
        """Start watching a job (no poll yet); a watched key starts over."""
        entry = self._insert(key, api, labels, origin)
        self._changed(entry)
        return entry

    def restore(
        self, key: JobKey, api: str, labels: Labels, origin: Origin, saved: Saved
    ) -> JobView:
        """Watch a job again with the state a previous run saved."""
        entry = self._insert(key, api, labels, origin)
        entry.first_seen, entry.seen_finished = saved.first_seen, saved.seen_finished
        entry.snapshot, entry.errors_by_code = saved.snapshot, saved.errors_by_code
        entry.poll_success, entry.last_success = saved.poll_success, saved.last_success
        entry.expires_at = saved.expires_at
        entry.pending_finish, entry.pending_finish_at = (
            saved.pending_finish,
            saved.pending_finish_at,
        )
        if entry.expires_at is not None:
            heapq.heappush(self._expiry, (entry.expires_at, key))
        self._changed(entry)
        return entry

    def relabel(self, key: JobKey, labels: Labels, origin: Origin) -> None:
        """Give a watched job new labels and origin (its config or file changed)."""
        entry = self._jobs[key]
        entry.labels, entry.origin = labels, origin
        self._changed(entry)

    def remove(self, key: JobKey) -> None:
        """Stop watching a job; its listeners drop what they keep of it."""
        entry = self._jobs.pop(key, None)
        if entry is None:
            return
        self._per_source[key[0]] -= 1
        if not self._per_source[key[0]]:
            del self._per_source[key[0]]
        for listener in self._listeners:
            listener.removed(key)

    def record_success(
        self, key: JobKey, snap: Snapshot, now: float, *, expires_from: float | None = None
    ) -> JobView:
        """Store a good poll's snapshot taken at wall time ``now``; failure streaks end.

        A finished job's retention counts from ``expires_from`` (default ``now``): a
        finish recorded after its errors listing was read counts from then.
        """
        entry = self._jobs[key]
        if entry.first_seen is None:
            entry.first_seen = now
        if snap.status.finished:
            if entry.seen_finished is None:
                entry.seen_finished = now
            if entry.expires_at is None:
                entry.expires_at = (now if expires_from is None else expires_from) + self._retention
                heapq.heappush(self._expiry, (entry.expires_at, key))
            entry.pending_finish = entry.pending_finish_at = None
        entry.snapshot = snap
        entry.poll_success = True
        entry.last_success = now
        entry.not_found_streak = 0
        entry.failures = 0
        entry.last_failure = None
        self._changed(entry)
        return entry

    def record_pending_finish(self, key: JobKey, snap: Snapshot, now: float) -> None:
        """The job was seen finished at ``now``; it is recorded so once its errors are read.

        Kept (and saved across a restart) so that the listing is read without asking
        for the job again: the vendor's budget pays for each request.
        """
        entry = self._jobs[key]
        entry.pending_finish, entry.pending_finish_at = snap, now
        self._changed(entry)

    def record_errors(self, key: JobKey, counts: tuple[tuple[str, int], ...]) -> None:
        """Store a job's failed items by error code (read once it finished)."""
        entry = self._jobs[key]
        entry.errors_by_code = counts
        self._changed(entry)

    def record_failure(self, key: JobKey, reason: str | None = None) -> int:
        """A poll failed (for ``reason``): last good values stay, ``poll_success`` drops.

        Returns the failures in a row.
        """
        entry = self._jobs[key]
        entry.failures += 1
        entry.last_failure = reason
        if entry.poll_success is not False:
            entry.poll_success = False
            self._changed(entry)
        return entry.failures

    def not_found(self, key: JobKey) -> int:
        """The vendor answered 404 for the job: how many times in a row it has now."""
        entry = self._jobs[key]
        entry.not_found_streak += 1
        return entry.not_found_streak

    def expire(self, now: float) -> list[JobKey]:
        """Drop finished jobs whose retention has passed; returns their keys."""
        gone: list[JobKey] = []
        while self._expiry and self._expiry[0][0] <= now:
            at, key = heapq.heappop(self._expiry)
            entry = self._jobs.get(key)
            if entry is not None and entry.expires_at == at:
                self.remove(key)
                gone.append(key)
        return gone

    def _insert(self, key: JobKey, api: str, labels: Labels, origin: Origin) -> JobEntry:
        self.remove(key)
        entry = self._jobs[key] = JobEntry(key, api, origin, labels)
        self._per_source[key[0]] = self._per_source.get(key[0], 0) + 1
        return entry

    def _changed(self, entry: JobEntry) -> None:
        for listener in self._listeners:
            listener.changed(entry)
