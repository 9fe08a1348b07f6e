"""Polling throughput, memory, a churn run and start-up: the real exporter process, measured.

Every run here is :mod:`bench.rig`: the exporter started from a config file as
a user starts it, polling the simulator in another process over loopback, and
scraped every 15 s with gzip as Prometheus would scrape it.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.data import SOURCES, SimSpec, sim_job, sim_jobs
from bench.procs import cpu_seconds
from bench.rig import Rig, least_squares_slope, rig, rounded, summary_of
from exporter.simulator import EVOCALIZE, SimCredentials
from exporter.simulator.vendors import evocalize, vendor_url

SCRAPE_EVERY = 15.0


async def _scraping(r: Rig, seconds: float, into: list[float]) -> None:
    """Scrape every :data:`SCRAPE_EVERY` for ``seconds``, recording each scrape's duration."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        took, _ = await r.scrape()
        into.append(took)
        await asyncio.sleep(min(SCRAPE_EVERY, max(0.0, deadline - time.perf_counter())))


async def throughput(n: int, *, interval: float, window: float, seed: int) -> dict[str, Any]:
    """``n`` running jobs polled every ``interval``: polls/s, lateness, CPU, over ``window``."""
    jobs = sim_jobs(n, seed=seed, running=True)
    async with rig(jobs, interval=f"{interval:g}s") as r:
        await asyncio.sleep(interval + 5.0)  # the first round, spread over one interval
        await r.sim.ask("mark")
        cpu0, sim0, t0 = r.cpu(), cpu_seconds(r.sim.pid), time.perf_counter()
        scrapes: list[float] = []
        await _scraping(r, window, scrapes)
        stats = await r.sim.ask("stats")
        wall = time.perf_counter() - t0
        cpu, sim_cpu = r.cpu() - cpu0, cpu_seconds(r.sim.pid) - sim0
        polls = int(stats["answered"])
        gaps = stats["gaps"]
        return rounded(
            {
                "jobs": n,
                "interval_s": interval,
                "window_s": wall,
                "startup_s": r.startup_s,
                "target_polls_per_s": n / interval,
                "polls_per_s": polls / wall,
                "lateness_p50_s": gaps["p50"] - interval,
                "lateness_p99_s": gaps["p99"] - interval,
                "lateness_max_s": gaps["max"] - interval,
                "exporter_cpu_cores": cpu / wall,
                "exporter_cpu_s_per_1000_polls": cpu / max(polls, 1) * 1000,
                "simulator_cpu_cores": sim_cpu / wall,
                "scrape_gzip_ms": {k: v * 1000 for k, v in summary_of(scrapes).items() if k != "n"},
                "rss_mb": r.memory()["rss"],
            },
            4,
        )


async def simulator_max_rate(seconds: float, workers: int = 32) -> dict[str, Any]:
    """How many job requests per second the simulator answers on loopback, flat out."""
    jobs = [sim_job(EVOCALIZE, f"max{i}", None) for i in range(workers)]
    headers = evocalize.request_headers(SimCredentials())
    report = "/".join(evocalize.REPORT)
    async with rig(jobs, interval="1h", config_jobs=0) as r:
        base = vendor_url(r.sim_url, EVOCALIZE)
        urls = [base + report.format(id=quote(job[1], safe="")) for job in jobs]
        connector = aiohttp.TCPConnector(limit=workers)
        count = 0
        deadline = 0.0

        async def worker(session: aiohttp.ClientSession, url: str) -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    count += resp.status == 200

        async with aiohttp.ClientSession(connector=connector) as session:
            deadline = time.perf_counter() + 1.0  # warm the connections up
            await asyncio.gather(*(worker(session, u) for u in urls))
            count = 0
            sim0, me0 = cpu_seconds(r.sim.pid), _own_cpu()
            t0 = time.perf_counter()
            deadline = t0 + seconds
            await asyncio.gather(*(worker(session, u) for u in urls))
            wall = time.perf_counter() - t0
        return rounded(
            {
                "requests_per_s": count / wall,
                "simulator_cpu_cores": (cpu_seconds(r.sim.pid) - sim0) / wall,
                "client_cpu_cores": (_own_cpu() - me0) / wall,
                "workers": workers,
            }
        )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def memory(n: int, *, seed: int) -> dict[str, Any]:
    """RSS with ``n`` jobs of the realistic mix, once every job was polled and scraped."""
    interval = 15.0 if n <= 10_000 else 60.0  # 50k: keep to ~700 polls/s at most
    async with rig(sim_jobs(n, seed=seed), interval=f"{interval:g}s") as r:
        polled = await r.wait_polled(n, timeout=interval * 4)
        await asyncio.sleep(2.0)
        for _ in range(2):  # the cached pieces and their deflate are part of steady state
            await r.scrape()
        mem = r.memory()
        return rounded(
            {
                "jobs": n,
                "interval_s": interval,
                "startup_s": r.startup_s,
                "all_polled_after_s": polled,
                "rss_mb": mem["rss"],
                "peak_rss_mb": mem["hwm"],
            }
        )


