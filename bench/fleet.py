"""A fleet of exporters on one vendor account: its budget held across processes, or not.

Four exporter processes, each watching 2,500 running jobs of its own every
15 s (167 polls/s wanted, 667/s in all), poll a simulator process whose
per-account limiter holds their shared account to 50 requests/s (a burst of
50).  Three runs, each with a simulator of its own:

* ``fleet``: every source says ``account`` and ``max_requests_per_second: 50``
  (the account's budget) and ``global.fleet`` points the four at one real
  ``redis-server`` (a unix socket, no persistence);
* ``alone``: the same settings without ``global.fleet``, each exporter spending
  the 50/s on its own: the vendor's limiter answers the excess 429;
* ``split``: no fleet, each exporter's budget set to its share by hand
  (12.5/s): the same polls per second as with the fleet, without Redis, so that
  the fleet's own CPU is told apart from that of an exporter whose budget binds.

The runs go side by side, so the machine's other load weighs on each alike.
The first minute is warm-up (start-up, the leases settling, the members
counting each other); the second is measured: what each limiter admitted and
rejected, the budget used (admitted/s ÷ 50), and each exporter's CPU (from
``/proc``) per 1,000 of its own requests (from its ``/metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bench.client import accept, client_session
from bench.data import sim_job
from bench.fleetreport import Mark, summarize
from bench.procs import Child, cpu_seconds, memory_mb, spawn, start_simulator
from exporter.simulator import VENDORS
from exporter.simulator.vendors import source_yaml, vendor_url

API = "batch_import_job"  # Fullstory: the account is the API key, the same in every config
EXPORTERS = 4
JOBS_EACH = 2_500
BUDGET = 50  # requests/s: the account's limit at the vendor
INTERVAL = 15.0
SAMPLE_EVERY = 5.0  # the limiters' counts are read this often, for the timeline
REDIS = "/usr/bin/redis-server"  # Debian's (`make bench` installs it)
SERIES = re.compile(r"^(batchjob_exporter_\w+?)(?:\{([^}]*)\})? (\S+)$", re.MULTILINE)
CODE = re.compile(r'code="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Setup:
    """One run: in a fleet or not, and each source's ``max_requests_per_second``."""

    name: str
    fleet: bool
    budget: float


SETUPS = (
    Setup("fleet", True, BUDGET),
    Setup("alone", False, BUDGET),
    Setup("split", False, BUDGET / EXPORTERS),
)


def config_text(sim_url: str, ids: list[str], budget: float, url_file: Path | None) -> str:
    """One exporter's config: its jobs on the shared account, in the fleet if ``url_file``."""
    fleet = ""
    if url_file is not None:
        fleet = (
            f"  fleet:\n    redis_url_file: {json.dumps(str(url_file))}\n"
            f"    name: bench\n    size: {EXPORTERS}\n"
        )
    extra = f"    account: fs-bench\n    max_requests_per_second: {budget:g}\n"
    base = vendor_url(sim_url, API)
    source = source_yaml(API, name=VENDORS[API].prefix, base_url=base, jobs=ids, extra=extra)
    return (
        f"global:\n  poll_interval: {INTERVAL:g}s\n  finished_job_retention: 1h\n"
        f"  max_concurrency: 16\n{fleet}sources:\n{source}"
    )


@contextlib.asynccontextmanager
async def redis_server(directory: Path) -> AsyncIterator[tuple[str, int]]:
    """A redis-server on a unix socket in ``directory``, stopped after: its URL and PID."""
    binary = shutil.which("redis-server") or REDIS
    sock = directory / "redis.sock"
    args = ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(directory), "--loglevel", "warning"]
    log = directory / "redis.log"
    with open(log, "ab") as out:  # noqa: ASYNC230 - set-up, once; the child keeps its own fd
        proc = await asyncio.create_subprocess_exec(binary, *args, stdout=out, stderr=out)
    try:
        client = Redis(unix_socket_path=str(sock))
        deadline = time.monotonic() + 10.0
        while True:
            try:
                await client.ping()
                break
            except (OSError, RedisConnectionError) as exc:  # not listening yet
                if time.monotonic() > deadline or proc.returncode is not None:
                    raise RuntimeError(f"redis-server did not start ({log})") from exc
                await asyncio.sleep(0.05)
        await client.aclose()
        yield f"unix://{sock}", proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _limiter(session: aiohttp.ClientSession, sim_url: str) -> dict[str, Any]:
    async with session.get(sim_url + "_sim/rate_limit") as resp:
        answer: dict[str, Any] = await resp.json()
        return answer


