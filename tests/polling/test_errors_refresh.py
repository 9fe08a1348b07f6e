"""A running job's errors listing read again (``errors_refresh``): when, how often, what shows."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Awaitable, Callable

from exporter.clock import FakeClock
from exporter.config import SourceConfig
from exporter.jobs.table import JobTable
from exporter.model import Response, Snapshot, Status
from exporter.polling.gate import Backoff, SourceGate
from exporter.polling.poller import Poller
from exporter.polling.runtime import Runtime
from exporter.simulator import EVOCALIZE as EVO
from exporter.simulator.vendors import evocalize
from tests.harness import Harness, source_yaml
from tests.polling.test_poller_paths import SEED, SPEC, FakeClient, Stats, answer

MakeHarness = Callable[..., Awaitable[Harness]]
INTERVAL = 10.0
REFRESH = 60.0
KEY = ("src", "a")


def parse_job(resp: Response) -> Snapshot:
    """The fake API's job, with its error count: ``{"status": ..., "errors": n}``."""
    body = json.loads(resp.body)
    return Snapshot(Status(body["status"]), body["status"], error_items=body.get("errors"))


def job(status: str, errors: int | None) -> Response:
    """A job answer."""
    return answer(200, {"status": status, **({} if errors is None else {"errors": errors})})


def page(counts: dict[str, int]) -> Response:
    """A last errors page."""
    return answer(200, {"counts": counts})


def poller(
    refresh: float | None, max_rate: float | None = None
) -> tuple[Poller, FakeClient, JobTable, FakeClock]:
    """A poller over one fake source with ``errors_refresh`` set to ``refresh``."""
    clock = FakeClock()
    rng = random.Random(SEED)
    source = SourceConfig(
        name="src", api=SPEC.name, base_url="https://vendor.test/", path=SPEC.default_path,
        poll_interval=INTERVAL, errors_refresh=refresh, max_requests_per_second=max_rate,
    )  # fmt: skip
    client = FakeClient(source, clock, oauth=False)
    spec = dataclasses.replace(SPEC, parse_job=parse_job, errors_while_running=True)
    gate = SourceGate(max_rate=max_rate, backoff=Backoff(), rng=rng)
    runtime = Runtime(spec, client, gate, INTERVAL)
    table = JobTable(retention=600)
    table.add(KEY, SPEC.name)
    return (
        Poller({"src": runtime}, table, clock=clock, rng=rng, stats=Stats()),
        client,
        table,
        clock,
    )


def errors_of(table: JobTable) -> tuple[tuple[str, int], ...] | None:
    """The job's errors by code as the table holds them."""
    entry = table.get(KEY)
    assert entry is not None
    return entry.errors_by_code


async def test_errors_are_read_while_running_once_they_grow_at_most_every_interval() -> None:
    """Refreshes happen when errors appear or grow, never sooner than the interval apart."""
    p, client, table, clock = poller(REFRESH)
    client.script = [
        job("running", 0),  # t=0: no errors yet, no listing
        job("running", 2),
        page({"E": 2}),  # t=10: errors appeared: listing read
        job("running", 3),  # t=20: grown, but within the interval
        job("running", 3),  # ...
        job("running", 3),
        job("running", 3),
        job("running", 3),  # t=60
        job("running", 3),
        page({"E": 2, "F": 1}),  # t=70: 60 s since the last: read again
        job("running", 3),  # t=80: not grown since: no listing
    ]
    shown = []
    for _ in range(9):
        assert await p.poll(KEY) == INTERVAL
        shown.append(errors_of(table))
        clock.advance(INTERVAL)
    assert [s.path for s in client.sent].count("/jobs/a/errors") == 2
    assert shown == [None, *[(("E", 2),)] * 6, (("E", 2), ("F", 1)), (("E", 2), ("F", 1))]


async def test_without_errors_refresh_a_running_job_is_never_listed() -> None:
    """Off by default: no listing request while the job runs, whatever its error count."""
    p, client, table, clock = poller(None)
    client.script = [job("running", 5), job("running", 9)]
    for _ in range(2):
        await p.poll(KEY)
        clock.advance(INTERVAL)
    assert [s.path for s in client.sent] == ["/jobs/a", "/jobs/a"]
    assert errors_of(table) is None


