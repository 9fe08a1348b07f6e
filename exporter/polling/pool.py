"""The runtime of each configured source, opened at start and swapped on reload.

A reload that leaves a source's settings alone keeps its runtime: the same
HTTP session (keep-alive), OAuth2 token and politeness gate.  Sources of one
``account`` share one gate: a Retry-After, a credentials hold, a backoff or
the rate cap seen by one applies to all of them.  A source whose
settings changed gets a new client, but keeps its gate (with a new rate cap, if
that changed) while it still talks to the same ``base_url``, even when it was
removed and comes back, so a reload never reopens a ``Retry-After`` window
early.  A replaced client is closed once the polls that may still be using it
have had ``request_timeout`` to finish.  A kept client watches its TLS files
itself; a reload only makes it look at them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import random
from collections.abc import Callable, Mapping

from exporter.clock import Clock
from exporter.config import AdaptivePolling, Config, ConfigError, GlobalConfig, SourceConfig
from exporter.fleet import Fleet
from exporter.jobs.keys import JobKey
from exporter.polling.budget import Budget
from exporter.polling.client import RequestStats, SourceClient
from exporter.polling.gate import WINDOW, Backoff, SourceGate
from exporter.polling.plans import PlanStats, SourcePlan
from exporter.polling.runtime import SourceRuntime
from exporter.polling.shared import FleetManners
from exporter.vendors import ApiSpec


def _ignore(seconds: float) -> None:
    """No sink for how late polls run against their plan."""


def new_plan(
    bounds: AdaptivePolling,
    spec: ApiSpec,
    *,
    rng: random.Random,
    lateness: Callable[[float], None] = _ignore,
) -> SourcePlan:
    """A fresh plan for an adaptive source of ``spec``'s API."""
    return SourcePlan(bounds, hints=dict(spec.stage_hints), rng=rng, lateness=lateness)


def adaptive_parts(
    src: SourceConfig, spec: ApiSpec, gate: SourceGate, *, rng: random.Random
) -> tuple[SourcePlan | None, Budget | None]:
    """A new source's plan (if adaptive) and budget (if rate-capped), as the pool makes them."""
    plan = None
    if src.adaptive_polling is not None:
        plan = new_plan(src.adaptive_polling, spec, rng=rng)
        plan.rate = src.max_requests_per_second
    if not src.max_requests_per_second:
        return plan, None
    return plan, Budget(gate, {} if plan is None else {src.name: plan})


def _settings(src: SourceConfig, g: GlobalConfig) -> tuple[object, ...]:
    """What a client is built from: the source without its jobs, and the global knobs."""
    return (dataclasses.replace(src, jobs=()), g.request_timeout, g.max_concurrency)


