"""Which jobs one view of the jobs page shows: the query string, the filter, the order, a page.

``/?status=failed&source=fs&q=abd&page=2``: each of ``source`` and ``status``
may be given more than once (any of them matches; an empty value means any),
``q`` is a case-insensitive substring of the job ID, ``page`` counts from 1.
A malformed query is refused (:class:`BadQuery`, a 400): an unknown status, a
page that is not a whole number from 1.  A page past the end shows the last
one: jobs come and go between two refreshes of the same address.

The order is failed jobs first, then jobs whose last poll failed, running,
pending, then the rest, each group by source and job ID.  One pass over the
table sorts every job into its group (and counts them); only the groups the
page reaches are ordered, and of those only as far as the page goes, so a
first page at 50,000 jobs costs one pass and a partial selection, not a sort.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.jobs.entry import JobView
from exporter.model import Status

__all__ = [
    "PER_PAGE",
    "POLL_FAILED",
    "STATUSES",
    "UNPOLLED",
    "BadQuery",
    "Query",
    "Selection",
    "parse_query",
    "select",
]

PER_PAGE = 100
POLL_FAILED = "poll_failed"  # not a job status: the jobs whose last poll failed, any status
UNPOLLED = "unpolled"  # a job with no good poll yet has no status
# What the status filter takes, in the page's order.
STATUSES: tuple[str, ...] = (
    Status.FAILED.value,
    POLL_FAILED,
    Status.RUNNING.value,
    Status.PENDING.value,
    Status.COMPLETED.value,
    Status.CANCELED.value,
    Status.DELETED.value,
    Status.NOT_FOUND.value,
    Status.UNKNOWN.value,
    UNPOLLED,
)
_PAGE = re.compile(r"[1-9][0-9]{0,8}")  # a billion pages is more than any table has


class BadQuery(ValueError):
    """A query string the page cannot show; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Query:
    """One view of the jobs page: filters (empty: any) and a page number from 1."""

    sources: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    q: str = ""
    page: int = 1

    def params(self, page: int | None = None) -> list[tuple[str, str]]:
        """The query string's pairs that give this view (at ``page``), in a stable order."""
        out = [("source", s) for s in sorted(self.sources)]
        out += [("status", s) for s in STATUSES if s in self.statuses]
        if self.q:
            out.append(("q", self.q))
        page = self.page if page is None else page
        if page != 1:
            out.append(("page", str(page)))
        return out


def parse_query(pairs: Iterable[tuple[str, str]]) -> Query:
    """The view a query string asks for; :class:`BadQuery` if it is malformed.

    Parameters other than the four are ignored, as a browser or proxy may add some.
    """
    sources: set[str] = set()
    statuses: set[str] = set()
    q, page = "", 1
    for name, value in pairs:
        if name == "source":
            if value:
                sources.add(value)
        elif name == "status":
            if value and value not in STATUSES:
                raise BadQuery(f"unknown status {value!r}: use one of {', '.join(STATUSES)}")
            if value:
                statuses.add(value)
        elif name == "q":
            q = value.strip()
        elif name == "page":
            if not _PAGE.fullmatch(value):
                raise BadQuery(f"page {value!r} is not a page number (1, 2, ...)")
            page = int(value)
    return Query(frozenset(sources), frozenset(statuses), q, page)


@dataclass(frozen=True, slots=True)
class Selection:
    """The jobs one page shows, where they stand in the whole, and the table's counts."""

    rows: Sequence[JobView]
    matched: int  # jobs that pass the filters
    page: int  # the page shown (a page past the end shows the last)
    pages: int  # at least 1
    offset: int  # how many matching jobs come before the first row
    counts: Mapping[str, Mapping[str, int]]  # source -> status (as STATUSES) -> jobs, unfiltered
    total: int  # every watched job


def select(jobs: Iterable[JobView], query: Query, per_page: int = PER_PAGE) -> Selection:
    """The page of ``jobs`` that ``query`` asks for, in the page's order."""
    groups: tuple[list[JobView], ...] = ([], [], [], [], [])
    failed_jobs, poll_failed_jobs, running_jobs, pending_jobs, other_jobs = groups
    counts: dict[str, dict[str, int]] = {}
    sources, statuses = query.sources, query.statuses
    want_poll_failed = POLL_FAILED in statuses
    needle = query.q.casefold()
    failed, running, pending = Status.FAILED, Status.RUNNING, Status.PENDING
    total = 0
    last_source, by_status = "", _zeros()
    # One pass, allocating nothing the garbage collector tracks: at 50,000 jobs a pass
    # that builds a tuple per job spends more time in collections than in the loop.
    for entry in jobs:
        total += 1
        source = entry.key[0]
        if source != last_source:
            last_source = source
            by_status = counts.get(source) or counts.setdefault(source, _zeros())
        snap = entry.snapshot
        status = None if snap is None else snap.status
        name = UNPOLLED if status is None else status._value_  # .value is a slow property
        by_status[name] += 1
        poll_failed = entry.poll_success is False
        if poll_failed:
            by_status[POLL_FAILED] += 1
        if sources and source not in sources:
            continue
        if statuses and name not in statuses and not (poll_failed and want_poll_failed):
            continue
        if needle and needle not in entry.key[1].casefold():
            continue
        if status is failed:
            failed_jobs.append(entry)
        elif poll_failed:
            poll_failed_jobs.append(entry)
        elif status is running:
            running_jobs.append(entry)
        elif status is pending:
            pending_jobs.append(entry)
        else:
            other_jobs.append(entry)
    matched = sum(map(len, groups))
    pages = max(1, -(-matched // per_page))
    page = min(query.page, pages)
    offset = (page - 1) * per_page
    return Selection(
        rows=_page(groups, offset, per_page),
        matched=matched,
        page=page,
        pages=pages,
        offset=offset,
        counts=counts,
        total=total,
    )


def _zeros() -> dict[str, int]:
    return dict.fromkeys(STATUSES, 0)


def _page(groups: Sequence[list[JobView]], offset: int, size: int) -> list[JobView]:
    """``size`` jobs from ``offset`` of the groups one after the other."""
    rows: list[JobView] = []
    for group in groups:
        if offset >= len(group):
            offset -= len(group)
            continue
        rows += group[offset : offset + size - len(rows)]
        offset = 0
        if len(rows) >= size:
            break
    return rows
