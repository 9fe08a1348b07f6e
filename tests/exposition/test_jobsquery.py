"""The jobs page's query: parsing it, the filters, the order of the groups, the pages."""

from __future__ import annotations

import pytest

from exporter.exposition.jobsquery import (
    STATUSES,
    BadQuery,
    Query,
    parse_query,
    select,
)
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status

NOW = 1_700_000_000.0


def test_a_query_string_parses_into_its_view() -> None:
    """Repeated filters add up, empty ones mean any, q is trimmed, unknown names are ignored."""
    pairs = [
        ("source", "fs"),
        ("source", ""),
        ("source", "evo"),
        ("status", "failed"),
        ("status", "poll_failed"),
        ("status", ""),
        ("q", "  ABD "),
        ("page", "2"),
        ("utm_source", "x"),
    ]
    assert parse_query(pairs) == Query(
        frozenset({"fs", "evo"}), frozenset({"failed", "poll_failed"}), "ABD", 2
    )
    assert parse_query([]) == Query()


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (
            [("status", "broken")],
            "unknown status 'broken': use one of " + ", ".join(STATUSES),
        ),
        ([("page", "abc")], "page 'abc' is not a page number (1, 2, ...)"),
        ([("page", "0")], "page '0' is not a page number (1, 2, ...)"),
        ([("page", "-1")], "page '-1' is not a page number (1, 2, ...)"),
        ([("page", "1.5")], "page '1.5' is not a page number (1, 2, ...)"),
        ([("page", "")], "page '' is not a page number (1, 2, ...)"),
        ([("page", "01")], "page '01' is not a page number (1, 2, ...)"),
        ([("page", "1" * 10)], f"page '{'1' * 10}' is not a page number (1, 2, ...)"),
    ],
)
def test_a_malformed_query_is_refused_with_what_to_change(
    pairs: list[tuple[str, str]], message: str
) -> None:
    """An unknown status or a page that is not a whole number from 1 is a BadQuery."""
    with pytest.raises(BadQuery) as caught:
        parse_query(pairs)
    assert str(caught.value) == message


def test_a_view_gives_back_its_query_string_in_a_stable_order() -> None:
    """Sources sorted, statuses in the page's order, q, then the page unless it is the first."""
    query = Query(frozenset({"td", "evo"}), frozenset({"running", "failed"}), "x y", 3)
    assert query.params() == [
        ("source", "evo"),
        ("source", "td"),
        ("status", "failed"),
        ("status", "running"),
        ("q", "x y"),
        ("page", "3"),
    ]
    assert query.params(page=1) == query.params()[:-1]
    assert Query().params() == []


def snap(status: Status) -> Snapshot:
    """A snapshot in ``status``."""
    return Snapshot(status, status.value.upper())


def mixed_table() -> JobTable:
    """One job of every kind the order knows, added in an order that is not the page's."""
    table = JobTable(retention=3600)
    jobs = [
        ("fs", "done-1", Status.COMPLETED, None),
        ("fs", "run-1", Status.RUNNING, None),
        ("evo", "Pend-1", Status.PENDING, None),
        ("evo", "fail-1", Status.FAILED, None),
        ("fs", "run-failing", Status.RUNNING, "timeout"),
        ("evo", "new-1", None, None),
        ("fs", "fail-failing", Status.FAILED, "timeout"),
        ("evo", "gone-1", Status.NOT_FOUND, None),
        ("evo", "run-2", Status.RUNNING, None),
        ("fs", "never-works", None, "unexpected_status"),
    ]
    for source, job_id, status, failure in jobs:
        key = (source, job_id)
        table.add(key, "api")
        if status is not None:
            table.record_success(key, snap(status), NOW)
        if failure is not None:
            table.record_failure(key, failure)
    return table


def ids(table: JobTable, query: Query, per_page: int = 100) -> list[str]:
    """The job IDs of the page ``query`` shows, in order."""
    return [entry.key[1] for entry in select(table, query, per_page).rows]


def test_failed_first_then_failing_polls_running_pending_and_the_rest() -> None:
    """The groups in the issue's order; inside each, the table's order (config, then added)."""
    assert ids(mixed_table(), Query()) == [
        "fail-1",
        "fail-failing",
        "run-failing",
        "never-works",
        "run-1",
        "run-2",
        "Pend-1",
        "done-1",
        "new-1",
        "gone-1",
    ]


def test_counts_cover_every_job_by_source_and_status_whatever_the_filter() -> None:
    """Counts are of the whole table; a job whose last poll failed counts under poll_failed too."""
    sel = select(mixed_table(), Query(statuses=frozenset({"completed"})))
    assert {s: {k: n for k, n in c.items() if n} for s, c in sel.counts.items()} == {
        "fs": {"completed": 1, "running": 2, "failed": 1, "poll_failed": 3, "unpolled": 1},
        "evo": {"pending": 1, "failed": 1, "unpolled": 1, "not_found": 1, "running": 1},
    }
    assert (sel.total, sel.matched) == (10, 1)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(sources=frozenset({"evo"})), ["fail-1", "run-2", "Pend-1", "new-1", "gone-1"]),
        (Query(statuses=frozenset({"running"})), ["run-failing", "run-1", "run-2"]),
        (
            Query(statuses=frozenset({"poll_failed"})),
            ["fail-failing", "run-failing", "never-works"],
        ),
        (Query(statuses=frozenset({"unpolled"})), ["never-works", "new-1"]),
        (Query(statuses=frozenset({"failed", "pending"})), ["fail-1", "fail-failing", "Pend-1"]),
        (Query(q="PEND"), ["Pend-1"]),
        (Query(q="fail"), ["fail-1", "fail-failing", "run-failing"]),
        (
            Query(sources=frozenset({"fs"}), statuses=frozenset({"failed"}), q="ing"),
            ["fail-failing"],
        ),
        (Query(q="nothing like it"), []),
    ],
)
def test_filters_narrow_the_jobs_and_keep_their_order(query: Query, expected: list[str]) -> None:
    """Source, status (poll_failed and unpolled included) and the ID search, alone or together."""
    assert ids(mixed_table(), query) == expected


def test_pages_of_a_hundred_and_a_page_past_the_end_shows_the_last() -> None:
    """250 jobs: pages 1-3 hold 100, 100 and 50; page 9 shows page 3; an empty table has one."""
    table = JobTable(retention=3600)
    for n in range(250):
        table.add(("fs", f"job-{n:03d}"), "api")
    first = select(table, Query())
    assert (len(first.rows), first.page, first.pages, first.offset) == (100, 1, 3, 0)
    second = select(table, Query(page=2))
    assert [e.key[1] for e in second.rows][:2] == ["job-100", "job-101"]
    assert (second.page, second.offset) == (2, 100)
    beyond = select(table, Query(page=9))
    assert (len(beyond.rows), beyond.page, beyond.offset) == (50, 3, 200)
    assert beyond.rows[-1].key == ("fs", "job-249")
    empty = select(JobTable(retention=1), Query(page=4))
    assert (empty.rows, empty.matched, empty.page, empty.pages, empty.total) == ([], 0, 1, 1, 0)


def test_a_page_may_span_groups() -> None:
    """With 3 a page, page 2 of the mixed table starts in one group and ends in the next."""
    assert ids(mixed_table(), Query(page=2), per_page=3) == ["never-works", "run-1", "run-2"]
    assert ids(mixed_table(), Query(page=4), per_page=3) == ["gone-1"]