class SourcePool:
    """``runtimes`` by source name; the dict is updated in place, so its readers see reloads.

    ``registry`` gives each source's API by name: the one its config was loaded with.
    """

    def __init__(
        self,
        *,
        registry: Mapping[str, ApiSpec],
        stats: RequestStats,
        clock: Clock,
        rng: random.Random,
        plan_stats: PlanStats | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.runtimes: dict[str, SourceRuntime] = {}
        self._fleet = fleet
        self._plan_stats = plan_stats
        self._registry = registry
        self._settings: dict[str, tuple[object, ...]] = {}
        self._stats = stats
        self._clock = clock
        self._rng = rng
        self._retiring: dict[asyncio.Task[None], SourceClient] = {}
        self._grace = 0.0
        # Gates of sources a reload removed, by name: one added back (an edit undone)
        # must still honour a Retry-After window that is in force.
        self._parked: dict[str, tuple[str, SourceGate]] = {}
        # Plans of sources a reload removed or made fixed: what they learned carries over.
        self._plans: dict[str, SourcePlan] = {}

    async def update(self, config: Config) -> set[str]:
        """Open, replace or close runtimes to match ``config``.

        Returns the names whose jobs must start over: sources removed, or whose
        API changed (a job's state means nothing under another API).  Raises
        :class:`ConfigError`, changing nothing, when a source cannot be set up.
        """
        g = config.global_
        wanted = {src.name: src for src in config.sources}
        # Every new client is built before anything changes, so a source that cannot be
        # set up (a TLS file that does not load) refuses the whole config.
        fresh: dict[str, tuple[SourceClient, tuple[object, ...]]] = {}
        problems: list[str] = []
        for name, src in wanted.items():
            settings = _settings(src, g)
            if name not in self.runtimes or self._settings[name] != settings:
                try:
                    # Loading CA bundles and keys reads files: off the loop.
                    fresh[name] = (await asyncio.to_thread(self._client, src, g), settings)
                except (OSError, ValueError) as exc:
                    problems.append(f"sources: {name}: cannot set up its HTTP client: {exc}")
        if problems:
            raise ConfigError(problems)
        self._grace = g.request_timeout + 1.0
        for name, runtime in self.runtimes.items():
            if name in wanted and name not in fresh:
                # A secret rotated by hand then a SIGHUP: use it now, not at the next check.
                runtime.client.tls.recheck()
        reset = {name for name in self.runtimes if name not in wanted}
        for name in reset:
            removed = self.runtimes.pop(name)
            self._retire(removed.client)
            self._parked[name] = (removed.client.source.base_url, removed.gate)
            del self._settings[name]
        for name, (client, settings) in fresh.items():
            src = wanted[name]
            old = self.runtimes.get(name)
            await client.__aenter__()
            kept: tuple[str, SourceGate] | None = self._parked.pop(name, None)
            if old is not None:
                self._retire(old.client)
                if old.client.source.api != src.api:
                    reset.add(name)
                kept = (old.client.source.base_url, old.gate)
            gate = self._gate_for(src, name, kept, wanted)
            runtime = SourceRuntime(self._registry[src.api], client, gate, src.poll_interval)
            self._adapt(runtime, src, old, reset=name in reset)
            self.runtimes[name] = runtime
            self._settings[name] = settings
        self._lanes(wanted)
        self._share(config)
        return reset

    def _share(self, config: Config) -> None:
        """With a fleet, each account's windows and budget are the fleet's (every load)."""
        fleet = self._fleet
        if fleet is None:
            return
        fleet.budgets(
            {
                src.account_name: src.max_requests_per_second
                for src in config.sources
                if src.max_requests_per_second
            }
        )
        for runtime in self.runtimes.values():
            account = runtime.client.source.account_name
            runtime.gate.shared = FleetManners(fleet, account, clock=self._clock)

    def _gate_for(
        self,
        src: SourceConfig,
        name: str,
        kept: tuple[str, SourceGate] | None,
        wanted: Mapping[str, SourceConfig],
    ) -> SourceGate:
        """The gate of a new runtime: its account's, the one it had, or a new one."""
        account = src.account_name
        for other, runtime in self.runtimes.items():
            if other != name and runtime.client.source.account_name == account:
                # Another source of the vendor account: one politeness.  The config holds
                # their caps equal; a reload may have changed it for both at once.
                runtime.gate.set_rate(src.max_requests_per_second)
                return runtime.gate
        if kept is not None and kept[0] == src.base_url:
            gate = kept[1]
            # The same vendor endpoint: its Retry-After window and backoff carry over.  Not
            # when a source staying in another account uses it: this one left that account.
            if not any(
                rt.gate is gate and wanted[other].account_name != account
                for other, rt in self.runtimes.items()
                if other != name and other in wanted
            ):
                gate.set_rate(src.max_requests_per_second)
                return gate
        return SourceGate(max_rate=src.max_requests_per_second, backoff=Backoff(), rng=self._rng)

    def _adapt(
        self, runtime: SourceRuntime, src: SourceConfig, old: SourceRuntime | None, *, reset: bool
    ) -> None:
        """Give an adaptive source its plans; keep its budget lane if its gate stays.

        The plans it had carry over with new bounds (what they learned too), unless
        its jobs start over.  :meth:`_lanes` then settles every source's lane.
        """
        name = src.name
        if old is not None and old.plan is not None:
            self._plans[name] = old.plan
        if old is not None and old.budget is not None and old.budget.gate is runtime.gate:
            runtime.budget = old.budget
        if src.adaptive_polling is None:
            return
        plan = self._plans.pop(name, None)
        stats = self._plan_stats
        lateness = _ignore if stats is None else functools.partial(stats.plan_lateness, name)
        if plan is None or reset:
            plan = new_plan(src.adaptive_polling, runtime.spec, rng=self._rng, lateness=lateness)
        plan.bounds = src.adaptive_polling
        plan.rate = src.max_requests_per_second
        runtime.plan = plan

    def _lanes(self, wanted: Mapping[str, SourceConfig]) -> None:
        """One budget lane per rate-capped gate, shared by its account's sources."""
        lanes: dict[SourceGate, Budget] = {}
        for runtime in self.runtimes.values():
            kept = runtime.budget
            if kept is not None and kept.gate is runtime.gate:
                lanes.setdefault(runtime.gate, kept)
        for lane in lanes.values():
            lane.plans = {}
        for name, runtime in self.runtimes.items():
            if not wanted[name].max_requests_per_second:
                runtime.budget = None  # a lane it had drains in the scheduler, still metered
                continue
            budget = lanes.get(runtime.gate)
            if budget is None:
                budget = lanes[runtime.gate] = Budget(runtime.gate)
            runtime.budget = budget
            if runtime.plan is not None:
                budget.plans[name] = runtime.plan

    def budgets(self, now: float) -> dict[str, tuple[float, float | None]]:
        """Each rate-capped source's budget use over the last minute and, if adaptive, stretch.

        The stretch is what the plans ask for over what the budget gives, at least 1.
        """
        out: dict[str, tuple[float, float | None]] = {}
        for name, runtime in self.runtimes.items():
            rate = runtime.gate.max_rate
            if rate:
                used = runtime.gate.sent_last_minute(now) / (rate * WINDOW)
                plan = runtime.plan
                out[name] = (used, None if plan is None else plan.stretch)
        return out

    def lane(self, key: JobKey) -> Budget | None:
        """The budget a due poll of ``key`` waits in, if its source has one (the scheduler's)."""
        runtime = self.runtimes.get(key[0])
        return None if runtime is None else runtime.budget

    def _client(self, src: SourceConfig, g: GlobalConfig) -> SourceClient:
        return SourceClient(
            src,
            timeout=g.request_timeout,
            max_connections=g.max_concurrency,
            stats=self._stats,
            monotonic=self._clock.monotonic,
            wall=self._clock.time,
            sign=self._registry[src.api].sign,
        )

    async def close(self) -> None:
        """Close every client, current and retiring; safe to call twice."""
        retiring, self._retiring = self._retiring, {}
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        clients = [rt.client for rt in self.runtimes.values()] + list(retiring.values())
        self.runtimes.clear()
        self._settings.clear()
        for client in clients:
            with contextlib.suppress(Exception):  # closing must reach every client
                await client.close()

    def _retire(self, client: SourceClient) -> None:
        task = asyncio.create_task(self._close_later(client, self._grace), name="retire-client")
        self._retiring[task] = client
        task.add_done_callback(self._retired)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def _close_later(self, client: SourceClient, grace: float) -> None:
        # Polls still holding the old client get the time a request may take.
        never = asyncio.Event()
        await self._clock.wait(never, grace)
        await client.close()
