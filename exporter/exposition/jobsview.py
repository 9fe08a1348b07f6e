"""The jobs page's view of the exporter: a query in, the page out, read live at each request.

:class:`JobsPage` is what the metrics server calls for ``/``: it reads the job
table (the same one ``/metrics`` and ``GET /api/v1/jobs`` read, through
:func:`~exporter.jobs.view.summarize`) and each source's manners, picks the
page the query asks for (:mod:`~exporter.exposition.jobsquery`) and renders
it (:mod:`~exporter.exposition.jobspage`).  It keeps nothing between requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from exporter.clock import Clock
from exporter.exposition.jobspage import HtmlAnswer, SourceRow, bad_request, jobs_page
from exporter.exposition.jobsquery import PER_PAGE, BadQuery, parse_query, select
from exporter.jobs.table import JobTable
from exporter.jobs.view import summarize
from exporter.polling.gate import WINDOW, SourceGate

__all__ = ["JobsPage", "SourceManners"]


class _Named(Protocol):
    @property
    def name(self) -> str:
        """The API's name."""
        ...


class SourceManners(Protocol):
    """What the page reads of a source's runtime: its API's name and its gate.

    Structural, so that the exposition need not import the runtime (and through it
    the vendors' registry): the pool's runtimes are such objects.
    """

    @property
    def spec(self) -> _Named:
        """The source's API."""
        ...

    @property
    def gate(self) -> SourceGate:
        """The source's manners: Retry-After windows, backoff, rate cap."""
        ...


class JobsPage:
    """Renders ``/`` from ``table`` and the sources' ``runtimes`` (their gates, now).

    ``runtimes`` is the pool's live mapping, so a reload shows at the next request.
    """

    def __init__(
        self,
        table: JobTable,
        runtimes: Mapping[str, SourceManners],
        *,
        clock: Clock,
        version: str,
        per_page: int = PER_PAGE,
    ) -> None:
        self._table = table
        self._runtimes = runtimes
        self._clock = clock
        self._version = version
        self._per_page = per_page

    def sources(self) -> list[SourceRow]:
        """Every source, by name: the configured ones with their manners now.

        A source a reload removed may keep jobs until they go: shown, as not configured.
        """
        mono = self._clock.monotonic()
        rows = [
            SourceRow(name, rt.spec.name, rt.gate.state(mono), _budget_used(rt.gate, mono))
            for name, rt in self._runtimes.items()
        ]
        rows += [
            SourceRow(name, None, None) for name in self._table.counts if name not in self._runtimes
        ]
        rows.sort(key=lambda row: row.name)
        return rows

    def __call__(self, params: Iterable[tuple[str, str]]) -> HtmlAnswer:
        """The page for the query string's ``params``; a 400 page for a malformed query."""
        now = self._clock.time()
        try:
            query = parse_query(params)
        except BadQuery as exc:
            return bad_request(str(exc), version=self._version, now=now)
        rows = self.sources()
        unknown = sorted(query.sources - {row.name for row in rows})
        if unknown:
            message = f"unknown source {unknown[0]!r}: no such source is configured"
            return bad_request(message, version=self._version, now=now)
        selection = select(self._table, query, self._per_page)
        return jobs_page(
            selection=selection,
            jobs=[summarize(entry) for entry in selection.rows],
            sources=rows,
            query=query,
            now=now,
            version=self._version,
        )


def _budget_used(gate: SourceGate, now: float) -> float | None:
    """Requests sent over the last minute against the rate cap (the budget), if there is one."""
    rate = gate.max_rate
    return None if rate is None else gate.sent_last_minute(now) / (rate * WINDOW)