async def _series(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """The exporter's vendor requests so far by code (``code:200``...), and its fleet gauges."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with session.get(url, headers=accept(use_gzip=False)) as resp:
        page = await resp.text()
    out: dict[str, float] = {}
    for name, labels, value in SERIES.findall(page):
        if name == "batchjob_exporter_api_requests_total":
            code = CODE.search(labels)
            key = f"code:{code.group(1) if code else '?'}"
            out[key] = out.get(key, 0.0) + float(value)
        elif name in ("batchjob_exporter_fleet_up", "batchjob_exporter_fleet_members"):
            out[name.removeprefix("batchjob_exporter_")] = float(value)
    return out


async def _mark(
    session: aiohttp.ClientSession,
    sim_url: str,
    exporters: list[Child],
    ports: list[int],
    *,
    redis_pid: int | None,
    t: float,
    start: bool,
) -> Mark:
    """Each exporter's CPU read next to its scrape, so that no scrape's CPU is in the window."""
    limiter = await _limiter(session, sim_url)
    redis_cpu = 0.0 if redis_pid is None else cpu_seconds(redis_pid)
    series, cpu = [], []
    for child, port in zip(exporters, ports, strict=True):
        if start:  # the window's start: scrape, then CPU
            series.append(await _series(session, port))
            cpu.append(cpu_seconds(child.pid))
        else:  # its end: CPU, then scrape
            cpu.append(cpu_seconds(child.pid))
            series.append(await _series(session, port))
    return Mark(t, limiter, series, cpu, redis_cpu)


async def _start(setup: Setup, tmp: Path, url_file: Path | None) -> tuple[Child, str, list[Child]]:
    """The run's simulator (its limiter off until the exporters serve) and its exporters."""
    jobs = [sim_job(API, f"fleet{i}-{n}", None) for i in range(EXPORTERS) for n in range(JOBS_EACH)]
    spec = tmp / "sim.json"
    spec.write_text(json.dumps({"jobs": jobs}), encoding="utf-8")
    sim, sim_url = await start_simulator(str(spec))
    exporters = []
    for i in range(EXPORTERS):
        ids = [f"fleet{i}-{n}" for n in range(JOBS_EACH)]
        path = tmp / f"exporter{i}.yaml"
        text = config_text(sim_url, ids, setup.budget, url_file if setup.fleet else None)
        path.write_text(text, encoding="utf-8")
        args = ("-m", "exporter", f"--config.file={path}", "--web.listen-address=127.0.0.1:0")
        exporters.append(await spawn(f"{setup.name} exporter {i}", *args))
    return sim, sim_url, exporters


async def one_run(
    setup: Setup, tmp: Path, redis: tuple[Path, int], *, warmup: float, window: float
) -> dict[str, Any]:
    """Four exporters for ``warmup`` then ``window`` seconds; what the window measured.

    ``redis`` is the file holding the fleet's Redis URL and the server's PID.
    """
    url_file, pid = redis
    redis_pid = pid if setup.fleet else None
    sim, sim_url, exporters = await _start(setup, tmp, url_file)
    async with client_session() as session:
        try:
            ports = []
            for child in exporters:
                match = await child.wait_for(r"serving /metrics on port (\d+)", 120)
                ports.append(int(match.group(1)))
            # The limiter comes on (full buckets, counts at 0) once all four poll.
            body = {"rate": BUDGET, "burst": BUDGET}
            async with session.put(sim_url + "_sim/rate_limit", json=body) as resp:
                resp.raise_for_status()
            started = time.perf_counter()
            samples: list[list[float]] = []
            first: Mark | None = None
            while (t := time.perf_counter() - started) < warmup + window:
                counts = await _limiter(session, sim_url)
                samples.append([round(t, 2), counts["admitted"], counts["rejected"]])
                if first is None and t >= warmup:
                    first = await _mark(
                        session, sim_url, exporters, ports, redis_pid=redis_pid, t=t, start=True
                    )
                await asyncio.sleep(SAMPLE_EVERY - (time.perf_counter() - started) % SAMPLE_EVERY)
            assert first is not None
            now = time.perf_counter() - started
            last = await _mark(
                session, sim_url, exporters, ports, redis_pid=redis_pid, t=now, start=False
            )
            counts = last.limiter
            samples.append([round(last.t, 2), counts["admitted"], counts["rejected"]])
            rss = [memory_mb(child.pid)["rss"] for child in exporters]
        finally:
            await asyncio.gather(*(child.stop() for child in exporters))
            await sim.stop()
    head = {"run": setup.name, "fleet": setup.fleet, "source_budget_rps": setup.budget}
    return summarize(head, BUDGET, first, last, rss=rss, samples=samples)


async def section(*, quick: bool) -> dict[str, Any]:
    """The whole "fleet" section: the three runs side by side."""
    warmup, window = (20.0, 20.0) if quick else (60.0, 60.0)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as name:
        tmp = Path(name)
        async with redis_server(tmp) as (url, redis_pid):
            url_file = tmp / "redis-url"
            url_file.write_text(url, encoding="utf-8")
            dirs = [tmp / f"run{i}" for i in range(len(SETUPS))]
            for d in dirs:
                d.mkdir()
            runs = await asyncio.gather(
                *(
                    one_run(s, d, (url_file, redis_pid), warmup=warmup, window=window)
                    for s, d in zip(SETUPS, dirs, strict=True)
                )
            )
    took = time.perf_counter() - began
    by = {run["run"]: run for run in runs}
    return {
        "exporters": EXPORTERS,
        "jobs_each": JOBS_EACH,
        "budget_rps": BUDGET,
        "interval_s": INTERVAL,
        "warmup_s": warmup,
        "runs": runs,
        "cpu_ratio": by["fleet"]["cpu_s_per_1000_polls"] / by["alone"]["cpu_s_per_1000_polls"],
        "cpu_ratio_split": (
            by["fleet"]["cpu_s_per_1000_polls"] / by["split"]["cpu_s_per_1000_polls"]
        ),
        "duration_s": round(took, 1),
    }
