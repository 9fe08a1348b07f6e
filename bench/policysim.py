"""The polling-policy benchmark's rig: the real scheduler, poller and policy, in process.

A :class:`VirtualClock` jumps from one wake-up to the next, so virtual hours
pass in seconds; :class:`SimClient` is a :class:`~exporter.polling.runtime.PollClient`
that answers each request from a :class:`~exporter.simulator.SimJob` with the
simulator's own vendor answers (no HTTP), behind the simulator's per-account
:class:`~exporter.simulator.ratelimit.RateLimiter`.  :func:`run` registers each
job when it is created, as a sidecar's app does, and records when the exporter
saw it finish.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from yarl import URL

from exporter.config import AdaptivePolling, SourceConfig
from exporter.intake.watchlist import Watchlist
from exporter.jobs.entry import JobView
from exporter.jobs.keys import JobKey
from exporter.jobs.table import JobTable
from exporter.model import Response
from exporter.polling.gate import Backoff, SourceGate
from exporter.polling.poller import Poller
from exporter.polling.pool import adaptive_parts
from exporter.polling.runtime import PollClient, Runtime
from exporter.polling.scheduler import Scheduler
from exporter.simulator import VENDORS, SimJob
from exporter.simulator.ratelimit import RateLimiter, retry_after
from exporter.simulator.vendors import fullstory
from exporter.vendors import REGISTRY

WALL = 1_700_000_000.0
PAGE = 100  # error items per listing page
SETTLE_TURNS = 2  # loop turns a woken scheduler needs to start what is due


class VirtualClock:
    """A fake clock that knows its next wake-up, so a driver can jump straight to it."""

    def __init__(self) -> None:
        self._now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._seq = 0

    def monotonic(self) -> float:
        """The virtual monotonic time."""
        return self._now

    def time(self) -> float:
        """The virtual wall time."""
        return self._now + WALL

    async def wait(self, event: asyncio.Event, within: float) -> None:
        """Wait until the event is set or the virtual time reaches the deadline."""
        if event.is_set():
            return
        sleeper: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._now + max(within, 0.0), self._seq, sleeper))
        woken: asyncio.Future[bool] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([sleeper, woken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not sleeper.done():
                sleeper.cancel()  # its heap entry is skipped when it comes up

    def next_deadline(self) -> float:
        """When the earliest waiter wakes (``inf``: none waits)."""
        heap = self._sleepers
        while heap and heap[0][2].done():
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def advance_to(self, when: float) -> None:
        """Move time to ``when`` and wake every waiter whose deadline has come."""
        self._now = max(self._now, when)
        heap = self._sleepers
        while heap and heap[0][0] <= self._now:
            _, _, sleeper = heapq.heappop(heap)
            if not sleeper.done():
                sleeper.set_result(True)


class _NoAuth:
    """Credentials the simulated sources do not check."""

    async def headers(self) -> Mapping[str, str]:
        """No headers."""
        return {}

    def invalidate(self) -> bool:
        """No token to forget."""
        return False


class SimClient:
    """One simulated API answering from its jobs, behind a per-account rate limiter."""

    def __init__(
        self,
        source: SourceConfig,
        jobs: Mapping[str, SimJob],
        clock: VirtualClock,
        limiter: RateLimiter | None,
    ) -> None:
        self.source = source
        self.auth = _NoAuth()
        self._vendor = VENDORS[source.api]
        self._jobs = jobs
        self._clock = clock
        self.limiter = limiter
        self.requests: Counter[str] = Counter()

    def url(self, template: str, job_id: str, query: Mapping[str, str] | None = None) -> URL:
        """A URL naming the job and whether it is its errors listing."""
        kind = "errors" if template == self.source.errors_path else "job"
        return URL.build(scheme="http", host="sim", path=f"/{kind}", query={"id": job_id})

    async def get(self, url: URL, headers: Mapping[str, str]) -> Response | str:
        """The simulator's answer, or its limiter's 429."""
        now = self._clock.time()
        if self.limiter is not None:
            wait = self.limiter.admit(self.source.name, now)
            if wait is not None:
                return Response(429, {"Retry-After": retry_after(wait)}, b"")
        job_id = url.query["id"]
        job = self._jobs[job_id]
        self.requests[job_id] += 1
        if url.path == "/job":
            answer = self._vendor.answer(job, now, self.source.base_url)
        elif self.source.api == fullstory.API:
            answer = fullstory.errors_page(job, now, 0, PAGE)
        else:
            answer = self._vendor.answer(job, now, self.source.base_url)
            answer = type(answer)(200, {"data": []})  # the bench's jobs fail no items
        return Response(answer.status, dict(answer.headers), json.dumps(answer.body).encode())


@dataclass(slots=True)
class BenchJob:
    """One job of the workload: its simulated self and when its app registers it."""

    api: str
    id: str
    job: SimJob
    registered: float  # virtual monotonic seconds


@dataclass(slots=True)
class Stats:
    """The poller's counters."""

    limited: Counter[str] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)

    def rate_limited(self, source: str) -> None:
        """Count a 429."""
        self.limited[source] += 1

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        """Closed seconds are not reported."""

    def poll_failed(self, source: str, reason: str) -> None:
        """Count a failed poll."""
        self.failed[source, reason] += 1