async def churn(
    n: int, *, duration: float, warmup: float, lifetime: tuple[float, float], seed: int
) -> dict[str, Any]:
    """``n`` jobs finishing and replaced by new ones registered through the API: RSS over time.

    Each job runs for a uniform random ``lifetime`` and is kept 30 s after it
    finishes (``finished_job_retention``); new jobs are registered every second to
    hold the table near ``n``.  RSS is read every 5 s; growth is measured after
    ``warmup``, when the table has reached its steady turnover.
    """
    rng = random.Random(seed)
    retention = 30.0
    # The first jobs are part-way through their lives, as in a table that has run for a while.
    first = [
        sim_job(api, job_id, rng.uniform(0.0, lifetime[1]))
        for api, job_id, *_ in sim_jobs(n, seed=seed, running=True)
    ]
    # Jobs leave after their lifetime, half an interval to notice it, and the retention.
    rate = n / (sum(lifetime) / 2 + 7.5 + retention)
    async with rig(first, interval="15s", retention=f"{retention:g}s", api=True) as r:
        assert r.api_port is not None
        api = f"http://127.0.0.1:{r.api_port}/api/v1/sources"
        samples: list[tuple[float, float, int]] = []  # (t, rss, watched)
        registered = since = 0
        watched, scraped_at = n, 0.0
        started = time.perf_counter()
        next_scrape = next_sample = 0.0
        while (t := time.perf_counter() - started) < duration:
            if t >= next_scrape:
                _, watched = await r.scrape()
                scraped_at, since = t, 0
                next_scrape += SCRAPE_EVERY
            if t >= next_sample:
                samples.append((t, r.memory()["rss"], watched))
                next_sample += 5.0
            # Steady turnover, steered towards n by the last count seen on /metrics.
            expected = watched + since - rate * (t - scraped_at)
            want = min(3 * rate, max(0.0, rate + (n - expected) / 5))
            batch = [
                sim_job(api_name, f"churn{registered + i}", rng.uniform(*lifetime))
                for i, api_name in enumerate(rng.choices(list(SOURCES), k=round(want)))
            ]
            for job in batch:
                r.sim.send(" ".join(map(str, job)))
            await _register(r.session, api, batch)
            registered += len(batch)
            since += len(batch)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - started - t)))
        steady = [(t, rss) for t, rss, _ in samples if t >= warmup]
        counts = [w for t, _, w in samples if t >= warmup]
        return rounded(
            {
                "jobs": n,
                "duration_s": duration,
                "warmup_s": warmup,
                "registered": registered,
                "watched_min": min(counts),
                "watched_max": max(counts),
                "rss_start_mb": steady[0][1],
                "rss_end_mb": steady[-1][1],
                "rss_max_mb": max(rss for _, rss in steady),
                "rss_growth_mb": steady[-1][1] - steady[0][1],
                "rss_slope_mb_per_min": least_squares_slope(steady) * 60,
                "rss_samples": [[round(t), round(rss, 1), w] for t, rss, w in samples],
            }
        )


async def _register(session: aiohttp.ClientSession, api: str, batch: list[SimSpec]) -> None:
    async def put(job: SimSpec) -> None:
        url = f"{api}/{SOURCES[job[0]]}/jobs/{quote(job[1], safe='')}"
        async with session.put(url) as resp:
            if resp.status not in (200, 201):
                raise RuntimeError(f"PUT {url}: HTTP {resp.status}")

    await asyncio.gather(*(put(job) for job in batch))


async def startup(n: int, *, seed: int, repeats: int = 3) -> dict[str, Any]:
    """Seconds from process start to ready (``/readyz`` 200) with ``n`` jobs in the config."""
    times: list[float] = []
    for i in range(repeats):
        async with rig(sim_jobs(n, seed=seed + i), interval="15s") as r:
            times.append(r.startup_s)
    return rounded({"jobs": n, "runs": [round(t, 3) for t in times], "best_s": min(times)})
