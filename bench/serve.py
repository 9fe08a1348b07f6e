"""One /metrics server of the scrape comparison, in a process of its own.

``python -m bench.serve KIND JOBS SEED NOW`` builds the same jobs (same seed
and clock) and serves them on a free loopback port until stdin closes:

* ``exporter``: this exporter's own objects, wired as ``Exporter`` wires them:
  an :class:`~exporter.app.Exporter` (not started, so nothing polls), its job
  table filled as the poller fills it, and a real
  :class:`~exporter.exposition.server.MetricsServer` rendering ``Exporter.render``.
* ``naive``: the pattern a user would otherwise write: one prometheus_client
  ``Gauge`` per family, ``.labels(...).set()`` per series, running jobs'
  durations set before each scrape, served by prometheus_client's own aiohttp
  handler (``generate_latest`` per scrape; aiohttp's gzip when asked).
* ``floor``: the exporter's page rendered once and kept as its pre-rendered
  chunks; each scrape is one ``b"".join`` of them in a bare aiohttp handler
  (gzip: the page compressed once at level 1 and kept).  No exporter can do less
  per scrape than join its bytes and send them.  ``/metrics`` answers with
  ``web.Response(body=...)`` as the issue describes the floor; ``/metrics/streamed``
  writes the same joined bytes in slices of :data:`~exporter.exposition.server.WRITE_SIZE`,
  which aiohttp and the kernel handle much better for pages of megabytes: the
  stricter floor.

Prints one JSON line: ``{"port", "setup_s", "bytes"}``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.aiohttp import make_aiohttp_handler

from bench.data import SOURCES, config_yaml, fill_table, jobs
from exporter.app import Exporter, Listen
from exporter.config import parse_config
from exporter.exposition.lines import FAMILIES
from exporter.exposition.server import CONTENT_TYPE, WRITE_SIZE, MetricsServer
from exporter.jobs.table import JobTable
from exporter.model import Status
from exporter.vendors import REGISTRY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The naive peer declares its labels up front: the exporter's own, the bench's team, and
# whatever each vendor's parser may add (so a vendor added to the bench needs no edit here).
INFO_LABELS = (
    "api", "vendor_status", "origin", "team",
    *sorted(set().union(*(spec.info_labels for spec in REGISTRY.values()))),
)  # fmt: skip


def build_exporter(n: int, seed: int, now: float) -> Exporter:
    """An exporter holding the benchmark's jobs, as after their polls; not started."""
    text = config_yaml([], "http://127.0.0.1:9/", interval="15s")
    exporter = Exporter(parse_config(text, "bench.yaml", REGISTRY), listen=Listen("127.0.0.1", 0))
    fill_table(exporter.table, jobs(n, seed=seed, now=now))
    for source in SOURCES.values():  # the request counters a running exporter has
        for code, seconds in (("200", 0.004), ("200", 0.02), ("429", 0.003)):
            exporter.stats.request(source, code, seconds)
    exporter.stats.sample_process()
    return exporter


