"""The real exporter process polling the simulator process: start, observe, stop.

A :class:`Rig` is the pair ``python -m bench.simproc`` and ``python -m exporter
--config.file=...`` on loopback, with the config written for the simulated jobs.
It measures the exporter from outside only: ``/proc`` for CPU and memory, HTTP
for ``/metrics`` and ``/readyz``, and the simulator's counts for polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.client import client_session
from bench.data import SimSpec, config_yaml
from bench.procs import Child, cpu_seconds, memory_mb, spawn, start_simulator

WATCHED = re.compile(rb"^batchjob_exporter_watched_jobs\{[^}]*\} (\d+)$", re.MULTILINE)


@dataclass(slots=True)
class Rig:
    """The simulator and the exporter, running."""

    sim: Child
    sim_url: str
    exporter: Child
    port: int
    api_port: int | None
    startup_s: float
    session: aiohttp.ClientSession

    @property
    def metrics_url(self) -> str:
        """The exporter's /metrics."""
        return f"http://127.0.0.1:{self.port}/metrics"

    def cpu(self) -> float:
        """CPU seconds the exporter has used."""
        return cpu_seconds(self.exporter.pid)

    def memory(self) -> dict[str, float]:
        """The exporter's RSS now and at its peak, MB."""
        return memory_mb(self.exporter.pid)

    async def scrape(self) -> tuple[float, int]:
        """One gzip scrape as Prometheus does it: seconds, and watched jobs on the page."""
        started = time.perf_counter()
        headers = {"Accept-Encoding": "gzip"}
        async with self.session.get(self.metrics_url, headers=headers) as resp:
            body = await resp.read()
        seconds = time.perf_counter() - started
        page = gzip.decompress(body)
        return seconds, sum(int(n) for n in WATCHED.findall(page))

    async def wait_polled(self, n: int, timeout: float) -> float:
        """Wait until the simulator has answered for ``n`` distinct jobs since its mark."""
        started = time.perf_counter()
        while (await self.sim.ask("stats"))["jobs_seen"] < n:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"fewer than {n} jobs polled in {timeout}s")
            await asyncio.sleep(1.0)
        return time.perf_counter() - started


async def _ready(port: int, session: aiohttp.ClientSession) -> None:
    async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
        if resp.status != 200:
            raise RuntimeError(f"exporter up but /readyz says {resp.status}")


@contextlib.asynccontextmanager
async def rig(
    sim_jobs: list[SimSpec],
    *,
    interval: str,
    retention: str = "1h",
    config_jobs: int | None = None,
    api: bool = False,
) -> AsyncIterator[Rig]:
    """Simulator with ``sim_jobs``, exporter watching the first ``config_jobs`` of them."""
    watched = sim_jobs if config_jobs is None else sim_jobs[:config_jobs]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec = Path(tmp, "sim.json")
        spec.write_text(json.dumps({"jobs": sim_jobs}), encoding="utf-8")  # noqa: ASYNC240 - set-up
        sim, url = await start_simulator(str(spec))
        exporter: Child | None = None
        try:
            config = Path(tmp, "config.yaml")
            pairs = [(job[0], job[1]) for job in watched]
            text = config_yaml(pairs, url, interval=interval, retention=retention)
            config.write_text(text, encoding="utf-8")  # noqa: ASYNC240 - set-up
            await sim.ask("mark")
            extra = ["--api.listen-address=127.0.0.1:0", "--api.max-jobs-per-source=100000"]
            exporter = await spawn(
                "exporter",
                "-m",
                "exporter",
                f"--config.file={config}",
                "--web.listen-address=127.0.0.1:0",
                *(extra if api else []),
            )
            match = await exporter.wait_for(r"serving /metrics on port (\d+)", 300)
            startup = time.perf_counter() - exporter.started
            api_port = None
            if api:
                api_match = await exporter.wait_for(r"registration API on port (\d+)", 60)
                api_port = int(api_match.group(1))
            async with client_session() as session:
                await _ready(int(match.group(1)), session)
                yield Rig(sim, url, exporter, int(match.group(1)), api_port, startup, session)
        finally:
            if exporter is not None:
                await exporter.stop()
            await sim.stop()


def summary_of(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (nearest rank), rounded."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def q(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 4)

    return {"n": len(ordered), "p50": q(0.5), "p99": q(0.99), "max": q(1.0)}


def least_squares_slope(points: list[tuple[float, float]]) -> float:
    """The slope of the best straight line through ``points`` (0 with fewer than two)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def rounded(row: dict[str, Any], digits: int = 3) -> dict[str, Any]:
    """``row`` with its floats rounded, for the JSON."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in row.items()}