async def test_a_failed_refresh_keeps_the_last_read_and_waits_its_interval() -> None:
    """A refresh page that fails leaves the job's poll good and its shown errors as they were."""
    p, client, table, clock = poller(REFRESH)
    client.script = [job("running", 1), page({"E": 1}), job("running", 4), answer(500)]
    assert await p.poll(KEY) == INTERVAL
    clock.advance(REFRESH)
    assert await p.poll(KEY) == INTERVAL
    entry = table.get(KEY)
    assert entry is not None
    assert (entry.errors_by_code, entry.poll_success) == ((("E", 1),), True)
    clock.advance(INTERVAL)
    client.script = [job("running", 4)]
    await p.poll(KEY)  # 10 s after the failed try: not again yet
    assert [s.path for s in client.sent][-1] == "/jobs/a"
    assert len(client.sent) == 5


async def test_an_evocalize_report_shows_its_error_codes_while_it_runs(
    make_harness: MakeHarness,
) -> None:
    """Over loopback: with ``errors_refresh`` the codes appear before the report finishes."""
    h = await make_harness()
    h.sim.add_job(EVO, "r", total=1_000, rate=1, error_every=4)
    await h.start(source_yaml(h.sim, EVO, "evo", ["r"], extra="    errors_refresh: 30s\n"))
    await h.advance(100)
    assert h.status("evo", "r") == "running"
    listed = {
        dict(labels)["code"]: value
        for (name, labels), value in h.samples().items()
        if name == "batchjob_errors_by_code"
    }
    assert h.value("batchjob_error_items", source="evo", job_id="r") == 23
    assert listed == {
        code or "unknown": n for code, n in evocalize.VENDOR.error_code_counts(23).items()
    }
    refreshes = [r.time for r in h.sim.requests if r.raw_path.endswith("/errors")]
    # Errors from the first poll on: listed then, and every 30 s after while they grow.
    assert [t - refreshes[0] for t in refreshes] == [0.0, 30.0, 60.0, 90.0]


async def test_a_refresh_the_rate_cap_defers_goes_on_at_the_next_poll() -> None:
    """Under a cap the refresh's page waits for the next slot and is sent instead of the job."""
    p, client, table, clock = poller(REFRESH, max_rate=0.5)
    client.script = [job("running", 2), page({"E": 2})]
    later = await p.poll(KEY)  # the job request took the slot: the page is deferred
    assert later is not None
    assert later < INTERVAL
    assert [s.path for s in client.sent] == ["/jobs/a"]
    clock.advance(later)
    assert await p.poll(KEY) == INTERVAL
    assert [s.path for s in client.sent] == ["/jobs/a", "/jobs/a/errors"]
    assert errors_of(table) == (("E", 2),)


async def test_a_job_watched_anew_under_the_same_key_is_refreshed_afresh() -> None:
    """Unwatched and watched again: the new job's errors are listed without the old one's wait."""
    p, client, table, clock = poller(REFRESH)
    client.script = [job("running", 5), page({"E": 5})]
    await p.poll(KEY)
    table.remove(KEY)
    table.add(KEY, SPEC.name)
    clock.advance(INTERVAL)
    client.script = [job("running", 1), page({"F": 1})]
    await p.poll(KEY)
    assert [s.path for s in client.sent].count("/jobs/a/errors") == 2
    assert errors_of(table) == (("F", 1),)


async def test_a_final_read_given_up_never_replaces_a_fuller_refresh() -> None:
    """A listing that fails at its end keeps the counts of the last complete refresh."""
    p, client, table, clock = poller(REFRESH)
    table.retention = 30.0
    client.script = [job("running", 3), page({"E": 3}), job("completed", 4)]
    client.default = answer(500)
    assert await p.poll(KEY) == INTERVAL
    delay: float | None = INTERVAL
    for _ in range(30):
        assert delay is not None
        clock.advance(delay)
        delay = await p.poll(KEY)
        if delay is None:
            break
    entry = table.get(KEY)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code) == (True, (("E", 3),))
    # Given up 30 s after the finish was seen, its series stay for the retention from then.
    assert entry.expires_at == clock.time() + 30.0
