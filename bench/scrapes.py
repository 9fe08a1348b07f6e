"""The /metrics comparison: exporter, naive prometheus_client peer and floor, same data.

Each server runs in its own process (``bench.serve``), built from the same
seeded jobs at the same clock, and is scraped in turns with others (a batch of
scrapes of one, then of the next), so a slow moment of the machine falls on all
of them alike.  Each encoding is one round of turns: the plain page, then gzip,
then the plain page again (serving gzip must not slow it).
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from bench.client import Scraper, Timings, client_session
from bench.procs import Child, cpu_seconds, memory_mb, spawn

KINDS = ("exporter", "naive", "floor", "floor_streamed")
ENCODINGS = (("identity", False), ("gzip", True), ("identity_again", False))
AGAIN = ("exporter", "floor", "floor_streamed")  # the plain page again, after gzip
SETUP_TIMEOUT = 900.0
TURN = 0.25  # seconds of scraping one server before the next one's turn
MIN_N, MIN_SLOW, MAX_N = 5, 3, 300
Key = tuple[str, ...]
K = TypeVar("K", bound=Hashable)


def job_samples(text: str) -> dict[Key, float]:
    """Per-job samples by name, source, job_id and status/code; info labels left out."""
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("batchjob_") or family.name.startswith("batchjob_exporter"):
            continue
        for s in family.samples:
            lab = s.labels
            extra = lab.get("status") or lab.get("code") or ""
            out[(s.name, lab["source"], lab["job_id"], extra)] = s.value
    return out


def compare_pages(exporter: str, naive: str) -> dict[str, int]:
    """How many per-job samples differ between two pages (running durations: by > 60 s)."""
    a, b = job_samples(exporter), job_samples(naive)
    differ = 0
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        slack = 60.0 if key[0] == "batchjob_duration_seconds" else 1e-9 * abs(x or 0.0)
        if x is None or y is None or abs(x - y) > slack:
            differ += 1
    return {"exporter_samples": len(a), "naive_samples": len(b), "differ": differ}


async def fetch(url: str) -> str:
    """The page at ``url``, uncompressed."""
    identity = {"Accept-Encoding": "identity"}
    async with client_session() as session, session.get(url, headers=identity) as resp:
        body = await resp.read()
    return body.decode()


async def turns(
    scrapers: dict[K, Scraper], pids: dict[K, int], *, use_gzip: bool, budget: float
) -> dict[K, dict[str, Any]]:
    """Scrape the servers in turns; the summary of each.

    Each goes on until it has spent ``budget`` seconds being scraped and has
    :data:`MIN_N` scrapes (:data:`MIN_SLOW` if one takes over a second), or has :data:`MAX_N`.
    """
    got = {kind: Timings() for kind in scrapers}
    cpu = dict.fromkeys(scrapers, 0.0)
    per_turn: dict[K, int] = {}
    least: dict[K, int] = {}
    for kind, scraper in scrapers.items():  # one untimed scrape each, to size the turns
        probe = (await scraper.batch(1, use_gzip=use_gzip)).seconds[0]
        per_turn[kind] = max(1, min(20, int(TURN / max(probe, 1e-4))))
        least[kind] = MIN_SLOW if probe > 1.0 else MIN_N

    def due(kind: K) -> bool:
        n, spent = len(got[kind].seconds), sum(got[kind].seconds)
        return n < least[kind] or (spent < budget and n < MAX_N)

    while waiting := [kind for kind in scrapers if due(kind)]:
        for kind in waiting:
            cpu0 = cpu_seconds(pids[kind])
            got[kind].add(await scrapers[kind].batch(per_turn[kind], use_gzip=use_gzip))
            cpu[kind] += cpu_seconds(pids[kind]) - cpu0
    return {
        kind: {**t.summary(), "server_cpu_ms": round(cpu[kind] / len(t.seconds) * 1000, 2)}
        for kind, t in got.items()
    }


async def start_server(kind: str, n: int, *, seed: int, now: float) -> tuple[Child, dict[str, Any]]:
    """One ``bench.serve`` process, once it serves; and what it said about itself."""
    child = await spawn(kind, "-m", "bench.serve", kind, str(n), str(seed), repr(now))
    try:
        line = await child.wait_for(r'^\{.*"port".*\}$', SETUP_TIMEOUT)
    except BaseException:
        await child.stop()
        raise
    info: dict[str, Any] = json.loads(line.group(0))
    return child, info


class Servers:
    """``bench.serve`` processes, a scraper per URL, and a result row per URL."""

    def __init__(self, *, seed: int, now: float, prefer_curl: bool) -> None:
        self._seed, self._now, self._prefer_curl = seed, now, prefer_curl
        self.children: dict[tuple[str, int], Child] = {}
        self.scrapers: dict[tuple[str, int], Scraper] = {}
        self.pids: dict[tuple[str, int], int] = {}
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}

    async def start(self, kind: str, n: int) -> None:
        """Start ``kind`` with ``n`` jobs (the floor also answers as ``floor_streamed``)."""
        print(f"  /metrics: starting {kind} with {n} jobs ...", flush=True)
        child, info = await start_server(kind, n, seed=self._seed, now=self._now)
        self.children[kind, n] = child
        urls = {kind: f"http://127.0.0.1:{info['port']}/metrics"}
        if kind == "floor":
            urls["floor_streamed"] = urls[kind] + "/streamed"
        for name, url in urls.items():
            self.scrapers[name, n] = Scraper(url, prefer_curl=self._prefer_curl)
            self.pids[name, n] = child.pid
            row = {"kind": name, "jobs": n, "setup_s": round(info["setup_s"], 2)}
            self.rows[name, n] = row | {"client": self.scrapers[name, n].client}

    async def time(self, names: list[tuple[str, int]], *, budget: float) -> None:
        """Every encoding of ``names``, in turns; the plain page again only for :data:`AGAIN`."""
        for enc, use_gzip in ENCODINGS:
            print(f"  /metrics: {enc}: {', '.join(f'{k} {n}' for k, n in names)} ...", flush=True)
            chosen = [key for key in names if enc != "identity_again" or key[0] in AGAIN]
            timed = await turns(
                {key: self.scrapers[key] for key in chosen},
                self.pids,
                use_gzip=use_gzip,
                budget=budget,
            )
            for key, summary in timed.items():
                self.rows[key][enc] = summary

    async def stop(self, kind: str, n: int) -> None:
        """Note the process's memory and stop it."""
        child = self.children.pop((kind, n))
        mem = {k: round(v, 1) for k, v in memory_mb(child.pid).items()}
        for (name, size), row in self.rows.items():
            if size == n and name.startswith(kind):
                row["memory_mb"] = mem
        await child.stop()

    async def close(self) -> None:
        """Stop whatever still runs."""
        for scraper in self.scrapers.values():
            await scraper.close()
        for kind, n in list(self.children):
            await self.stop(kind, n)


