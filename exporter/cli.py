"""The ``batch-job-exporter`` command: signals, exit codes (its flags: ``exporter.flags``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Sequence

from exporter import logs
from exporter.app import Exporter, Listen
from exporter.config import Config, ConfigError, load_config
from exporter.config.web import WebConfig, load_web_config
from exporter.exposition.guard import HttpLimits
from exporter.exposition.websecurity import WebSecurity
from exporter.flags import build_parser, parse_shard
from exporter.intake.registration import JobsApiServer, is_loopback, unprotected
from exporter.state.statefile import StorageError
from exporter.state.storage import MemoryStore, SqliteStore, Store
from exporter.vendors import REGISTRY

LOG = logging.getLogger("exporter")

# SIGTERM lets polls in flight finish for this long: within Kubernetes' grace period,
# and short enough that a stop still takes "a second or two".
DRAIN_TIMEOUT = 1.5


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
    web = WebConfig()
    if args.web_config_file:
        try:
            web = load_web_config(args.web_config_file)
        except ConfigError as exc:
            print(f"{args.web_config_file}: invalid web configuration:\n{exc}", file=sys.stderr)
            return 1
    if args.check_config:
        if config is None:
            parser.error("--check-config needs --config.file")
        jobs = sum(len(s.jobs) for s in config.sources)
        print(f"{args.config_file}: OK ({len(config.sources)} sources, {jobs} jobs)")
        if args.web_config_file:
            print(f"{args.web_config_file}: OK")
        return 0
    try:
        args.shard = parse_shard(args.shard, args.total_shards, socket.gethostname())
    except ValueError as exc:
        parser.error(str(exc))
    if args.api_listen is not None and (
        refusal := unprotected(
            args.api_listen.host,
            args.api_listen.port,
            token=args.api_token_file is not None,
            basic_auth=bool(web.basic_auth_users),
        )
    ):
        print(refusal, file=sys.stderr)
        return 1
    args.web = web
    try:
        return asyncio.run(_serve(config, args))
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130


async def _serve(config: Config | None, args: argparse.Namespace) -> int:
    listen: Listen = args.listen
    limits = HttpLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # A non-loopback API with no token relies on the users: a reload may not empty them.
    open_api = args.api_listen is not None and not is_loopback(args.api_listen.host)
    security = WebSecurity(
        args.web_config_file,
        args.web,
        monotonic=loop.time,
        require_users=open_api and args.api_token_file is None,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Handled from the start: SIGHUP's default action would kill the process mid-start.
    reloads = _Reloads()
    loop.add_signal_handler(signal.SIGHUP, reloads.request)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(security)
        if config is None:
            config = await _start_demo(stack)
        if args.storage_path is None:
            store: Store = MemoryStore()
            LOG.info("no --storage.path: job state is kept in memory only and lost on restart")
        else:
            store = SqliteStore(args.storage_path)
        exporter = Exporter(
            config,
            listen=listen,
            max_jobs_per_source=args.api_max_jobs,
            config_path=args.config_file,
            store=store,
            http_limits=limits,
            security=security,
            shard=args.shard,
        )
        try:
            await stack.enter_async_context(exporter)
            if args.api_listen is not None:
                listen = args.api_listen
                api = JobsApiServer(
                    exporter.watchlist,
                    host=listen.host,
                    port=listen.port,
                    monotonic=loop.time,  # the event loop's clock: time.monotonic
                    token_file=args.api_token_file,
                    limits=limits,
                    stats=exporter.stats,
                    security=security,
                    shared=exporter.fleet_jobs,
                    persist=store.flush,
                )
                await stack.enter_async_context(api)
                LOG.info("registration API on port %d", api.port)
        except StorageError as exc:
            LOG.error("cannot use the state file: %s", exc)
            return 1
        except ConfigError as exc:
            LOG.error("invalid configuration: %s", "; ".join(exc.problems))
            return 1
        except OSError as exc:
            LOG.error("cannot listen on %s:%d: %s", listen.host or "*", listen.port, exc.strerror)
            return 1
        if args.shard.sharded:
            LOG.info(
                "shard %d of %d: watching the config's and registered jobs that fall to it",
                args.shard.index,
                args.shard.total,
            )
        reloads.exporter = exporter
        stopped = asyncio.ensure_future(stop.wait())
        fatal = asyncio.ensure_future(exporter.fatal.wait())
        try:
            await asyncio.wait({stopped, fatal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            fatal.cancel()
            await reloads.close()  # later SIGHUPs are ignored: shutting down
        LOG.info("shutting down")
        if exporter.fatal.is_set():
            return 1
        await exporter.drain(DRAIN_TIMEOUT)
        return 0


class _Reloads:
    """SIGHUP reloads, one task at a time; a reload that crashes is logged, never lost."""

    def __init__(self) -> None:
        self.exporter: Exporter | None = None  # set once started, cleared when stopping
        self._task: asyncio.Task[str | None] | None = None

    def request(self) -> None:
        if self.exporter is None:
            LOG.info("SIGHUP ignored: not serving (starting or shutting down)")
        elif self._task is None or self._task.done():
            self._task = asyncio.create_task(self.exporter.reload("SIGHUP"), name="reload")
            self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[str | None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            LOG.critical("config reload crashed", exc_info=exc)
            if self.exporter is not None:
                self.exporter.fatal.set()

    async def close(self) -> None:
        self.exporter = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _start_demo(stack: contextlib.AsyncExitStack) -> Config:
    from exporter.simulator import Simulator  # noqa: PLC0415 - loads only for --demo
    from exporter.simulator.demo import demo_config, demo_jobs  # noqa: PLC0415 - as above

    sim = await stack.enter_async_context(Simulator())
    demo_jobs(sim)
    LOG.info("demo: simulated vendor APIs on %s", sim.url)
    return demo_config(sim)
