"""Run the simulator: ``python -m exporter.simulator --listen 127.0.0.1:0 [--demo-jobs]``.

Prints ``simulator listening on http://HOST:PORT/`` once it accepts requests
and serves until SIGTERM or SIGINT, then exits 0.  ``--rate-limit 5 --burst 10``
holds each account to 5 requests per second, 10 at once, as a vendor does
(``PUT /_sim/rate_limit`` changes it while it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
from collections.abc import Sequence

from exporter.simulator.app import Simulator
from exporter.simulator.demo import demo_jobs
from exporter.simulator.ratelimit import RateLimiter
from exporter.simulator.vendors import APIS

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description=f"Serve the simulated vendor job APIs ({', '.join(APIS)}) and /_sim/.",
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="address to listen on (port 0: any free port; default 127.0.0.1:0)",
    )
    parser.add_argument("--demo-jobs", action="store_true", help="add the demo jobs")
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="requests per second each account may make (default: no limit)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        metavar="N",
        help="requests an account may make at once under --rate-limit "
        "(default: one second's worth, at least 1)",
    )
    args = parser.parse_args(argv)
    args.limiter = None
    if args.rate_limit is None:
        if args.burst is not None:
            parser.error("--burst needs --rate-limit")
        return args
    burst = args.burst
    if burst is None and math.isfinite(args.rate_limit):
        burst = max(1, math.ceil(args.rate_limit))
    try:
        args.limiter = RateLimiter(rate=args.rate_limit, burst=burst)
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def serve(
    host: str, port: int, *, demo: bool, rate_limiter: RateLimiter | None = None
) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    sim = Simulator(rate_limiter=rate_limiter)
    try:
        await sim.start(host, port)
        if demo:
            demo_jobs(sim)
        print(f"simulator listening on {sim.url}", flush=True)
        await stop.wait()
    finally:
        await sim.close()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; return the exit code."""
    args = parse_args(argv)
    host, port = args.listen
    try:
        asyncio.run(serve(host, port, demo=args.demo_jobs, rate_limiter=args.limiter))
    except OSError as exc:
        print(f"simulator: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a SIGINT before the handlers were installed
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
