"""The jobs page's HTML, without a browser: escaping, the policy, rows, sources, pages."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from exporter.exposition.jobspage import (
    HtmlAnswer,
    SourceRow,
    bad_request,
    jobs_page,
)
from exporter.exposition.jobsquery import Query, select
from exporter.exposition.jobsstyle import CSP, HEADERS, STYLE
from exporter.jobs.keys import Origin
from exporter.jobs.table import JobTable
from exporter.jobs.view import summarize
from exporter.model import Snapshot, Status
from exporter.polling.gate import GateState

NOW = 1_700_000_000.0  # 22:13:20 UTC
HOSTILE = "<script>alert(1)</script>"
OPEN = GateState(closed_for=0.0, reason=None, max_rate=None)
ALL = Query()


def render(
    table: JobTable,
    query: Query = ALL,
    sources: list[SourceRow] | None = None,
    per_page: int = 100,
) -> HtmlAnswer:
    """The page of ``table`` for ``query``, with ``sources`` (default: one open per source)."""
    if sources is None:
        sources = [SourceRow(name, "batch_import_job", OPEN) for name in sorted(table.counts)]
    sel = select(table, query, per_page)
    return jobs_page(
        selection=sel,
        jobs=[summarize(entry) for entry in sel.rows],
        sources=sources,
        query=query,
        now=NOW,
        version="1.2.3",
    )


def one_job(snap: Snapshot | None = None, key: tuple[str, str] = ("fs", "j1")) -> JobTable:
    """A table of one job, polled once with ``snap`` ten seconds ago (if given)."""
    table = JobTable(retention=3600)
    table.add(key, "batch_import_job", (("team", "growth"),), Origin.API)
    if snap is not None:
        table.record_success(key, snap, NOW - 10)
    return table


def rows(body: str) -> list[str]:
    """The job table's rows."""
    return re.findall(r"<tr><th scope=\"row\"><span class=\"id\">.*?</tr>", body)


def test_every_outside_value_is_escaped_and_nothing_can_run() -> None:
    """A hostile job ID, label, vendor status, error code, reason and source show as text."""
    key = (HOSTILE, HOSTILE)
    table = JobTable(retention=3600)
    table.add(key, "batch_import_job", (("team", HOSTILE),), Origin.API)
    table.record_success(key, Snapshot(Status.FAILED, HOSTILE, error_items=1), NOW - 10)
    table.record_errors(key, ((HOSTILE, 1),))
    table.record_failure(key, HOSTILE)
    sources = [SourceRow(HOSTILE, HOSTILE, GateState(5.0, HOSTILE, None))]
    body = render(table, Query(frozenset({HOSTILE}), q=HOSTILE), sources).body
    assert "<script" not in body
    # The source's name, API, gate reason and option (twice), the search, the job's ID,
    # source, label, vendor status, error code and failure reason.
    assert body.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 12
    # Its link, its two status chips, and the refresh to this view.
    assert body.count("?source=%3Cscript%3Ealert%281%29%3C%2Fscript%3E") == 4
    quoted = render(table, Query(q='"><b>x')).body
    assert 'value="&quot;&gt;&lt;b&gt;x"' in quoted
    assert "<b>" not in quoted