def naive_handler(n: int, seed: int, now: float) -> Handler:
    """The prometheus_client pattern on the same jobs (via a job table, so same values)."""
    table = JobTable(retention=3600)
    fill_table(table, jobs(n, seed=seed, now=now))
    registry = CollectorRegistry(auto_describe=False)
    base = ["source", "job_id"]
    extra = {"batchjob_errors_by_code": ["code"], "batchjob_status": ["status"]}
    extra["batchjob_info"] = list(INFO_LABELS)
    gauges = {
        name: Gauge(name, help_, base + extra.get(name, []), registry=registry)
        for name, help_ in FAMILIES
    }
    running: list[tuple[Gauge, float]] = []
    for e in table:
        ids = e.key
        snap = e.snapshot
        info = dict.fromkeys(INFO_LABELS, "")
        info.update({"api": e.api, "vendor_status": snap.vendor_status if snap else ""})
        info["origin"] = e.origin
        info.update(dict(e.labels) | dict(snap.info if snap else ()))
        gauges["batchjob_info"].labels(*ids, *info.values()).set(1)
        if e.poll_success is not None:
            gauges["batchjob_poll_success"].labels(*ids).set(int(e.poll_success))
        if e.last_success is not None:
            gauges["batchjob_last_poll_success_timestamp_seconds"].labels(*ids).set(e.last_success)
        for code, count in e.errors_by_code or ():
            gauges["batchjob_errors_by_code"].labels(*ids, code).set(count)
        if snap is None:
            continue
        for name, value in (
            ("batchjob_total_items", snap.total_items),
            ("batchjob_remaining_items", snap.remaining_items),
            ("batchjob_completed_items", snap.completed_items),
            ("batchjob_successful_items", snap.successful_items),
            ("batchjob_error_items", snap.error_items),
            ("batchjob_created_timestamp_seconds", snap.created),
            ("batchjob_finished_timestamp_seconds", snap.finished),
        ):
            if value is not None:
                gauges[name].labels(*ids).set(value)
        for status in Status:
            gauges["batchjob_status"].labels(*ids, status.value).set(int(status is snap.status))
        start, end = e.duration_bounds()
        if start is not None:
            child = gauges["batchjob_duration_seconds"].labels(*ids)
            if end is None:
                running.append((child, start))
            else:
                child.set(round(end - start, 3))
    inner = make_aiohttp_handler(registry)

    async def handler(request: web.Request) -> web.StreamResponse:
        now = time.time()
        for child, start in running:
            child.set(max(now - start, 0.0))
        return await inner(request)

    return handler


def floor_handler(chunks: list[bytes]) -> Handler:
    """Pre-rendered chunks joined per scrape, and their gzip made once, from a bare handler."""
    zipped = gzip.compress(b"".join(chunks), 1, mtime=0)

    async def handler(request: web.Request) -> web.StreamResponse:
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"}
            return web.Response(body=zipped, headers=headers)
        return web.Response(body=b"".join(chunks), headers={"Content-Type": CONTENT_TYPE})

    return handler


def streamed_floor_handler(chunks: list[bytes]) -> Handler:
    """The same, the joined bytes written in slices (gzip: the kept gzip, in slices)."""
    zipped = gzip.compress(b"".join(chunks), 1, mtime=0)

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": CONTENT_TYPE}
        body = b"".join(chunks)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = zipped
        resp = web.StreamResponse(headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        view = memoryview(body)
        for start in range(0, len(body), WRITE_SIZE):
            await resp.write(view[start : start + WRITE_SIZE])
        await resp.write_eof()
        return resp

    return handler


async def bare_server(
    handler: Handler, streamed: Handler | None = None
) -> tuple[web.AppRunner, int]:
    """A plain aiohttp app serving ``handler`` at /metrics on a free loopback port."""
    app = web.Application()
    app.router.add_get("/metrics", handler)
    if streamed is not None:
        app.router.add_get("/metrics/streamed", streamed)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def main(kind: str, n: int, seed: int, now: float) -> None:
    """Build, serve, report the port; stop when stdin closes."""
    started = time.perf_counter()
    size = 0
    server: MetricsServer | None = None
    runner: web.AppRunner | None = None
    if kind == "exporter":
        exporter = build_exporter(n, seed, now)
        size = len(exporter.render())
        server = MetricsServer(
            render=lambda: exporter.render(page=True),
            health=lambda: None,
            ready=lambda: True,
            host="127.0.0.1",
            port=0,
        )
        await server.start()
        port = server.port
    elif kind == "floor":
        chunks = list(build_exporter(n, seed, now).render(page=True).chunks())
        size = sum(map(len, chunks))
        runner, port = await bare_server(floor_handler(chunks), streamed_floor_handler(chunks))
    else:
        runner, port = await bare_server(naive_handler(n, seed, now))
    setup = time.perf_counter() - started
    print(json.dumps({"port": port, "setup_s": setup, "bytes": size}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if server is not None:
        await server.close()
    if runner is not None:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
