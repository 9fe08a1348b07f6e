"""State across a SIGKILL: the real process with --storage.path, killed and started again."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import Simulator
from exporter.state.records import JobRecord, decode
from tests.conftest import exporter_process
from tests.harness import EVO, FS, source_yaml

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DEADLINE = 20.0


async def scrape(http: aiohttp.ClientSession, port: int) -> Samples:
    """The exporter's /metrics, parsed; empty while it is not up."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientConnectionError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def job_series(samples: Samples, job_id: str) -> Samples:
    """Every sample of one job."""
    return {k: v for k, v in samples.items() if ("job_id", job_id) in k[1]}


def value(samples: Samples, name: str, job_id: str) -> float | None:
    """The one sample of ``name`` for ``job_id`` (no labels beyond source and job_id)."""
    for (n, labels), v in samples.items():
        if n == name and ("job_id", job_id) in labels and len(labels) == 2:
            return v
    return None


def saved(db: Path) -> dict[str, JobRecord]:
    """The records in the state file right now, read as another process would."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM jobs").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        conn.close()
    records = [decode(data) for (data,) in rows]
    return {r.job_id: r for r in records}


async def eventually(check: object, what: str) -> None:
    """Wait (boundedly, in real time: a real process) until ``check()`` is true."""
    deadline = time.monotonic() + DEADLINE
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_sigkill_and_restart_keep_jobs_first_seen_and_final_values(
    tmp_path: Path, spawned: list[asyncio.subprocess.Process]
) -> None:
    """Jobs from all origins, first-seen times and final values survive; finished stay unpolled."""
    sim = Simulator()
    await sim.start()
    try:
        sim.add_job(EVO, "evo-done", total=20, rate=200, error_every=3)
        sim.add_job(EVO, "evo-run", total=10**6, rate=1)
        sim.add_job(FS, "api-run", total=10**6, rate=1)
        sim.add_job(FS, "dir-run", total=10**6, rate=1)
        watch = tmp_path / "watch"
        watch.mkdir()
        (watch / "jobs.txt").write_text("fs dir-run\n", encoding="utf-8")
        config = tmp_path / "config.yaml"
        config.write_text(
            f"global: {{poll_interval: 1s, watch_dir: '{watch}'}}\nsources:\n"
            + source_yaml(sim, EVO, "evo", ["evo-done", "evo-run"])
            + source_yaml(sim, FS, "fs", []),
            encoding="utf-8",
        )
        db = tmp_path / "state.db"
        port, api_port = free_ports()
        args = (
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--api.listen-address=127.0.0.1:{api_port}",
            f"--storage.path={db}",
        )
        await exporter_process(spawned, *args, capture=False)
        async with aiohttp.ClientSession() as http:

            async def registered() -> bool:
                url = f"http://127.0.0.1:{api_port}/api/v1/sources/fs/jobs/api-run"
                try:
                    async with http.put(url, json={"labels": {"team": "growth"}}) as resp:
                        return resp.status in {200, 201}
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(registered, "the API to take a job")

            async def all_saved() -> bool:
                records = saved(db)
                done = records.get("evo-done")
                return (
                    set(records) == {"evo-done", "evo-run", "api-run", "dir-run"}
                    and all(r.last_success is not None for r in records.values())
                    and done is not None
                    and done.errors_by_code is not None
                )

            await eventually(all_saved, "every job's state in the file")
            before = await scrape(http, port)
            read_at = time.monotonic()
            polls_of_done = sum(1 for r in sim.requests if r.job_id == "evo-done")
            spawned[0].send_signal(signal.SIGKILL)
            await spawned[0].wait()

            await exporter_process(spawned, *args, capture=False)
            polls_at_restart = len(sim.requests)

            async def polled_twice_since() -> bool:
                fresh = [r.job_id for r in sim.requests[polls_at_restart:]]
                return all(fresh.count(j) >= 2 for j in ("evo-run", "api-run", "dir-run"))

            await eventually(polled_twice_since, "the running jobs to be polled again")
            after = await scrape(http, port)
            waited = time.monotonic() - read_at

            async with http.get(f"http://127.0.0.1:{api_port}/api/v1/jobs") as resp:
                jobs = {j["id"]: j for j in (await resp.json())["jobs"]}
            spawned[1].send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                assert await spawned[1].wait() == 0
    finally:
        await sim.close()

    assert {j: jobs[j]["origin"] for j in jobs} == {
        "evo-done": "config",
        "evo-run": "config",
        "api-run": "api",
        "dir-run": "dir",
    }
    assert jobs["api-run"]["labels"] == {"team": "growth"}
    # The finished job: every final series identical, and the vendor never asked again.
    final = job_series(before, "evo-done")
    assert (
        "batchjob_status",
        frozenset({("source", "evo"), ("job_id", "evo-done"), ("status", "completed")}),
    ) in final
    assert any(name == "batchjob_errors_by_code" for name, _ in final)
    restored = job_series(after, "evo-done")
    restored.pop(next(k for k in restored if k[0] == "batchjob_poll_success"), None)
    final.pop(next(k for k in final if k[0] == "batchjob_poll_success"), None)
    assert restored == final
    assert sum(1 for r in sim.requests if r.job_id == "evo-done") == polls_of_done
    # The running job's duration counts from when the first process first saw it.
    d1 = value(before, "batchjob_duration_seconds", "evo-run")
    d2 = value(after, "batchjob_duration_seconds", "evo-run")
    assert d1 is not None
    assert d2 is not None
    assert d2 >= d1 + waited - 1.0


def free_ports() -> tuple[int, int]:
    """Two ports nothing listens on right now."""
    import socket  # noqa: PLC0415 - only this helper needs it

    ports: list[int] = []
    socks = [socket.socket(), socket.socket()]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports[0], ports[1]