def test_the_policy_allows_the_one_stylesheet_and_nothing_else() -> None:
    """The CSP names the <style> block's SHA-256; the page has no script and no style attribute."""
    answer = render(one_job())
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert answer.headers == HEADERS
    assert (
        answer.headers["Content-Security-Policy"]
        == CSP
        == (
            f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    )
    styles = re.findall(r"<style>(.*?)</style>", answer.body, re.S)
    assert styles == [STYLE]
    assert "<script" not in answer.body
    assert " style=" not in answer.body
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_refreshes_itself_to_the_view_it_shows() -> None:
    """A meta refresh every 5 s to the same filters; the header keeps the endpoint links."""
    table = JobTable(retention=3600)
    for n in range(150):
        table.add(("fs", f"job-{n}"), "api")
    query = Query(frozenset({"fs"}), frozenset({"unpolled"}), "job", page=7)
    body = render(table, query).body
    assert (
        '<meta http-equiv="refresh" content="5; url=?source=fs&amp;status=unpolled&amp;q=job'
        '&amp;page=2">'
    ) in body
    for link in ('href="metrics"', 'href="healthz"', 'href="readyz"'):
        assert link in body
    assert '<meta http-equiv="refresh" content="5; url=?">' in render(table).body


def test_a_job_row_shows_status_progress_errors_duration_poll_and_origin() -> None:
    """Every column of a failed job whose last poll failed too, in order."""
    snap = Snapshot(
        Status.FAILED,
        "FAILED",
        total_items=3000,
        completed_items=1230,
        successful_items=1200,
        error_items=30,
        created=NOW - 3725,
        finished=NOW - 5,
    )
    table = one_job(snap)
    table.record_errors(("fs", "j1"), (("E_DUP", 5), ("E_BAD", 20), ("E_A", 2), ("E_Z", 3)))
    table.record_failure(("fs", "j1"), "timeout")
    (row,) = rows(render(table).body)
    assert row == (
        '<tr><th scope="row"><span class="id">j1</span>'
        '<span class="sub"><span class="label">team=growth</span></span></th>'
        '<td>fs<span class="sub">batch_import_job</span></td>'
        '<td><span class="badge b-failed">failed</span><span class="sub">FAILED</span></td>'
        '<td><svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
        '<rect class="track" width="100" height="6"/><rect class="ok" width="40.00" height="6"/>'
        '<rect class="err" x="40.00" width="1.00" height="6"/></svg>'
        '1,230 of 3,000 · 41% · <span class="errs">30 failed</span></td>'
        '<td><span class="sub"><code>E_BAD</code> 20</span><span class="sub"><code>E_DUP</code> 5'
        '</span><span class="sub"><code>E_Z</code> 3</span>'
        '<span class="sub">and 1 more codes</span></td>'
        '<td class="num">1h 02m</td>'
        '<td>10s ago<span class="sub warn">failing: timeout</span></td><td>api</td></tr>'
    )


@pytest.mark.parametrize(
    ("snap", "progress"),
    [
        (
            Snapshot(Status.RUNNING, "PROCESSING", successful_items=356, error_items=4),
            '<svg class="bar split" viewBox="0 0 100 6" preserveAspectRatio="none" '
            'aria-hidden="true"><rect class="track" width="100" height="6"/>'
            '<rect class="ok" width="98.89" height="6"/><rect class="err" x="98.89" '
            'width="1.11" height="6"/></svg>356 successful so far · '
            '<span class="errs">4 failed</span>',
        ),
        (
            Snapshot(Status.RUNNING, "r", total_items=900, remaining_items=870),
            '<svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
            '<rect class="track" width="100" height="6"/><rect class="ok" width="3.33" '
            'height="6"/><rect class="err" x="3.33" width="0.00" height="6"/></svg>'
            "30 of 900 · 3%",
        ),
        (
            Snapshot(Status.RUNNING, "r", total_items=50),
            '<svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
            '<rect class="track" width="100" height="6"/><rect class="ok" width="0.00" '
            'height="6"/><rect class="err" x="0.00" width="0.00" height="6"/></svg>total 50',
        ),
        (
            Snapshot(Status.COMPLETED, "COMPLETED", successful_items=3000),
            '<svg class="bar split" viewBox="0 0 100 6" preserveAspectRatio="none" '
            'aria-hidden="true"><rect class="track" width="100" height="6"/>'
            '<rect class="ok" width="100.00" height="6"/><rect class="err" x="100.00" '
            'width="0.00" height="6"/></svg>3,000 successful',
        ),
        (Snapshot(Status.RUNNING, "processing"), '<span class="muted">-</span>'),
    ],
)
def test_progress_is_of_the_total_where_there_is_one(snap: Snapshot, progress: str) -> None:
    """Completed of total; without a total successful against failed items; else nothing."""
    (row,) = rows(render(one_job(snap)).body)
    assert f"<td>{progress}</td>" in row


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (0.4, "0s"),
        (59, "59s"),
        (61, "1m 01s"),
        (3599, "59m 59s"),
        (7260, "2h 01m"),
        (90000, "1d 01h"),
    ],
)
def test_durations_read_as_people_say_them(age: float, text: str) -> None:
    """Seconds, then minutes, hours and days with the next unit beside them."""
    table = one_job(Snapshot(Status.RUNNING, "r", created=NOW - age))
    (row,) = rows(render(table).body)
    assert f'<td class="num">{text}</td>' in row


def test_a_job_never_polled_shows_as_such() -> None:
    """No status yet, no progress, no duration, never polled well; its failure if it failed."""
    table = one_job()
    table.record_failure(("fs", "j1"))
    (row,) = rows(render(table).body)
    assert '<span class="badge b-unpolled">not polled yet</span></td>' in row
    assert '<td class="num">-</td>' in row
    assert '<td>never<span class="sub warn">failing: reason unknown (before a restart)' in row


