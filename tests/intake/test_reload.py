"""Config reload: the file watcher, refused configs, and what a reload keeps and drops."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from exporter.clock import FakeClock
from exporter.config import Config, load_config
from exporter.intake.reload import CHECK_INTERVAL, Reloader
from exporter.simulator import Fault
from exporter.vendors import REGISTRY
from tests.conftest import settle
from tests.harness import EVO, FS, Harness, source_yaml, until

MakeHarness = Callable[..., Awaitable[Harness]]
SOURCES = "sources:\n  - {name: a, api: batch_import_job, base_url: 'http://127.0.0.1:9/'}\n"
GOOD = SOURCES


def configmap(root: Path, version: str, text: str) -> Path:
    """Lay out ``root`` as Kubernetes mounts a ConfigMap: a swapped ``..data`` symlink."""
    data = root / f"..{version}"
    data.mkdir()
    (data / "config.yaml").write_text(text, encoding="utf-8")
    tmp = root / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, root / "..data")
    link = root / "config.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/config.yaml")
    return link


class Recorder:
    """A Reloader's apply and outcome callbacks, remembered."""

    def __init__(self) -> None:
        self.applied: list[Config] = []
        self.outcomes: list[bool] = []

    async def apply(self, config: Config) -> None:
        """Remember an applied config."""
        self.applied.append(config)

    def outcome(self, ok: bool) -> None:
        """Remember whether a reload worked."""
        self.outcomes.append(ok)


def reloader(path: Path, rec: Recorder, clock: FakeClock) -> Reloader:
    """A Reloader on ``path`` that records what it does."""
    return Reloader(
        str(path),
        load=lambda p: load_config(p, REGISTRY),
        apply=rec.apply,
        outcome=rec.outcome,
        clock=clock,
    )


async def test_a_changed_file_is_reloaded_once(tmp_path: Path, clock: FakeClock) -> None:
    """The watcher applies a new ConfigMap version once, and nothing while it is unchanged."""
    link = configmap(tmp_path, "v1", GOOD)
    rec = Recorder()
    async with reloader(link, rec, clock):
        clock.advance(CHECK_INTERVAL)
        await settle()
        assert rec.applied == []
        configmap(tmp_path, "v2", "global: {poll_interval: 1m}\n" + SOURCES)
        clock.advance(CHECK_INTERVAL)
        await until(lambda: len(rec.applied) == 1, "the reload")
        clock.advance(CHECK_INTERVAL)
        await settle()
    assert rec.applied[0].global_.poll_interval == 60.0
    assert rec.outcomes == [True]


