"""The jobs page served at ``/`` by a running exporter: live data, manners, bad queries."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from exporter import __version__
from exporter.clock import FakeClock
from exporter.exposition.jobspage import SourceRow
from exporter.exposition.jobsstyle import CSP
from exporter.exposition.jobsview import JobsPage
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status
from exporter.simulator import Fault
from tests.harness import EVO, FS, Harness, source_yaml

MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for the test."""
    async with aiohttp.ClientSession() as session:
        yield session


async def started(make_harness: MakeHarness) -> tuple[Harness, str]:
    """An exporter watching two Fullstory jobs and one Evocalize job, polled once; its root URL."""
    h = await make_harness()
    h.sim.add_job(FS, "fs-one", total=1000, rate=10)
    h.sim.add_job(FS, "fs-two", total=10, rate=1000, outcome="failed")
    h.sim.add_job(EVO, "evo-one", total=100, rate=1)
    await h.start(
        source_yaml(h.sim, FS, "fs", ["fs-one", "fs-two"])
        + source_yaml(h.sim, EVO, "evo", ["evo-one"], extra="    max_requests_per_second: 4\n")
    )
    await h.advance(11)
    assert h.exporter is not None
    return h, f"http://127.0.0.1:{h.exporter.port}/"


def job_ids(body: str) -> list[str]:
    """The job IDs of the table's rows, in order."""
    return re.findall(r'<tr><th scope="row"><span class="id">([^<]*)</span>', body)


async def test_the_page_shows_the_watched_jobs_failed_first(
    make_harness: MakeHarness, http: aiohttp.ClientSession
) -> None:
    """200, HTML with the policy, every job in the page's order, each source with its cap."""
    _, root = await started(make_harness)
    async with http.get(root) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert resp.headers["Content-Security-Policy"] == CSP
        body = await resp.text()
    assert job_ids(body) == ["fs-two", "fs-one", "evo-one"]
    assert '<span class="badge b-failed">failed</span>' in body
    assert f"version {__version__}" in body
    assert "<td>4 requests/s</td>" in body
    async with http.head(root) as resp:
        assert (resp.status, await resp.read()) == (200, b"")


async def test_the_query_string_filters_the_page(
    make_harness: MakeHarness, http: aiohttp.ClientSession
) -> None:
    """Source, status and ID search reach the page; a page past the end shows the last."""
    _, root = await started(make_harness)
    for query, expected in [
        ("?source=fs", ["fs-two", "fs-one"]),
        ("?status=running", ["fs-one", "evo-one"]),
        ("?q=ONE&source=evo", ["evo-one"]),
        ("?page=5&status=failed", ["fs-two"]),
    ]:
        async with http.get(root + query) as resp:
            assert resp.status == 200, query
            assert job_ids(await resp.text()) == expected, query


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?page=abc", "page &#x27;abc&#x27; is not a page number (1, 2, ...)"),
        ("?page=0", "page &#x27;0&#x27; is not a page number (1, 2, ...)"),
        ("?status=done", "unknown status &#x27;done&#x27;: use one of failed, poll_failed,"),
        ("?source=nope", "unknown source &#x27;nope&#x27;: no such source is configured"),
    ],
)
async def test_a_malformed_query_is_a_400_page(
    make_harness: MakeHarness, http: aiohttp.ClientSession, query: str, message: str
) -> None:
    """A page number that is not one, an unknown status or source: 400 and what is wrong."""
    _, root = await started(make_harness)
    async with http.get(root + query) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Security-Policy"] == CSP
        assert f'<p class="alert" role="alert">{message}' in await resp.text()


async def test_a_source_under_retry_after_shows_closed_until_when_and_why(
    make_harness: MakeHarness, http: aiohttp.ClientSession
) -> None:
    """After a 429 with Retry-After: 60, the source is closed for a minute, and says why."""
    h, root = await started(make_harness)
    h.sim.set_fault(FS, Fault("rate_limit", retry_after="60", count=1))
    await h.advance(10)
    async with http.get(root + "?source=fs") as resp:
        body = await resp.text()
    match = re.search(
        r'closed for (\d+)s</span><span class="sub">until [0-9:]+ UTC: ([^<]*)<', body
    )
    assert match is not None, body
    assert 50 <= int(match[1]) <= 60
    assert match[2] == "the vendor&#x27;s Retry-After"
    assert "failing: rate_limited" in body
    assert '<span class="gate-open">open</span>' in body  # evo is not affected


def test_a_source_no_longer_configured_is_shown_while_it_has_jobs(clock: FakeClock) -> None:
    """Jobs of a source that is not among the runtimes still list, as of a source not configured."""
    table = JobTable(retention=60)
    table.add(("old", "j"), "batch_import_job")
    table.record_success(("old", "j"), Snapshot(Status.RUNNING, "PROCESSING"), clock.time())
    page = JobsPage(table, {}, clock=clock, version="1")
    assert page.sources() == [SourceRow("old", None, None)]
    answer = page([("source", "old")])
    assert answer.status == 200
    assert job_ids(answer.body) == ["j"]
    assert '<span class="muted">not configured</span>' in answer.body


async def test_a_rate_capped_source_shows_how_much_of_its_budget_it_used(
    make_harness: MakeHarness, http: aiohttp.ClientSession
) -> None:
    """A cap of 4 requests/s (evo): its row shows the share of the minute's 240 it sent."""
    h, root = await started(make_harness)
    assert h.exporter is not None
    async with http.get(root) as resp:
        body = await resp.text()
    assert '<th scope="col">Budget used</th>' in body
    row = re.search(r'<tr><th scope="row"><a href="\?source=evo">evo</a></th>.*?</tr>', body)
    assert row is not None, body
    sent = sum(1 for r in h.sim.requests if r.api == EVO)  # every one of them within the minute
    used = re.findall(r'<td class="num">([^<]*)</td>', row[0])[-1]
    assert sent > 0
    assert used == f"{sent / 240:.0%}"
    fs_row = re.search(r'<tr><th scope="row"><a href="\?source=fs">fs</a></th>.*?</tr>', body)
    assert fs_row is not None
    assert re.findall(r'<td class="num">([^<]*)</td>', fs_row[0])[-1] == "-"
