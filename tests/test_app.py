"""The exporter end to end against the simulator: all three APIs, on a fake clock."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable, Callable

import pytest

from exporter.app import Exporter, Listen
from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.simulator import VENDORS, SimCredentials
from exporter.simulator.vendors.talkdesk import TalkdeskCredentials
from exporter.vendors import REGISTRY
from tests.harness import EVO, FS, TD, Harness, source_yaml

MakeHarness = Callable[..., Awaitable[Harness]]


async def test_three_apis_progress_finish_and_expire(make_harness: MakeHarness) -> None:
    """Jobs of every API move, finish with their final values, stop being polled, expire."""
    h = await make_harness()
    h.sim.add_job(EVO, "r1", total=100, rate=4, error_every=7)
    h.sim.add_job(FS, "j1", total=50, rate=2, error_every=5, outcome="failed")
    h.sim.add_job(TD, "t1", total=100, rate=4, name="Calls by agent")
    await h.start(
        source_yaml(h.sim, EVO, "evo", ["r1"])
        + source_yaml(h.sim, FS, "fs", ["j1"])
        + source_yaml(h.sim, TD, "td", ["t1"])
    )
    await h.advance(10)
    assert h.status("evo", "r1") == "running"
    assert h.status("fs", "j1") == "running"
    assert h.status("td", "t1") == "running"
    # r1 was first polled 4 s in (the seeded start spread): 4 items/s for 4 s done.
    assert h.value("batchjob_remaining_items", source="evo", job_id="r1") == 100 - 4 * 4
    assert h.value("batchjob_poll_success", source="fs", job_id="j1") == 1
    assert h.value("batchjob_created_timestamp_seconds", source="fs", job_id="j1") is not None
    assert h.value("batchjob_finished_timestamp_seconds", source="fs", job_id="j1") is None
    assert h.value("batchjob_error_items", source="fs", job_id="j1") is None

    await h.advance(30)
    assert h.status("evo", "r1") == "completed"
    assert h.status("fs", "j1") == "failed"
    assert h.status("td", "t1") == "completed"
    assert h.value("batchjob_remaining_items", source="evo", job_id="r1") == 0
    assert h.value("batchjob_error_items", source="fs", job_id="j1") == 10
    assert h.value("batchjob_finished_timestamp_seconds", source="fs", job_id="j1") is not None
    # Every page of the errors endpoint was read, missing codes counted as "unknown".
    expected = {code or "unknown": n for code, n in VENDORS[EVO].error_code_counts(14).items()}
    got = {
        dict(labels)["code"]: value
        for (name, labels), value in h.samples().items()
        if name == "batchjob_errors_by_code" and dict(labels)["source"] == "evo"
    }
    assert got == expected
    assert any("pageToken=" in r.raw_path for r in h.sim.requests)
    info = [
        dict(labels)
        for (name, labels), _ in h.samples().items()
        if name == "batchjob_info" and dict(labels)["source"] == "td"
    ]
    assert info[0]["name"] == "Calls by agent"
    assert info[0]["vendor_status"] == "done"
    # Evocalize gives no times: from the first poll to the first that saw it finished.
    polls = [r.time for r in h.sim.requests if r.api == EVO and "/errors" not in r.raw_path]
    duration = h.value("batchjob_duration_seconds", source="evo", job_id="r1")
    assert duration == polls[-1] - polls[0] == 30.0

    # Finished: no more requests, values frozen, then gone after the retention.
    seen = len(h.sim.requests)
    await h.advance(60, step=5)
    assert len(h.sim.requests) == seen
    assert h.value("batchjob_duration_seconds", source="evo", job_id="r1") == duration
    await h.advance(70, step=5)
    assert h.samples().keys() == {
        k for k in h.samples() if k[0].startswith(("batchjob_exporter_", "process_"))
    }
    assert (
        h.value("batchjob_exporter_watched_jobs", source="evo") == 0
    )  # the source stays configured
    assert h.sim.token_requests == 1


async def test_hostile_ids_stay_one_path_segment(make_harness: MakeHarness) -> None:
    """IDs with slashes, dots and query characters reach the vendor as one segment."""
    h = await make_harness()
    ids = ["a/../b", "..", "x?y=1#z", "sp ace%2F"]
    for job_id in ids:
        h.sim.add_job(EVO, job_id, total=10, rate=1)
    await h.start(source_yaml(h.sim, EVO, "evo", ids))
    await h.advance(10)
    for job_id in ids:
        assert h.value("batchjob_poll_success", source="evo", job_id=job_id) == 1, job_id
    seen = {r.job_id for r in h.sim.requests}
    assert seen == set(ids)
    assert all(r.status == 200 for r in h.sim.requests)
    assert any("a%2F..%2Fb" in r.raw_path for r in h.sim.requests)


async def test_not_found_after_three_404s_then_no_more_polls(make_harness: MakeHarness) -> None:
    """A missing job is not_found only after three 404s in a row, then left alone."""
    h = await make_harness()
    await h.start(source_yaml(h.sim, FS, "fs", ["ghost"]))
    await h.advance(10)
    assert h.status("fs", "ghost") is None
    assert h.value("batchjob_poll_success", source="fs", job_id="ghost") == 0
    await h.advance(10)
    assert h.status("fs", "ghost") is None
    await h.advance(10)
    assert h.status("fs", "ghost") == "not_found"
    assert h.value("batchjob_poll_success", source="fs", job_id="ghost") == 1
    polls = len(h.requests(FS))
    assert polls == 3
    await h.advance(50, step=5)
    assert len(h.requests(FS)) == polls


async def test_an_unknown_evocalize_report_is_not_found(make_harness: MakeHarness) -> None:
    """An API with an errors endpoint reaches not_found too, without asking for errors."""
    h = await make_harness()
    await h.start(source_yaml(h.sim, EVO, "evo", ["ghost"]))
    await h.advance(30)
    assert h.status("evo", "ghost") == "not_found"
    assert h.value("batchjob_poll_success", source="evo", job_id="ghost") == 1
    assert [r.raw_path.rsplit("/", 1)[-1] for r in h.sim.requests] == ["ghost"] * 3
    await h.advance(50, step=5)
    assert len(h.requests(EVO)) == 3


async def test_a_job_that_appears_late_is_not_declared_missing(make_harness: MakeHarness) -> None:
    """Two 404s followed by a good answer reset the count: the job is simply running."""
    h = await make_harness()
    await h.start(source_yaml(h.sim, FS, "fs", ["late"]))
    await h.advance(20)
    h.sim.add_job(FS, "late", total=1000, rate=1)
    await h.advance(10)
    assert h.status("fs", "late") == "running"
    await h.advance(20)
    assert h.status("fs", "late") == "running"


async def test_oauth2_token_is_reused_and_renewed_when_refused(make_harness: MakeHarness) -> None:
    """One token serves many polls; when the vendor drops it, a new one is fetched at once."""
    h = await make_harness(credentials=SimCredentials(TalkdeskCredentials(token_ttl=100_000)))
    for i in range(3):
        h.sim.add_job(TD, f"t{i}", total=1000, rate=1)
    await h.start(source_yaml(h.sim, TD, "td", ["t0", "t1", "t2"]))
    await h.advance(40)
    assert h.sim.token_requests == 1
    h.sim.tokens.clear()  # the vendor forgets every token it issued
    await h.advance(10)
    assert h.sim.token_requests == 2
    for i in range(3):
        assert h.value("batchjob_poll_success", source="td", job_id=f"t{i}") == 1


async def test_health_reports_a_stuck_scheduler_loop(make_harness: MakeHarness) -> None:
    """/healthz logic: fine while the loop ticks, unhealthy once it has not for 30 s."""
    h = await make_harness()
    exporter = await h.start(source_yaml(h.sim, FS, "fs", []))
    await h.advance(2)
    assert exporter.health() is None
    h.clock.advance(31)  # no chance for the loop to run before the check
    assert "stuck" in (exporter.health() or "")


async def test_a_failed_start_undoes_what_it_started(make_harness: MakeHarness) -> None:
    """A port in use fails start(); sessions and tasks are closed, nothing leaks."""
    h = await make_harness()
    config = parse_config("sources:\n" + source_yaml(h.sim, FS, "fs", ["a"]), "t.yaml", REGISTRY)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        exporter = Exporter(
            config,
            listen=Listen("127.0.0.1", busy.getsockname()[1]),
            clock=h.clock,
            rng=random.Random(1),
        )
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await exporter.start()
    assert exporter.health() is not None
    await exporter.close()  # start() already closed everything; a second close is harmless


class DyingClock(FakeClock):
    """A clock whose wait fails after a few calls, killing the scheduler loop."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def wait(self, event: asyncio.Event, within: float) -> None:
        """Fail on the second wait (the first background task to wait twice dies)."""
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("clock broke")
        await super().wait(event, within)


async def test_a_dying_background_task_is_logged_and_fatal(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A background task that dies reaches one handler: a critical line and the fatal flag."""
    h = await make_harness()
    config = parse_config("sources:\n" + source_yaml(h.sim, FS, "fs", []), "t.yaml", REGISTRY)
    exporter = Exporter(
        config, listen=Listen("127.0.0.1", 0), clock=DyingClock(), rng=random.Random(1)
    )
    async with exporter:
        async with asyncio.timeout(5):
            await exporter.fatal.wait()
        assert "died" in (exporter.health() or "")
    assert any(r.levelname == "CRITICAL" and "died" in r.getMessage() for r in caplog.records)
