"""Hostile and greedy clients against the exporter's ``/metrics`` listener, in its own process.

- ``concurrent``: 20 scrapes of a 10,000-job page at once must not multiply memory (the
  page's pieces are shared, not copied per request): peak RSS while one scrape runs and
  while 20 run, sampled every few milliseconds from ``/proc``.
- ``slowloris``: 3,000 connections that send a request line and one header and then
  nothing; how long until the exporter has closed every one, its open file descriptors
  meanwhile, and whether scrapes on fresh connections keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import aiohttp

from bench.client import percentile
from bench.procs import memory_mb
from bench.scrapes import start_server
from exporter.exposition.guard import HttpLimits

SAMPLE_EVERY = 0.005
HALF_OPEN = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def _sample_rss(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    """Keep the highest RSS seen in ``peak[0]`` until ``stop`` is set."""
    while not stop.is_set():
        peak[0] = max(peak[0], memory_mb(pid)["rss"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


async def _scrape(session: aiohttp.ClientSession, url: str, use_gzip: bool) -> int:
    headers = {"Accept-Encoding": "gzip" if use_gzip else "identity"}
    async with session.get(url, headers=headers) as resp:
        return len(await resp.read())


async def _peak_during(pid: int, url: str, scrapes: int, use_gzip: bool) -> dict[str, float]:
    """RSS before and at its peak while ``scrapes`` scrapes run at once, a connection each."""
    before = memory_mb(pid)["rss"]
    peak = [before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, peak, stop))
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        sizes = await asyncio.gather(*(_scrape(session, url, use_gzip) for _ in range(scrapes)))
    took = time.perf_counter() - started
    stop.set()
    await sampler
    return {
        "scrapes": scrapes,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak[0], 1),
        "growth_mb": round(peak[0] - before, 1),
        "page_mb": round(sizes[0] / 1e6, 2),
        "seconds": round(took, 3),
    }


async def concurrent(n: int, *, seed: int, now: float, scrapes: int = 20) -> dict[str, Any]:
    """Peak memory of one scrape against ``scrapes`` at once, plain and gzip."""
    child, info = await start_server("exporter", n, seed=seed, now=now)
    url = f"http://127.0.0.1:{info['port']}/metrics"
    try:
        out: dict[str, Any] = {"jobs": n}
        for enc, use_gzip in (("identity", False), ("gzip", True)):
            await _peak_during(child.pid, url, 2, use_gzip)  # warm the caches first
            one = await _peak_during(child.pid, url, 1, use_gzip)
            many = await _peak_during(child.pid, url, scrapes, use_gzip)
            out[enc] = {"one": one, "many": many}
        return out
    finally:
        await child.stop()


async def _half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    writer.write(HALF_OPEN)
    return reader, writer


async def _closed_after(reader: asyncio.StreamReader, sent: float, limit: float) -> float | None:
    """Seconds from ``sent`` until the server closed the connection (``None``: it did not)."""
    try:
        await asyncio.wait_for(reader.read(), limit)
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return time.perf_counter() - sent


async def _scrape_meanwhile(url: str, stop: asyncio.Event, into: list[float | None]) -> None:
    """A scrape on a fresh connection every 0.25 s: its seconds, or ``None`` when it failed."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                await _scrape(session, url, True)
            into.append(time.perf_counter() - started)
        except (aiohttp.ClientError, OSError):
            into.append(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def slowloris(n: int, *, seed: int, now: float, connections: int = 3000) -> dict[str, Any]:
    """``connections`` half-open requests against an exporter with ``n`` jobs, default limits."""
    limits = HttpLimits()
    child, info = await start_server("exporter", n, seed=seed, now=now)
    port = info["port"]
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes: list[float | None] = []
    stop = asyncio.Event()
    try:
        fds_before = open_fds(child.pid)
        meanwhile = asyncio.create_task(_scrape_meanwhile(url, stop, scrapes))
        opened = []
        started = time.perf_counter()
        for at in range(0, connections, 200):
            batch = await asyncio.gather(
                *(_half_open(port) for _ in range(min(200, connections - at)))
            )
            opened += [(c, time.perf_counter()) for c in batch if c is not None]
        sent_all = time.perf_counter() - started
        fds_peak = open_fds(child.pid)
        limit = limits.header_timeout * 3
        closed = await asyncio.gather(*(_closed_after(c[0], t, limit) for c, t in opened))
        fds_after = open_fds(child.pid)
        stop.set()
        await meanwhile
        for (_, writer), _ in opened:
            writer.close()
        times = [t for t in closed if t is not None]
        ok = [t for t in scrapes if t is not None]
        return {
            "jobs": n,
            "connections": connections,
            "opened": len(opened),
            "header_timeout_s": limits.header_timeout,
            "max_connections": limits.max_connections,
            "seconds_to_open_all": round(sent_all, 2),
            "closed_by_exporter": len(times),
            "still_open": len(closed) - len(times),
            "closed_after_max_s": round(max(times), 2) if times else None,
            "closed_after_p50_s": round(percentile(times, 50), 2) if times else None,
            "exporter_fds": {"before": fds_before, "peak": fds_peak, "after": fds_after},
            "scrapes_meanwhile": {
                "ok": len(ok),
                "failed": len(scrapes) - len(ok),
                "p50_ms": round(percentile(ok, 50) * 1000, 1) if ok else None,
                "max_ms": round(max(ok) * 1000, 1) if ok else None,
            },
        }
    finally:
        stop.set()
        await child.stop()


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The hostile-client targets of the issue, measured."""
    out: list[dict[str, Any]] = []
    loris = results.get("slowloris")
    if loris:
        late = loris["closed_after_max_s"] or float("inf")
        within = loris["header_timeout_s"] + 1.0
        out.append(
            {
                "target": f"{loris['connections']} half-open connections closed within "
                "the header timeout (+1 s)",
                "measured": f"{loris['closed_by_exporter']} closed, last after {late:.2f} s",
                "ok": loris["still_open"] == 0 and late <= within,
            }
        )
        meanwhile = loris["scrapes_meanwhile"]
        out.append(
            {
                "target": "scrapes keep working meanwhile",
                "measured": f"{meanwhile['ok']} ok, {meanwhile['failed']} failed",
                "ok": meanwhile["failed"] == 0 and meanwhile["ok"] > 0,
            }
        )
    conc = results.get("concurrent_scrapes")
    if conc:
        many = conc["identity"]["many"]
        # Twenty copies of the page would be 20 pages; buffers per connection are far less.
        out.append(
            {
                "target": f"{many['scrapes']} concurrent scrapes at {conc['jobs']} jobs grow RSS "
                "by less than 2 pages",
                "measured": f"+{many['growth_mb']:.1f} MB for a {many['page_mb']:.1f} MB page",
                "ok": many["growth_mb"] < 2 * many["page_mb"],
            }
        )
    return out


def lines(results: dict[str, Any]) -> list[str]:
    """The section's lines of the table."""
    out: list[str] = []
    loris = results.get("slowloris")
    if loris:
        fds, meanwhile = loris["exporter_fds"], loris["scrapes_meanwhile"]
        out.append(
            f"Slowloris: {loris['opened']} half-open connections (header timeout "
            f"{loris['header_timeout_s']:g} s, max {loris['max_connections']}): "
            f"{loris['closed_by_exporter']} closed by the exporter, p50 after "
            f"{loris['closed_after_p50_s']} s, last after {loris['closed_after_max_s']} s; "
            f"exporter fds {fds['before']} -> peak {fds['peak']} -> {fds['after']}; "
            f"scrapes meanwhile {meanwhile['ok']} ok, {meanwhile['failed']} failed, "
            f"p50 {meanwhile['p50_ms']} ms, max {meanwhile['max_ms']} ms"
        )
    conc = results.get("concurrent_scrapes")
    if conc:
        for enc in ("identity", "gzip"):
            one, many = conc[enc]["one"], conc[enc]["many"]
            out.append(
                f"Concurrent scrapes at {conc['jobs']} jobs ({enc}, {one['page_mb']} MB page): "
                f"RSS +{one['growth_mb']} MB for one, +{many['growth_mb']} MB for "
                f"{many['scrapes']} at once (peak {many['rss_peak_mb']} MB)"
            )
    return out
