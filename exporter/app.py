"""Lifecycle in one place: the clients, scheduler, housekeeping and server.

:class:`Exporter` is an async context manager.  Start-up enters each part in
an :class:`~contextlib.AsyncExitStack`, so a part that fails to start undoes
the ones before it, and :meth:`Exporter.close` stops them in reverse order.
A background task that dies reaches :meth:`Exporter._task_died`: one log
line, and :attr:`Exporter.fatal` is set so the process exits instead of
serving stale data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import Literal, overload

from exporter import __version__
from exporter.clock import Clock, SystemClock
from exporter.config import Config, load_config
from exporter.exposition.guard import HttpLimits
from exporter.exposition.jobseries import JobSeries
from exporter.exposition.jobsview import JobsPage
from exporter.exposition.page import Page
from exporter.exposition.selfmetrics import SelfMetrics
from exporter.exposition.server import MetricsServer
from exporter.exposition.websecurity import WebSecurity
from exporter.fleet import Fleet
from exporter.intake.dirjobs import DirJobs
from exporter.intake.fleetjobs import FleetJobs
from exporter.intake.reload import Reloader
from exporter.intake.watchlist import Watchlist
from exporter.jobs.keys import JobKey
from exporter.jobs.shard import Shard
from exporter.jobs.table import JobTable
from exporter.polling.poller import Poller
from exporter.polling.pool import SourcePool
from exporter.polling.scheduler import Scheduler
from exporter.state.saving import Saving
from exporter.state.statefile import StorageError
from exporter.state.storage import MemoryStore, Store
from exporter.vendors import REGISTRY

LOG = logging.getLogger(__name__)

TICK = 1.0
PROCESS_SAMPLE_EVERY = 5
# /healthz fails when the scheduler loop has not ticked for this long.
STUCK_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class Listen:
    """Where the metrics server binds."""

    host: str
    port: int


class Exporter:
    """The running exporter for one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        listen: Listen,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        max_jobs_per_source: int = 10_000,
        config_path: str | None = None,
        store: Store | None = None,
        http_limits: HttpLimits | None = None,
        security: WebSecurity | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.config = config
        self.http_limits = http_limits or HttpLimits()
        self._security = security
        self._config_path = config_path
        self._store: Store = store or MemoryStore()
        self._listen = listen
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = SelfMetrics()
        self.table = JobTable(retention=config.global_.finished_job_retention)
        self.series = JobSeries(self.table)
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._scheduler: Scheduler[JobKey] | None = None
        fleet = config.global_.fleet
        self._fleet = (
            None
            if fleet is None
            else Fleet(
                fleet,
                clock=self._clock,
                rng=self._rng,
                default_members=(shard or Shard()).total,
                on_task=self._watch_task,
            )
        )
        self._pool = SourcePool(
            registry=REGISTRY,
            stats=self.stats,
            clock=self._clock,
            rng=self._rng,
            plan_stats=self.stats,
            fleet=self._fleet,
        )
        self.watchlist = Watchlist(
            self.table,
            self._pool.runtimes,
            rng=self._rng,
            max_jobs_per_source=max_jobs_per_source,
            shard=shard,
        )
        self._reloader: Reloader | None = None
        # A sharded fleet stores registrations in Redis for the shard each falls to.
        self.fleet_jobs = (
            FleetJobs(
                self.watchlist,
                self._fleet.registrations,
                max_jobs_per_source=max_jobs_per_source,
            )
            if self._fleet is not None and self.watchlist.shard.sharded
            else None
        )
        self._dir_jobs = DirJobs(
            self.watchlist,
            sources=lambda: self._pool.runtimes,
            clock=self._clock,
            on_task=self._watch_task,
        )
        self._server: MetricsServer | None = None
        self._ready = False
        self.fatal = asyncio.Event()

    async def __aenter__(self) -> Exporter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The port /metrics is served on (useful with port 0)."""
        return self._server.port if self._server else self._listen.port

    async def start(self) -> None:
        """Start everything, or nothing: a failure undoes what had started."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        g = self.config.global_
        # Entered first so it closes last: the final flush has the last polls' results.
        store = await self._stack.enter_async_context(self._store)
        self._watch_task(store.flush_task)
        records = await store.load()
        if self._fleet is not None:
            # Connects in the background: polling starts on local manners, never waits.
            await self._stack.enter_async_context(self._fleet)
        pool = self._pool
        await pool.update(self.config)
        self._set_sources(self.config)
        poller = Poller(
            pool.runtimes, self.table, clock=self._clock, rng=self._rng, stats=self.stats
        )
        scheduler: Scheduler[JobKey] = Scheduler(
            poller.poll, clock=self._clock, max_concurrency=g.max_concurrency, lanes=pool.lane
        )
        self._scheduler = await self._stack.enter_async_context(scheduler)
        self._watch_task(scheduler.loop_task)
        self.watchlist.attach(scheduler)
        for key in self.watchlist.restore(records, self.config, self._clock.time()):
            store.delete(*key)
        restored = len(self.table)
        # Wired after the restore, which would otherwise write every job straight back.
        self.table.subscribe(Saving(store))
        self.watchlist.sync_config(self.config)
        if self.fleet_jobs is not None:
            self.fleet_jobs.start()
        await self._dir_jobs.watch(g.watch_dir)
        self._dir_jobs.prune()  # restored from files that are gone
        self._reloaded(ok=True)
        self.stats.sample_process()
        tick = asyncio.create_task(self._tick(), name="housekeeping")
        self._watch_task(tick)
        self._tasks.append(tick)
        if self._config_path is not None:
            reloader = Reloader(
                self._config_path,
                load=lambda path: load_config(path, REGISTRY),
                apply=self.apply,
                outcome=lambda ok: self._reloaded(ok=ok),
                clock=self._clock,
            )
            self._reloader = await self._stack.enter_async_context(reloader)
            self._watch_task(reloader.task)
        self._server = MetricsServer(
            render=lambda: self.render(page=True),
            health=self.health,
            ready=lambda: self._ready,
            host=self._listen.host,
            port=self._listen.port,
            reload=None if self._reloader is None else lambda: self.reload("POST /-/reload"),
            limits=self.http_limits,
            stats=self.stats,
            jobs_page=JobsPage(self.table, pool.runtimes, clock=self._clock, version=__version__),
            security=self._security,
        )
        await self._stack.enter_async_context(self._server)
        self._ready = True
        LOG.info(
            "serving /metrics on port %d: %d sources, %d jobs (%d restored); state: %s",
            self.port,
            len(self.config.sources),
            len(self.table),
            restored,
            store.description,
        )

    async def close(self) -> None:
        """Stop the server, the polls in flight and the sessions; safe to call twice."""
        self._ready = False
        await self._dir_jobs.close()  # first: a reload finishing now starts no new watcher
        if self.fleet_jobs is not None:
            self.fleet_jobs.close()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._stack.aclose()
        except StorageError as exc:  # the store logged its own failure when it happened
            LOG.error("state store: %s", exc)
        finally:
            await self._pool.close()
        self._scheduler = self._server = self._reloader = None
        self.watchlist.attach(None)

    async def drain(self, within: float) -> None:
        """Start no new polls and give those in flight ``within`` to finish (SIGTERM)."""
        if self._scheduler is not None:
            left = await self._scheduler.drain(within)
            if left:
                LOG.info("%d polls still in flight after %.1fs; cancelling them", left, within)

    async def reload(self, why: str) -> str | None:
        """Reload the config file: ``None`` when done, else why it was refused."""
        if self._reloader is None:
            return "no config file to reload (started with --demo)"
        return await self._reloader.reload(why)

    async def apply(self, config: Config) -> None:
        """Switch to ``config``: sources opened, replaced or closed, config jobs synced.

        Jobs that stay keep their state and schedule; removed ones go with their
        series; jobs registered through the API stay while their source exists.
        """
        scheduler = self._scheduler
        if scheduler is None:
            raise RuntimeError("the exporter is not running")
        if config.global_.fleet != self.config.global_.fleet:
            LOG.warning("global.fleet changed: the fleet stays as it started until a restart")
        reset = await self._pool.update(config)
        self._set_sources(config)
        g = config.global_
        self.table.retention = g.finished_job_retention
        scheduler.max_concurrency = g.max_concurrency
        self.watchlist.reset(reset)
        self.watchlist.sync_config(config)
        if config.global_.watch_dir != self.config.global_.watch_dir:
            await self._dir_jobs.watch(config.global_.watch_dir)
        else:
            # The dir takes back jobs a reload dropped from the config or whose source changed.
            self._dir_jobs.resync()
        self.config = config

    def idle(self) -> bool:
        """Whether no poll is in flight (tests and benchmarks wait on this)."""
        return self._scheduler is None or self._scheduler.in_flight() == 0

    @overload
    def render(self, *, page: Literal[False] = False) -> bytes: ...
    @overload
    def render(self, *, page: Literal[True]) -> Page: ...
    def render(self, *, page: bool = False) -> bytes | Page:
        """The whole /metrics page; no I/O, only the jobs' series and counters.

        ``page=True`` (what the server asks for) returns it as a
        :class:`~exporter.exposition.page.Page` of cached pieces, streamed or gzipped unjoined.
        """
        out = self.series.page(self._clock.time(), tail=self.stats.render())
        return out if page else bytes(out)

    def _set_sources(self, config: Config) -> None:
        """Tell the per-source series which sources exist (at start and on every reload)."""
        names = frozenset(src.name for src in config.sources)
        self.stats.set_sources(names)
        self.table.set_sources(names)

    def health(self) -> str | None:
        """Why the exporter is unhealthy, or ``None`` when it is fine."""
        scheduler = self._scheduler
        if scheduler is None:
            return "not started"
        if self.fatal.is_set():
            return "a background task died"
        age = self._clock.monotonic() - scheduler.heartbeat
        if age > STUCK_AFTER:
            return f"scheduler loop stuck for {age:.0f}s"
        return None

    async def _tick(self) -> None:
        n = 0
        never = asyncio.Event()
        while True:
            await self._clock.wait(never, TICK)
            n += 1
            self.watchlist.expire(self._clock.time())
            self._dir_jobs.prune()
            self.stats.set_budgets(self._pool.budgets(self._clock.monotonic()))
            if self._fleet is not None:
                self.stats.set_fleet(up=self._fleet.up, members=self._fleet.live_members())
            if n % PROCESS_SAMPLE_EVERY == 0:
                self.stats.sample_process()

    def _reloaded(self, *, ok: bool) -> None:
        self.stats.config_reload_ok.set(1 if ok else 0)
        if ok:
            self.stats.config_reload_time.set(self._clock.time())

    def _watch_task(self, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            task.add_done_callback(self._task_died)

    def _task_died(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            LOG.critical("background task %s died", task.get_name(), exc_info=exc)
            self.fatal.set()
