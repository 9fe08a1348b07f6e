"""A page after a round of polls, in-process: what the cached pieces save when jobs change.

The /metrics comparison serves a table that stands still between scrapes, so
every piece stays cached.  In production, every running job is polled between
two scrapes, so the blocks holding running jobs are joined (and, for gzip,
compressed) again at the next scrape; finished jobs' blocks stay cached.  This
times the render and the write-ready chunks (plain) or the gzip form, without
HTTP, for a table left alone and for one whose every running job was just polled.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from bench.serve import build_exporter
from exporter.exposition.server import coalesce

ROUNDS = 9


def run(n: int, *, seed: int) -> dict[str, Any]:
    """Median milliseconds per scrape, static and after a round of polls, plain and gzip."""
    exporter = build_exporter(n, seed, time.time())
    table = exporter.table
    running = [e for e in table if e.snapshot is not None and not e.finished]

    def poll_all(step: int) -> float:
        started = time.perf_counter()
        for entry in running:
            snap = entry.snapshot
            assert snap is not None
            left = snap.remaining_items
            moved = dataclasses.replace(snap, remaining_items=left and max(left - step, 0))
            table.record_success(entry.key, moved, time.time())
        return time.perf_counter() - started

    def scrape(use_gzip: bool) -> float:
        started = time.perf_counter()
        page = exporter.render(page=True)
        chunks = page.gzip() if use_gzip else coalesce(page.chunks())
        sum(map(len, chunks))
        return time.perf_counter() - started

    out: dict[str, Any] = {"jobs": n, "running": len(running)}
    recording: list[float] = []
    for enc, use_gzip in (("plain", False), ("gzip", True)):
        scrape(use_gzip)
        static, live = [], []
        for step in range(ROUNDS):
            static.append(scrape(use_gzip))
            recording.append(poll_all(step + 1))
            live.append(scrape(use_gzip))
        out[enc] = {
            "static_ms": round(statistics.median(static) * 1000, 2),
            "after_polls_ms": round(statistics.median(live) * 1000, 2),
        }
    out["record_poll_us"] = round(statistics.median(recording) / len(running) * 1e6, 1)
    return out
