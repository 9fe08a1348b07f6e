"""The soak's simulator: ``python -m soak.simproc --exporters N --log PATH --rate R``.

One :class:`~exporter.simulator.Simulator` (one set of jobs, one per-account
rate limiter) listening on one port per exporter, so that every request is
known by the exporter that sent it: the simulator's own request log names no
client.  Each vendor request is written to ``--log`` as one JSON line when it
has been answered: arrival and answer (wall seconds), the exporter's index, the
route's target, the job, the status and any ``Retry-After``.  Besides
``/_sim/``, it answers two control paths of the soak's own:

* ``PUT /_soak/drop`` ``{"target": API, "count": N}``: the next N requests to
  that target are cut off before any answer (the connection is aborted; status
  0 in the log).  The simulator's fault kinds have no dropped connection, and
  this is the harness's doing, not a vendor behaviour the simulator models.
* ``POST /_soak/truth`` ``[[api, id], ...]``: each job's state now, from the
  simulator's own job model: finished or not, outcome, items, failed items by code.

Prints ``simulator listening on URL URL ...`` (one per exporter) and serves
until SIGTERM, then flushes the log and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Sequence
from typing import IO, Any

from aiohttp import web

from exporter.simulator import Simulator, split_path
from exporter.simulator.ratelimit import RateLimiter
from exporter.simulator.state import RecordedRequest
from exporter.simulator.vendors import ROUTES, VENDORS

DROPPED = 0  # the status logged for a request whose connection was cut
CLIENT_GONE = 499
ERRORS_PAGE = 4
KEEP_RECORDS = 2000  # the parent's in-memory request log is trimmed: ours is the file


def route_of(method: str, segments: list[str]) -> tuple[str | None, str | None]:
    """The target (an API, or a token endpoint) and job ID a vendor request is for."""
    for route in ROUTES:
        params = route.match(segments)
        if params is not None and route.method == method:
            return route.target, params.get("id")
    return None, None


class SoakSimulator(Simulator):
    """A simulator on several ports that logs each request with the port it came in on."""

    def __init__(self, log: IO[str], *, rate_limiter: RateLimiter | None) -> None:
        # Pages of 4 failed items: a job's listing takes a few pages, not a dozen polls.
        super().__init__(rate_limiter=rate_limiter, errors_page_size=ERRORS_PAGE)
        self._log = log
        self._ports: dict[int, int] = {}  # local port -> exporter index
        self._drops: dict[str, int] = {}
        self._sites: list[web.TCPSite] = []
        self.urls: list[str] = []

    async def listen(self, exporters: int) -> None:
        """Listen on one loopback port per exporter (the first is :attr:`url`)."""
        await self.start("127.0.0.1", 0)
        runner = self._runner
        assert runner is not None
        first = runner.addresses[0][1]
        self._ports[first] = 0
        self.urls.append(self.url)
        for index in range(1, exporters):
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._sites.append(site)
            port = next(a[1] for a in runner.addresses if a[1] not in self._ports)
            self._ports[port] = index
            self.urls.append(f"http://127.0.0.1:{port}/")

    def _settle(self, record: RecordedRequest, status: int) -> None:
        super()._settle(record, status)
        if len(self.requests) > 10 * KEEP_RECORDS:
            del self.requests[:-KEEP_RECORDS]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segments = split_path(request.raw_path) or []
        if segments[:1] == ["_soak"]:
            return await self._control(request, segments[1:])
        if segments[:1] == ["_sim"]:
            return await super()._dispatch(request)
        arrived = time.time()
        transport = request.transport
        sockname = None if transport is None else transport.get_extra_info("sockname")
        exporter = self._ports.get(sockname[1], -1) if sockname else -1
        target, job_id = route_of(request.method, segments)
        status, retry_after = CLIENT_GONE, None
        try:
            if target is not None and self._drops.get(target, 0) > 0 and transport is not None:
                self._drops[target] -= 1
                status = DROPPED
                transport.abort()
                await asyncio.sleep(3600)  # cancelled: the connection is gone
            response = await super()._dispatch(request)
            status, retry_after = response.status, response.headers.get("Retry-After")
            return response
        finally:
            line = {
                "t": arrived,
                "end": time.time(),
                "e": exporter,
                "target": target,
                "job": job_id,
                "status": status,
                "ra": retry_after,
            }
            self._log.write(json.dumps(line, separators=(",", ":")) + "\n")

    async def _control(self, request: web.Request, path: list[str]) -> web.Response:
        body: Any = await request.json() if request.can_read_body else None
        if request.method == "PUT" and path == ["drop"] and isinstance(body, dict):
            self._drops[str(body["target"])] = int(body["count"])
            return web.json_response(self._drops)
        if request.method == "POST" and path == ["truth"] and isinstance(body, list):
            return web.json_response([self._truth(str(api), str(ident)) for api, ident in body])
        return web.json_response({"error": "no such soak control"}, status=404)

    def _truth(self, api: str, job_id: str) -> dict[str, object]:
        job = self.find_job(api, job_id)
        if job is None:
            return {"api": api, "id": job_id, "exists": False}
        now = self.clock()
        errors = job.errors(now)
        codes = VENDORS[api].error_code_counts(errors)
        return {
            "api": api,
            "id": job_id,
            "exists": True,
            "finished": job.is_finished(now),
            "finished_at": job.finished_at(now),
            "outcome": job.final_outcome,
            "total": job.total,
            "processed": job.processed(now),
            "errors": errors,
            "codes": {("unknown" if code is None else code): n for code, n in codes.items()},
        }


async def serve(exporters: int, log_path: str, limiter: RateLimiter | None) -> None:
    """Serve until SIGTERM or SIGINT; the log is flushed on the way out."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with open(log_path, "a", encoding="utf-8") as log:  # noqa: ASYNC230 - before serving
        sim = SoakSimulator(log, rate_limiter=limiter)
        try:
            await sim.listen(exporters)
            print("simulator listening on", *sim.urls, flush=True)
            await stop.wait()
        finally:
            await sim.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak's simulator; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m soak.simproc")
    parser.add_argument("--exporters", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--rate", type=float, required=True, help="each account's requests/s")
    parser.add_argument("--burst", type=int, required=True)
    args = parser.parse_args(argv)
    limiter = RateLimiter(rate=args.rate, burst=args.burst)
    asyncio.run(serve(args.exporters, args.log, limiter))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
