"""The ``batch-job-exporter`` command: Prometheus-style flags, signals, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from exporter import __version__, logs
from exporter.api import JobsApiServer
from exporter.apis import REGISTRY
from exporter.app import Exporter, Listen
from exporter.config import Config, ConfigError, load_config

LOG = logging.getLogger("exporter")

# Outside the 9100-9999 range Prometheus' port registry has filled, so it collides with
# no registered exporter; see the README.
DEFAULT_PORT = 10113


def parse_listen(value: str) -> Listen:
    """``HOST:PORT``, ``[::1]:PORT`` or ``:PORT`` (every interface)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return Listen(host.strip("[]"), int(port))


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags, named as Prometheus' own exporters name them."""
    p = argparse.ArgumentParser(
        prog="batch-job-exporter",
        description="Prometheus exporter for vendor batch import and report jobs.",
    )
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML config file")
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        type=parse_listen,
        default=Listen("", DEFAULT_PORT),
        metavar="HOST:PORT",
        help=f"address for /metrics (default :{DEFAULT_PORT})",
    )
    p.add_argument(
        "--api.listen-address",
        dest="api_listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="serve the job registration API here (off by default; e.g. 127.0.0.1:10114)",
    )
    p.add_argument(
        "--api.token-file",
        dest="api_token_file",
        metavar="PATH",
        help="require 'Authorization: Bearer <file content>' on the registration API",
    )
    p.add_argument(
        "--api.max-jobs-per-source",
        dest="api_max_jobs",
        type=int,
        default=10_000,
        metavar="N",
        help="refuse registrations beyond this many jobs per source (default 10000)",
    )
    p.add_argument("--log.level", dest="log_level", choices=list(logs.LEVELS), default="info")
    p.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"], default="logfmt")
    p.add_argument("--check-config", action="store_true", help="validate the config file and exit")
    p.add_argument(
        "--demo", action="store_true", help="watch demo jobs on a built-in simulator of the APIs"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter; the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.demo and not args.config_file:
        parser.error("--config.file is required unless --demo is given")
    logs.setup(args.log_level, args.log_format)
    config: Config | None = None
    if args.config_file:
        try:
            config = load_config(args.config_file, REGISTRY)
        except ConfigError as exc:
            print(f"{args.config_file}: invalid configuration:\n{exc}", file=sys.stderr)
            return 1
    if args.check_config:
        if config is None:
            parser.error("--check-config needs --config.file")
        jobs = sum(len(s.jobs) for s in config.sources)
        print(f"{args.config_file}: OK ({len(config.sources)} sources, {jobs} jobs)")
        return 0
    try:
        return asyncio.run(_serve(config, args))
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130


async def _serve(config: Config | None, args: argparse.Namespace) -> int:
    listen: Listen = args.listen
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        if config is None:
            config = await _start_demo(stack)
        exporter = Exporter(config, listen=listen, max_jobs_per_source=args.api_max_jobs)
        try:
            await stack.enter_async_context(exporter)
            if args.api_listen is not None:
                listen = args.api_listen
                api = JobsApiServer(
                    exporter, host=listen.host, port=listen.port, token_file=args.api_token_file
                )
                await stack.enter_async_context(api)
                LOG.info("registration API on port %d", api.port)
        except OSError as exc:
            LOG.error("cannot listen on %s:%d: %s", listen.host or "*", listen.port, exc.strerror)
            return 1
        stopped = asyncio.ensure_future(stop.wait())
        fatal = asyncio.ensure_future(exporter.fatal.wait())
        await asyncio.wait({stopped, fatal}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        fatal.cancel()
        LOG.info("shutting down")
        return 1 if exporter.fatal.is_set() else 0


async def _start_demo(stack: contextlib.AsyncExitStack) -> Config:
    from exporter.demo import demo_config  # noqa: PLC0415 - the simulator loads only for --demo
    from exporter.simulator import Simulator  # noqa: PLC0415
    from exporter.simulator.demo import demo_jobs  # noqa: PLC0415

    sim = await stack.enter_async_context(Simulator())
    demo_jobs(sim)
    LOG.info("demo: simulated vendor APIs on %s", sim.url)
    return demo_config(sim)
