"""The job table as Prometheus text: each job's series, kept rendered as the table changes.

:class:`JobSeries` listens to a :class:`~exporter.jobs.table.JobTable`: a job
that changes is rendered again (:func:`~exporter.exposition.lines.job_lines`)
into its place in :class:`~exporter.exposition.blocks.Blocks`, which cache
their joins, and a job removed leaves no series behind.  A scrape strings the
cached pieces into a :class:`~exporter.exposition.page.Page` and formats one
number per running job (its duration) with one ``%`` over a cached template;
the server streams the page, or gzips it from each piece's cached deflate.
Series order within a family follows the blocks, not the order jobs were
added.  Sample output::

    # HELP batchjob_remaining_items Items the vendor has not processed yet.
    # TYPE batchjob_remaining_items gauge
    batchjob_remaining_items{source="evo",job_id="7fb1c2"} 500
    # HELP batchjob_status Job state as a state-set: exactly one series is 1.
    # TYPE batchjob_status gauge
    batchjob_status{source="evo",job_id="7fb1c2",status="running"} 1
"""

from __future__ import annotations

from array import array
from itertools import repeat

from exporter.exposition.blocks import BLOCK_SIZE, Block, Blocks
from exporter.exposition.lines import (
    F_DURATION,
    HEADERS,
    N_FAMILIES,
    WATCHED_HEADER,
    escape,
    job_lines,
    job_prefix,
)
from exporter.exposition.page import Page, Piece
from exporter.jobs.entry import JobView
from exporter.jobs.keys import JobKey
from exporter.jobs.table import JobTable

__all__ = ["TICK_CHUNK", "JobSeries"]

# Running jobs' durations are formatted this many to one ``%``.
TICK_CHUNK = 1024


class _Row:
    """Where one job's lines sit in the blocks, and the label prefix of its series."""

    __slots__ = ("block", "prefix", "slot")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.block: Block | None = None
        self.slot = 0


class JobSeries:
    """Every watched job's series, re-rendered only when a job changes (a table listener)."""

    def __init__(
        self, table: JobTable, *, block_size: int = BLOCK_SIZE, tick_chunk: int = TICK_CHUNK
    ) -> None:
        self._table = table
        self._rows: dict[JobKey, _Row] = {}
        self._blocks = Blocks(N_FAMILIES, block_size=block_size)
        self._tick_chunk = tick_chunk
        # Running jobs' durations, formatted at scrape time: key -> (line prefix, start),
        # and the template and starts for all of them at once (None: rebuild).
        self._ticking: dict[JobKey, tuple[bytes, float]] = {}
        self._tick_template: list[tuple[bytes, array[float]]] | None = None
        for entry in table:
            self.changed(entry)
        table.subscribe(self)

    def changed(self, entry: JobView) -> None:
        """Render ``entry`` again; only the families whose lines changed go stale."""
        key = entry.key
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(job_prefix(key))
        lines, ticking = job_lines(entry, row.prefix)
        if ticking is None:
            self._untick(key)
        else:
            self._tick(key, *ticking)
        self._blocks.put(row, lines, finished=entry.finished)

    def removed(self, key: JobKey) -> None:
        """Drop the job's series from the next scrape."""
        row = self._rows.pop(key, None)
        if row is not None:
            self._untick(key)
            self._blocks.remove(row)

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
        counts = self._table.counts
        sources = self._table.sources.union(counts)
        if sources:
            parts.append(WATCHED_HEADER)
            for s in sorted(sources):
                n = counts.get(s, 0)
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
            size = self._tick_chunk
            self._tick_template = [
                (
                    b"".join([p.replace(b"%", b"%%") + b"%.3f\n" for p, _ in chunk]),
                    array("d", [start for _, start in chunk]),
                )
                for chunk in (ticking[i : i + size] for i in range(0, len(ticking), size))
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
