"""The job table and its rendering into the Prometheus text format.

Each job keeps its exposition lines pre-rendered per metric family and
re-renders them only when a poll changes it; the lines live in
:class:`~exporter.exposition.blocks.Blocks`, which cache their joins.  A scrape strings
the cached pieces into a :class:`~exporter.exposition.page.Page` and formats one
number per running job (its duration) with one ``%`` over a cached template;
the server streams the page, or gzips it from each piece's cached deflate.
Series order within a family follows the blocks, not the order jobs were
added.  A job removed from the table leaves no series behind.  Sample output::

    # HELP batchjob_remaining_items Items the vendor has not processed yet.
    # TYPE batchjob_remaining_items gauge
    batchjob_remaining_items{source="evo",job_id="7fb1c2"} 500
    # HELP batchjob_status Job state as a state-set: exactly one series is 1.
    # TYPE batchjob_status gauge
    batchjob_status{source="evo",job_id="7fb1c2",status="running"} 1
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Iterator
from itertools import repeat

from exporter.exposition.blocks import Blocks
from exporter.exposition.lines import (
    F_DURATION,
    FAMILIES,
    HEADERS,
    N_FAMILIES,
    WATCHED_HEADER,
    JobEntry,
    escape,
    job_lines,
)
from exporter.exposition.page import Page, Piece
from exporter.jobs.keys import JobKey
from exporter.model import Snapshot

__all__ = ["FAMILIES", "JobEntry", "JobKey", "JobTable", "escape"]

# Running jobs' durations are formatted this many to one ``%``.
TICK_CHUNK = 1024


class JobTable:
    """The watched jobs and what their last polls said."""

    def __init__(self, *, retention: float) -> None:
        self._jobs: dict[JobKey, JobEntry] = {}
        self._retention = retention
        self._expiry: list[tuple[float, JobKey]] = []
        self._per_source: dict[str, int] = {}
        # Configured sources: each gets a watched-jobs series, 0 while it has no job.
        self._sources: frozenset[str] = frozenset()
        self._blocks = Blocks(N_FAMILIES)
        # Running jobs' durations, formatted at scrape time: key -> (line prefix, start),
        # and the template and starts for all of them at once (None: rebuild).
        self._ticking: dict[JobKey, tuple[bytes, float]] = {}
        self._tick_template: list[tuple[bytes, array[float]]] | None = None
        # Told of every change to a job and every removal (the state store listens).
        self.on_change: Callable[[JobEntry], None] | None = None
        self.on_remove: Callable[[JobKey], None] | None = None

    @property
    def retention(self) -> float:
        """How long a finished job keeps its series; a change applies to jobs finishing later."""
        return self._retention

    @retention.setter
    def retention(self, seconds: float) -> None:
        self._retention = seconds

    def refresh(self, key: JobKey) -> JobEntry:
        """Re-render a job whose fields were set from outside (restored state, new labels)."""
        entry = self._jobs[key]
        if entry.expires_at is not None:
            heapq.heappush(self._expiry, (entry.expires_at, key))
        self._render(entry)
        return entry

    def __contains__(self, key: object) -> bool:
        return key in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[JobEntry]:
        return iter(self._jobs.values())

    def get(self, key: JobKey) -> JobEntry | None:
        """The entry for ``key``, if watched."""
        return self._jobs.get(key)

    def set_sources(self, names: frozenset[str]) -> None:
        """The configured sources, shown with ``batchjob_exporter_watched_jobs`` even when empty."""
        self._sources = names

    def count(self, source: str) -> int:
        """How many jobs of ``source`` are watched, in constant time."""
        return self._per_source.get(source, 0)

    def add(self, key: JobKey, api: str, labels: tuple[tuple[str, str], ...] = ()) -> JobEntry:
        """Start watching a job (no series until its first poll); a watched key starts over."""
        self.remove(key)
        source, job_id = key
        prefix = f'source="{escape(source)}",job_id="{escape(job_id)}"'
        entry = self._jobs[key] = JobEntry(key, api, labels, prefix)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._render(entry)
        return entry

    def remove(self, key: JobKey) -> None:
        """Stop watching a job; its series disappear from the next scrape."""
        entry = self._jobs.pop(key, None)
        if entry is None:
            return
        self._per_source[key[0]] -= 1
        if not self._per_source[key[0]]:
            del self._per_source[key[0]]
        self._untick(key)
        self._blocks.remove(entry)
        if self.on_remove is not None:
            self.on_remove(key)

    def record_success(self, key: JobKey, snap: Snapshot, now: float) -> JobEntry:
        """Store a good poll's snapshot taken at wall time ``now``."""
        entry = self._jobs[key]
        if entry.first_seen is None:
            entry.first_seen = now
        if snap.status.finished:
            if entry.seen_finished is None:
                entry.seen_finished = now
            if entry.expires_at is None:
                entry.expires_at = now + self._retention
                heapq.heappush(self._expiry, (entry.expires_at, key))
        entry.snapshot = snap
        entry.poll_success = True
        entry.last_success = now
        entry.not_found_streak = 0
        self._render(entry)
        return entry

    def record_errors(self, key: JobKey, counts: tuple[tuple[str, int], ...]) -> None:
        """Store a job's failed items by error code (read once it finished)."""
        entry = self._jobs[key]
        entry.errors_by_code = counts
        self._render(entry)

    def record_failure(self, key: JobKey) -> None:
        """A poll failed: last good values stay, ``batchjob_poll_success`` drops to 0."""
        entry = self._jobs[key]
        if entry.poll_success is not False:
            entry.poll_success = False
            self._render(entry)

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

    def render(self, now: float) -> bytes:
        """The job families and ``batchjob_exporter_watched_jobs`` as exposition bytes."""
        return bytes(self.page(now))

    def page(self, now: float, tail: bytes = b"") -> Page:
        """What :meth:`render` returns, followed by ``tail``, as a page of cached pieces."""
        self._blocks.compact()
        parts: list[Piece | bytes] = []
        for family, header in enumerate(HEADERS):
            pieces: list[Piece | bytes] = [*self._blocks.pieces(family)]
            if family == F_DURATION and self._ticking:
                pieces += self._durations(now)
            if pieces:
                parts += (header, *pieces)
        sources = self._sources.union(self._per_source)
        if sources:
            parts.append(WATCHED_HEADER)
            for s in sorted(sources):
                n = self._per_source.get(s, 0)
                parts.append(
                    f'batchjob_exporter_watched_jobs{{source="{escape(s)}"}} {n}\n'.encode()
                )
        if tail:
            parts.append(tail)
        return Page(parts)

    def _durations(self, now: float) -> list[bytes]:
        """Running jobs' duration lines at ``now``: one ``%`` per chunk over cached templates.

        The starts are kept in contiguous arrays, and the chunks bound the size of one
        ``%``: both keep formatting linear in the number of jobs.
        """
        if self._tick_template is None:
            ticking = list(self._ticking.values())
            self._tick_template = [
                (
                    b"".join([p.replace(b"%", b"%%") + b"%.3f\n" for p, _ in chunk]),
                    array("d", [start for _, start in chunk]),
                )
                for chunk in (
                    ticking[i : i + TICK_CHUNK] for i in range(0, len(ticking), TICK_CHUNK)
                )
            ]
        out = []
        for template, starts in self._tick_template:
            values = tuple(map(now.__sub__, starts))
            if min(values) < 0:  # a start in the future (clock skew): no negative duration
                values = tuple(map(max, values, repeat(0.0)))
            out.append(template % values)
        return out

    def _tick(self, key: JobKey, prefix: bytes, start: float) -> None:
        if self._ticking.get(key) != (prefix, start):
            self._ticking[key] = (prefix, start)
            self._tick_template = None

    def _untick(self, key: JobKey) -> None:
        if self._ticking.pop(key, None) is not None:
            self._tick_template = None

    def _render(self, entry: JobEntry) -> None:
        lines, ticking = job_lines(entry)
        if ticking is None:
            self._untick(entry.key)
        else:
            self._tick(entry.key, *ticking)
        if self.on_change is not None:
            self.on_change(entry)
        self._blocks.put(entry, lines, finished=entry.finished)