async def test_a_bad_config_is_refused_and_logged_once(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An invalid file is not applied; the problem, with its line, is logged once."""
    link = configmap(tmp_path, "v1", GOOD)
    rec = Recorder()
    async with reloader(link, rec, clock) as r:
        configmap(tmp_path, "v2", "global:\n  poll_interval: often\n")
        await settle()
        clock.advance(CHECK_INTERVAL)
        await until(lambda: rec.outcomes == [False], "the refused reload")
        clock.advance(CHECK_INTERVAL)
        await settle()
        assert rec.outcomes == [False]
        problem = await r.reload("test")
    assert problem == (
        f"{link}:1:1: sources: required key is missing\n"
        f'{link}:2:18: global.poll_interval: invalid duration "often": expected a number before'
        ' "often"'
    )
    assert rec.applied == []
    failures = [m for m in caplog.messages if "config reload (file changed) failed" in m]
    assert len(failures) == 1


async def test_reload_adds_drops_and_keeps_jobs(make_harness: MakeHarness, tmp_path: Path) -> None:
    """Kept jobs keep their state and schedule, new ones are polled, removed ones vanish."""
    h = await make_harness()
    for job_id in ("keep", "drop", "new"):
        h.sim.add_job(FS, job_id, total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["keep", "drop"]), path=path)
    await h.advance(10)
    polls_of_keep = sum(1 for r in h.sim.requests if r.job_id == "keep")
    first = h.value("batchjob_last_poll_success_timestamp_seconds", source="fs", job_id="keep")
    path.write_text(
        h.config_text(
            source_yaml(h.sim, FS, "fs", ["keep", "new"]).replace(
                "      - 'keep'\n", "      - {id: keep, labels: {team: growth}}\n"
            )
        ),
        encoding="utf-8",
    )
    assert await exporter.reload("test") is None
    assert h.value("batchjob_status", source="fs", job_id="drop", status="running") is None
    assert sum(1 for r in h.sim.requests if r.job_id == "keep") == polls_of_keep
    assert (
        h.value("batchjob_last_poll_success_timestamp_seconds", source="fs", job_id="keep") == first
    )
    info = [k for k in h.samples() if k[0] == "batchjob_info" and ("job_id", "keep") in k[1]]
    assert ("team", "growth") in info[0][1]
    await h.advance(10)
    assert h.status("fs", "new") == "running"
    assert h.value("batchjob_exporter_config_last_reload_successful") == 1


async def test_a_refused_reload_leaves_the_old_config_serving(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A config with problems changes nothing, and the reload gauge goes to 0 until fixed."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["j1"]), path=path)
    await h.advance(10)
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("batch_import_job", "no_such_api"), encoding="utf-8")
    problem = await exporter.reload("test")
    assert problem == (
        f'{path}:6:10: sources[0].api: unknown API "no_such_api"; known APIs: batch_import_job,'
        " evocalize_batch_report, report_job"
    )
    assert h.value("batchjob_exporter_config_last_reload_successful") == 0
    await h.advance(10)
    assert h.status("fs", "j1") == "running"
    path.write_text(good, encoding="utf-8")
    assert await exporter.reload("test") is None
    assert h.value("batchjob_exporter_config_last_reload_successful") == 1


async def test_post_reload_over_http(make_harness: MakeHarness, tmp_path: Path) -> None:
    """POST /-/reload answers 200 when applied and 500 with the problem when refused."""
    h = await make_harness()
    path = tmp_path / "config.yaml"
    exporter = await h.start(source_yaml(h.sim, FS, "fs", []), path=path)
    url = f"http://127.0.0.1:{exporter.port}/-/reload"
    async with aiohttp.ClientSession() as session:
        async with session.post(url) as resp:
            assert resp.status == 200
        path.write_text("sources: 3\n", encoding="utf-8")
        async with session.post(url) as resp:
            assert resp.status == 500
            assert await resp.text() == (
                f"config reload failed:\n{path}:1:10: sources: expected a list, got an integer\n"
            )
        async with session.get(url) as resp:
            assert resp.status == 405


async def test_reload_is_unavailable_without_a_config_file(make_harness: MakeHarness) -> None:
    """An exporter started from a config object (the demo) says it cannot reload."""
    h = await make_harness()
    exporter = await h.start(source_yaml(h.sim, FS, "fs", []))
    assert await exporter.reload("test") == "no config file to reload (started with --demo)"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{exporter.port}/-/reload") as resp,
    ):
        assert resp.status == 404


async def test_a_changed_source_keeps_its_retry_after_window(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A reload that changes a source's settings does not reopen a Retry-After window early."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["j1"]), path=path)
    h.sim.set_fault(FS, Fault("rate_limit", retry_after="120", count=1))
    await h.advance(10)
    limited = h.requests(FS)
    limited_at = limited[-1]
    # A job new in the reload is due within the window: only the kept gate holds it back.
    h.sim.add_job(FS, "j2", total=10_000, rate=1)
    jobs = ["j1", "j2"]
    path.write_text(
        h.config_text(source_yaml(h.sim, FS, "fs", jobs, extra="    poll_interval: 5s\n")),
        encoding="utf-8",
    )
    assert await exporter.reload("test") is None
    await h.advance(110, step=5)
    assert h.requests(FS) == limited
    await h.advance(30, step=5)
    # The window is 120 s; the seeded jitter puts the first request back 1 s later.
    assert h.requests(FS)[len(limited)] - limited_at == 121.0


async def test_removed_source_and_api_change_start_jobs_over(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A source removed takes its jobs along; a source whose API changed starts them afresh."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    h.sim.add_job(EVO, "j1", total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    sources = source_yaml(h.sim, FS, "a", ["j1"]) + source_yaml(h.sim, FS, "b", [])
    exporter = await h.start(sources, path=path)
    assert exporter.watchlist.watch("b", "j1", (("team", "x"),))
    await h.advance(10)
    assert h.status("b", "j1") == "running"
    path.write_text(h.config_text(source_yaml(h.sim, EVO, "b", [])), encoding="utf-8")
    assert await exporter.reload("test") is None
    assert h.value("batchjob_status", source="a", job_id="j1", status="running") is None
    jobs = {(j["source"], j["id"]): j for j in exporter.watchlist.jobs()}
    assert set(jobs) == {("b", "j1")}
    assert jobs["b", "j1"]["api"] == EVO
    assert jobs["b", "j1"]["origin"] == "api"
    assert jobs["b", "j1"]["labels"] == {"team": "x"}
    await h.advance(10)
    assert h.status("b", "j1") == "running"
    assert [(r.api, r.job_id) for r in h.sim.requests if r.api == EVO] == [(EVO, "j1")]


async def test_drain_lets_a_slow_poll_finish(make_harness: MakeHarness) -> None:
    """drain() waits for a poll in flight, which then records its answer."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["j1"]))
    h.sim.set_fault(FS, Fault("slow", delay=0.2, count=1))
    h.clock.advance(10)
    await until(lambda: not exporter.idle(), "the slow poll to start")
    draining = asyncio.ensure_future(exporter.drain(5.0))
    await until(exporter.idle, "the slow poll to finish")
    await draining
    assert h.status("fs", "j1") == "running"


async def test_a_source_that_cannot_be_set_up_refuses_the_reload(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A CA file that does not load refuses the whole reload, changing nothing."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["j1"]), path=path)
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate\n", encoding="utf-8")
    tls = f"    tls_config: {{ca_file: '{bad_ca}'}}\n"
    sources = source_yaml(h.sim, FS, "fs", ["j1", "j2"], extra=tls)
    path.write_text(h.config_text(sources), encoding="utf-8")
    problem = await exporter.reload("test")
    assert problem == (
        f"{path}:9:27: sources[0].tls_config.ca_file: fs: cannot set up its HTTP client:"
        f' cannot load "{bad_ca}": no PEM certificate found (NO_CERTIFICATE_OR_CRL_FOUND)'
    )
    assert h.value("batchjob_exporter_config_last_reload_successful") == 0
    assert {j["id"] for j in exporter.watchlist.jobs()} == {"j1"}
    await h.advance(10)
    assert h.status("fs", "j1") == "running"


async def test_self_metrics_start_at_zero_and_leave_with_their_source(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """Per-source counters exist from the start, and a source reloaded away takes its series."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    both = source_yaml(h.sim, FS, "fs", ["j1"]) + source_yaml(h.sim, FS, "other", [])
    exporter = await h.start(both, path=path)
    assert h.value("batchjob_exporter_rate_limited_total", source="other") == 0
    assert h.value("batchjob_exporter_rate_limited_seconds_total", source="fs") == 0
    h.sim.set_fault(FS, Fault("server_error", count=1))
    await h.advance(10)
    assert h.value("batchjob_exporter_poll_failures_total", source="fs", reason="server_error") == 1
    path.write_text(h.config_text(source_yaml(h.sim, FS, "other", [])), encoding="utf-8")
    assert await exporter.reload("test") is None
    left = {labels for name, labels in h.samples() if ("source", "fs") in labels}
    assert left == set()
    assert h.value("batchjob_exporter_rate_limited_total", source="other") == 0


async def test_a_request_in_flight_to_a_removed_source_does_not_break_the_next_reload(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A late answer for a source reloaded away revives no series and breaks no reload."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    keep = source_yaml(h.sim, EVO, "keep", [])
    exporter = await h.start(source_yaml(h.sim, FS, "b", ["j1"]) + keep, path=path)
    h.sim.set_fault(FS, Fault("slow", delay=0.3, count=1))
    h.clock.advance(10)
    await until(lambda: not exporter.idle(), "the slow poll to start")
    path.write_text(h.config_text(keep), encoding="utf-8")
    assert await exporter.reload("test") is None
    await until(exporter.idle, "the slow poll to finish")
    assert [k for k in h.samples() if ("source", "b") in k[1]] == []
    path.write_text(h.config_text(keep, "  max_concurrency: 4\n"), encoding="utf-8")
    assert await exporter.reload("test") is None
    assert h.value("batchjob_exporter_config_last_reload_successful") == 1


async def test_a_new_rate_cap_or_a_source_back_keeps_the_retry_after_window(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """Neither a changed rate cap nor removing and re-adding a source reopens a window."""
    h = await make_harness()
    for job_id in ("j1", "j2", "j3"):
        h.sim.add_job(FS, job_id, total=10_000, rate=1)
    path = tmp_path / "config.yaml"
    evo = source_yaml(h.sim, EVO, "evo", [])
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["j1"]) + evo, path=path)
    h.sim.set_fault(FS, Fault("rate_limit", retry_after="300", count=1))
    await h.advance(10)
    limited = h.requests(FS)
    capped = "    max_requests_per_second: 0.5\n"
    path.write_text(
        h.config_text(source_yaml(h.sim, FS, "fs", ["j1", "j2"], extra=capped) + evo),
        encoding="utf-8",
    )
    assert await exporter.reload("test") is None
    await h.advance(60, step=5)
    path.write_text(h.config_text(evo), encoding="utf-8")
    assert await exporter.reload("test") is None
    path.write_text(h.config_text(source_yaml(h.sim, FS, "fs", ["j3"]) + evo), encoding="utf-8")
    assert await exporter.reload("test") is None
    await h.advance(60, step=5)
    assert h.requests(FS) == limited
