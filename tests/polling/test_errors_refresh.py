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


def poller(refresh: float | None) -> tuple[Poller, FakeClient, JobTable, FakeClock]:
    """A poller over one fake source with ``errors_refresh`` set to ``refresh``."""
    clock = FakeClock()
    rng = random.Random(SEED)
    source = SourceConfig(
        name="src", api=SPEC.name, base_url="https://vendor.test/", path=SPEC.default_path,
        poll_interval=INTERVAL, errors_refresh=refresh,
    )  # fmt: skip
    client = FakeClient(source, clock, oauth=False)
    spec = dataclasses.replace(SPEC, parse_job=parse_job, errors_while_running=True)
    runtime = Runtime(spec, client, SourceGate(max_rate=None, backoff=Backoff(), rng=rng), INTERVAL)
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