async def matrix(
    sizes: list[int], *, seed: int, now: float, budget: float, prefer_curl: bool = True
) -> list[dict[str, Any]]:
    """Every kind at every size.

    The exporter and the floor at every size are up together and scraped in the same
    turns, so the ratios between them (the exporter against the floor, 50k against
    10k) do not depend on how busy the machine was at one moment.  The naive peer,
    hundreds of times slower, is timed on its own at one size after the other; at the
    smallest size its page and the exporter's are compared sample by sample.
    """
    servers = Servers(seed=seed, now=now, prefer_curl=prefer_curl)
    check: dict[str, int] = {}
    try:
        for n in sizes:
            for kind in ("exporter", "floor"):
                await servers.start(kind, n)
        fast = [key for key in servers.rows if key[0] != "naive"]
        await servers.time(fast, budget=budget)
        for n in sizes:
            await servers.start("naive", n)
            await servers.time([("naive", n)], budget=budget)
            if n == min(sizes):
                pages = [await fetch(servers.scrapers[k, n].url) for k in ("exporter", "naive")]
                check = compare_pages(*pages)
            await servers.stop("naive", n)
        for n in sizes:
            for kind in ("exporter", "floor"):
                await servers.stop(kind, n)
    finally:
        await servers.close()
    out = []
    for n in sizes:
        size: dict[str, Any] = {"jobs": n, "rows": [servers.rows[k, n] for k in KINDS]}
        if n == min(sizes):
            size["same_data_check"] = check
        out.append(size)
    return out