class Detections:
    """When the exporter first saw each job finished (a table listener)."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self.at: dict[JobKey, float] = {}

    def changed(self, entry: JobView) -> None:
        """Note the first change that shows the job finished."""
        if entry.finished and entry.key not in self.at:
            self.at[entry.key] = self._clock.time()

    def removed(self, key: JobKey) -> None:
        """Removals say nothing of finishing."""


@dataclass(frozen=True, slots=True)
class Setup:
    """How the exporter polls in one run: a fixed interval, or adaptive bounds; the budget."""

    name: str
    interval: float = 15.0
    adaptive: AdaptivePolling | None = None
    budget: float | None = None  # requests per second, all sources together
    limit: float | None = None  # the simulator's per-account rate, all sources together


@dataclass(slots=True)
class Outcome:
    """What one run measured: per job its requests and detection time."""

    requests: dict[JobKey, int]
    detected: dict[JobKey, float]
    rejected: dict[str, int]
    polls_failed: int


def _shares(total: float | None, weights: Mapping[str, float]) -> dict[str, float | None]:
    """``total`` split between the APIs by their share of the jobs."""
    whole = sum(weights.values())
    return {api: None if total is None else total * w / whole for api, w in weights.items()}


async def run(
    setup: Setup, jobs: list[BenchJob], *, horizon: float, seed: int, concurrency: int = 64
) -> Outcome:
    """Poll ``jobs`` as ``setup`` says until ``horizon`` virtual seconds; what was seen."""
    clock = VirtualClock()
    rng = random.Random(seed)
    weights = {api: v.bench_weight for api, v in VENDORS.items() if v.bench_weight > 0}
    budgets, limits = _shares(setup.budget, weights), _shares(setup.limit, weights)
    table = JobTable(retention=3600.0)
    detections = Detections(clock)
    table.subscribe(detections)
    runtimes: dict[str, Runtime[PollClient]] = {}
    clients: dict[str, SimClient] = {}
    for api in weights:
        spec, vendor = REGISTRY[api], VENDORS[api]
        params = tuple((p, "calls") for p in spec.path_params)
        source = SourceConfig(
            name=vendor.prefix, api=api, base_url=f"http://sim/{vendor.prefix}/",
            path=spec.default_path, poll_interval=setup.interval, path_params=params,
            errors_path=spec.default_errors_path, max_requests_per_second=budgets[api],
            adaptive_polling=setup.adaptive,
        )  # fmt: skip
        limit = limits[api]
        limiter = None if limit is None else RateLimiter(rate=limit, burst=max(1, int(limit)))
        mine = {b.id: b.job for b in jobs if b.api == api}
        clients[api] = client = SimClient(source, mine, clock, limiter)
        gate = SourceGate(max_rate=budgets[api], backoff=Backoff(), rng=rng)
        plan, budget = adaptive_parts(source, spec, gate, rng=rng)
        runtimes[vendor.prefix] = Runtime(spec, client, gate, setup.interval, plan=plan,
                                          budget=budget)  # fmt: skip
    stats = Stats()
    poller = Poller(runtimes, table, clock=clock, rng=rng, stats=stats)

    watchlist = Watchlist(table, runtimes, rng=rng, max_jobs_per_source=10**6)
    scheduler: Scheduler[JobKey] = Scheduler(
        poller.poll, clock=clock, max_concurrency=concurrency,
        lanes=lambda key: runtimes[key[0]].budget,
    )  # fmt: skip
    arrivals = sorted(jobs, key=lambda b: b.registered)
    async with scheduler:
        watchlist.attach(scheduler)
        index = 0
        while True:
            await _settle(scheduler)
            upcoming = arrivals[index].registered if index < len(arrivals) else math.inf
            nxt = min(clock.next_deadline(), upcoming)
            if nxt > horizon:
                break
            clock.advance_to(nxt)
            while index < len(arrivals) and arrivals[index].registered <= clock.monotonic():
                b = arrivals[index]
                watchlist.watch(VENDORS[b.api].prefix, b.id, ())
                index += 1
    requests = {
        (VENDORS[api].prefix, job_id): n
        for api, c in clients.items()
        for job_id, n in c.requests.items()
    }
    rejected = {api: 0 if c.limiter is None else c.limiter.rejected for api, c in clients.items()}
    return Outcome(requests, detections.at, rejected, sum(stats.failed.values()))


async def _settle(scheduler: Scheduler[JobKey]) -> None:
    """Let every poll that can run now run to its end (no virtual time passes)."""
    turns = 0
    # A poll never waits on anything here, so it ends within a few loop turns of starting;
    # the scheduler then needs a turn to start what came due and wait again.
    while turns < SETTLE_TURNS or (scheduler.in_flight() and turns < 1000):
        await asyncio.sleep(0)
        turns += 1
    await asyncio.sleep(0)