def test_sources_show_their_jobs_manners_and_rate_cap() -> None:
    """Counts by status link to the filtered view; open, or closed until when and why."""
    table = one_job(Snapshot(Status.RUNNING, "r"))
    table.add(("evo", "e1"), "evocalize_batch_report")
    sources = [
        SourceRow("evo", "evocalize_batch_report", GateState(12.5, "retry-after", 5.0)),
        SourceRow("fs", "batch_import_job", OPEN),
        SourceRow("gone", None, None),
        SourceRow("td", "report_job", GateState(300.0, "auth", 0.5)),
    ]
    body = render(table, sources=sources).body
    assert (
        '<tr><th scope="row"><a href="?source=evo">evo</a></th><td>evocalize_batch_report</td>'
        '<td class="num">1</td><td><span class="counts"><a class="badge b-unpolled" '
        'href="?source=evo&amp;status=unpolled">1 not polled yet</a></span></td>'
        '<td><span class="gate-closed">closed for 13s</span>'
        '<span class="sub">until 22:13:32 UTC: the vendor&#x27;s Retry-After</span></td>'
        "<td>5 requests/s</td></tr>"
    ) in body
    assert '<td><span class="gate-open">open</span></td><td>none</td></tr>' in body
    assert (
        '<td>-</td><td class="num">0</td><td><span class="counts"><span class="muted">none'
        '</span></span></td><td><span class="muted">not configured</span></td><td>none</td>'
    ) in body
    assert 'closed for 5m 00s</span><span class="sub">until 22:18:20 UTC: credentials' in body
    assert "<td>0.5 requests/s</td>" in body
    assert "Budget used" not in body


def test_a_budget_column_appears_once_a_source_has_a_budget() -> None:
    """A source's budget use shows as a percentage; sources without one show a dash."""
    sources = [
        SourceRow("evo", "evocalize_batch_report", OPEN, budget_used=0.425),
        SourceRow("fs", "batch_import_job", OPEN),
    ]
    body = render(one_job(), sources=sources).body
    assert '<th scope="col">Budget used</th>' in body
    assert '<td>none</td><td class="num">42%</td></tr>' in body
    assert '<td>none</td><td class="num">-</td></tr>' in body


def test_the_form_keeps_the_view_and_counts_statuses_within_the_sources_shown() -> None:
    """Selected options and the search text stay; each status says how many jobs have it."""
    table = one_job(Snapshot(Status.RUNNING, "r"))
    table.add(("evo", "e1"), "evocalize_batch_report")
    body = render(table, Query(frozenset({"fs"}), frozenset({"running"}), "j")).body
    assert '<option value="fs" selected>fs</option>' in body
    assert '<option value="evo">evo</option>' in body
    assert '<option value="running" selected>running (1)</option>' in body
    assert '<option value="unpolled">not polled yet (0)</option>' in body
    assert 'value="j" placeholder' in body
    assert '<label for="f-q">Job ID contains</label><input id="f-q"' in body
    several = render(table, Query(frozenset({"fs", "evo"}), frozenset({"running", "failed"})))
    assert '<select id="f-source" name="source" multiple>' in several.body
    assert '<select id="f-status" name="status" multiple>' in several.body
    assert '<option value="unpolled">not polled yet (1)</option>' in several.body


def test_pages_link_to_their_neighbours_with_the_same_filters() -> None:
    """Page 2 of 3 links back and on; the first and last do not link past themselves."""
    table = JobTable(retention=3600)
    for n in range(25):
        table.add(("fs", f"job-{n}"), "api")
    middle = render(table, Query(q="job", page=2), per_page=10).body
    assert (
        '<nav class="pager" aria-label="Pages"><a rel="prev" href="?q=job">← previous</a>'
        '<span>page 2 of 3</span><a rel="next" href="?q=job&amp;page=3">next →</a></nav>'
    ) in middle
    assert '<p role="status">11&ndash;20 of 25 matching (25 watched)' in middle
    last = render(table, Query(page=3), per_page=10).body
    assert '<span>page 3 of 3</span><span class="muted">next →</span>' in last
    first = render(table, Query(), per_page=10).body
    assert '<span class="muted">← previous</span><span>page 1 of 3</span>' in first


def test_an_empty_table_and_an_empty_filter_say_so() -> None:
    """No jobs at all, or none that match: one row that says which."""
    assert "No jobs are watched yet." in render(JobTable(retention=1), sources=[]).body
    assert "No sources are configured." in render(JobTable(retention=1), sources=[]).body
    assert "No jobs match these filters." in render(one_job(), Query(q="zzz")).body
    assert (
        '<p role="status">0&ndash;0 of 0 matching (1 watched)'
        in render(one_job(), Query(q="zzz")).body
    )


def test_a_bad_request_page_says_what_is_wrong_and_does_not_refresh() -> None:
    """400, the message escaped in an alert, a link to every job, the same policy."""
    answer = bad_request(f"unknown status {HOSTILE!r}", version="1.2.3", now=NOW)
    assert (answer.status, answer.headers) == (400, HEADERS)
    assert (
        '<p class="alert" role="alert">unknown status '
        "&#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;</p>"
    ) in answer.body
    assert 'http-equiv="refresh"' not in answer.body
    assert '<a href="?">Show every job</a>' in answer.body
