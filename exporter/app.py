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

from exporter.apis import REGISTRY
from exporter.clock import Clock, SystemClock
from exporter.config import Config, load_config
from exporter.metrics import JobEntry, JobKey, JobTable
from exporter.poller import Poller
from exporter.reload import Reloader
from exporter.scheduler import Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.server import MetricsServer, Page
from exporter.sources import SourcePool

LOG = logging.getLogger(__name__)

TICK = 1.0
PROCESS_SAMPLE_EVERY = 5
# /healthz fails when the scheduler loop has not ticked for this long.
STUCK_AFTER = 30.0


def origin(entry: JobEntry) -> str:
    """Where a job came from: ``config``, ``api`` or ``dir`` (its first label)."""
    labels = entry.labels
    return labels[0][1] if labels and labels[0][0] == "origin" else "config"


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
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._max_jobs = max_jobs_per_source
        self._listen = listen
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = SelfMetrics()
        self.table = JobTable(retention=config.global_.finished_job_retention)
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._scheduler: Scheduler[JobKey] | None = None
        self._pool = SourcePool(stats=self.stats, clock=self._clock, rng=self._rng)
        self._reloader: Reloader | None = None
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
        pool = self._pool
        await pool.update(self.config)
        poller = Poller(
            pool.runtimes, self.table, clock=self._clock, rng=self._rng, stats=self.stats
        )
        scheduler: Scheduler[JobKey] = Scheduler(
            poller.poll, clock=self._clock, max_concurrency=g.max_concurrency
        )
        self._scheduler = await self._stack.enter_async_context(scheduler)
        self._watch_task(scheduler.loop_task)
        self._sync_config_jobs(self.config)
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
            render=self.render,
            health=self.health,
            ready=lambda: self._ready,
            host=self._listen.host,
            port=self._listen.port,
            reload=None if self._reloader is None else lambda: self.reload("POST /-/reload"),
        )
        await self._stack.enter_async_context(self._server)
        self._ready = True
        LOG.info(
            "serving /metrics on port %d: %d sources, %d jobs",
            self.port,
            len(self.config.sources),
            len(self.table),
        )

    async def close(self) -> None:
        """Stop the server, the polls in flight and the sessions; safe to call twice."""
        self._ready = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._stack.aclose()
        await self._pool.close()
        self._scheduler = self._server = self._reloader = None

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
        reset = await self._pool.update(config)
        g = config.global_
        self.table.retention = g.finished_job_retention
        scheduler.max_concurrency = g.max_concurrency
        for entry in [e for e in self.table if e.key[0] in reset]:
            self.unwatch(*entry.key)
            runtime = self._pool.runtimes.get(entry.key[0])
            if runtime is not None and origin(entry) != "config":  # same source, other API
                self.table.add(entry.key, runtime.spec.name, entry.labels)
                scheduler.schedule(entry.key, self._rng.random() * min(runtime.interval, 5.0))
        self._sync_config_jobs(config)
        self.config = config

    def _sync_config_jobs(self, config: Config) -> None:
        """Watch the config's jobs: add new ones spread over their interval, drop removed ones."""
        scheduler = self._scheduler
        assert scheduler is not None  # noqa: S101 - called only while running
        wanted = {(src.name, job.id) for src in config.sources for job in src.jobs}
        for entry in [e for e in self.table if origin(e) == "config" and e.key not in wanted]:
            self.unwatch(*entry.key)
        for src in config.sources:
            phase = self._rng.random()
            new = 0
            for job in src.jobs:
                key = (src.name, job.id)
                labels = (("origin", "config"), *job.labels)
                current = self.table.get(key)
                if current is None:
                    self.table.add(key, src.api, labels)
                    # Evenly over one interval from a random phase: no thundering herd.
                    at = (phase + new / max(len(src.jobs), 1)) % 1.0
                    scheduler.schedule(key, src.poll_interval * at)
                    new += 1
                elif current.labels != labels:  # relabelled, or taken over from the API
                    current.labels = labels
                    self.table.refresh(key)

    def watch(self, source: str, job_id: str, labels: tuple[tuple[str, str], ...]) -> bool:
        """Watch a job registered at run time; ``True`` if it was not watched yet.

        Raises KeyError for an unknown source and OverflowError when the
        source already watches ``max_jobs_per_source`` jobs.
        """
        src = self._pool.runtimes[source]
        if self._scheduler is None:
            raise RuntimeError("the exporter is not running")
        key = (source, job_id)
        if key in self.table:
            return False
        if self.table.count(source) >= self._max_jobs:
            raise OverflowError(f"source {source!r} already watches {self._max_jobs} jobs")
        self.table.add(key, src.spec.name, (("origin", "api"), *labels))
        # Soon, but jittered: an app registering a burst of jobs must not cause a burst of polls.
        self._scheduler.schedule(key, self._rng.random() * min(src.interval, 5.0))
        return True

    def unwatch(self, source: str, job_id: str) -> bool:
        """Stop watching a job; its series go at the next scrape."""
        key = (source, job_id)
        if key not in self.table:
            return False
        self.table.remove(key)
        if self._scheduler is not None:
            self._scheduler.cancel(key)
        return True

    def jobs(self) -> list[dict[str, object]]:
        """Every watched job and its state, for ``GET /api/v1/jobs``."""
        out: list[dict[str, object]] = []
        for entry in self.table:
            snap = entry.snapshot
            labels = dict(entry.labels)
            out.append(
                {
                    "source": entry.key[0],
                    "id": entry.key[1],
                    "api": entry.api,
                    "origin": labels.pop("origin", "config"),
                    "labels": labels,
                    "status": snap.status.value if snap else None,
                    "vendor_status": snap.vendor_status if snap else None,
                    "poll_success": entry.poll_success,
                    "last_success": entry.last_success,
                }
            )
        return out

    def idle(self) -> bool:
        """Whether no poll is in flight (tests and benchmarks wait on this)."""
        return self._scheduler is None or self._scheduler.in_flight() == 0

    @overload
    def render(self, *, page: Literal[False] = False) -> bytes: ...
    @overload
    def render(self, *, page: Literal[True]) -> Page: ...
    def render(self, *, page: bool = False) -> bytes | Page:
        """The whole /metrics page; no I/O, only the table and counters.

        ``page=True`` (what the server asks for) returns it as a
        :class:`~exporter.server.Page` of cached pieces, streamed or gzipped unjoined.
        """
        out = self.table.page(self._clock.time(), tail=self.stats.render())
        return out if page else bytes(out)

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
            for key in self.table.expire(self._clock.time()):
                if self._scheduler is not None:
                    self._scheduler.cancel(key)
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
