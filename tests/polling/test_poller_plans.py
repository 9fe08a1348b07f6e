"""The poller on an adaptive source: the plan decides the delay, the source's manners win."""

from __future__ import annotations

import random

from exporter.config import AdaptivePolling
from exporter.polling.budget import Budget
from exporter.polling.plans import SourcePlan
from tests.polling.test_plans import ZeroRandom
from tests.polling.test_poller_paths import (
    DONE,
    INTERVAL,
    RUNNING,
    SEED,
    A,
    B,
    Rig,
    answer,
    backoff,
    rig,
    spread,
)

BOUNDS = AdaptivePolling(min_interval=7.0, max_interval=70.0)


def adaptive(*, budget: bool = False, max_rate: float | None = None) -> tuple[Rig, list[float]]:
    """The poller rig with a plan (no jitter) on its source, and the lateness it observes."""
    r = rig(jobs=("a", "b"), max_rate=max_rate)
    late: list[float] = []
    plan = SourcePlan(BOUNDS, hints={}, rng=ZeroRandom(), lateness=late.append)
    r.runtime.plan = plan
    if budget:
        r.runtime.budget = Budget(r.runtime.gate, {r.runtime.client.source.name: plan})
    return r, late


async def test_a_good_poll_is_followed_by_the_plans_delay() -> None:
    """A running job with nothing to estimate from is asked again at min_interval."""
    r, late = adaptive()
    assert await r.poller.poll(A) == 7.0
    r.clock.advance(10.0)
    assert await r.poller.poll(A) == 7.0
    assert late == [3.0]  # planned at 7 s, asked at 10 s


async def test_a_failed_poll_comes_back_within_the_bounds() -> None:
    """A job's own failure: its backoff, raised to min_interval."""
    r, _ = adaptive()
    expect = random.Random(SEED)
    r.client.script = [answer(200)]  # an empty body: not the job
    assert backoff(expect, 1) < 7.0
    assert await r.poller.poll(A) == 7.0


async def test_retry_after_beats_the_plan() -> None:
    """A 429's window decides when, not the plan; with a budget, exactly at its end."""
    r, _ = adaptive(budget=True, max_rate=100.0)
    r.client.script = [answer(429, Retry_After="120")]
    assert await r.poller.poll(A) == 120.0
    r.clock.advance(1.0)
    assert await r.poller.poll(B) == 119.0  # deferred unsent: the window is the source's
    assert len(r.client.sent) == 1


async def test_without_a_budget_the_window_is_spread_as_before() -> None:
    """An adaptive source without a rate cap spreads the jobs a window put back."""
    r, _ = adaptive()
    expect = random.Random(SEED)
    r.client.script = [answer(429, Retry_After="30")]
    assert await r.poller.poll(A) == spread(expect, 30.0)


async def test_a_finished_job_is_learned_from_and_forgotten() -> None:
    """Seen finished: no more polls, and its record goes."""
    r, _ = adaptive()
    plan = r.runtime.plan
    assert plan is not None
    await r.poller.poll(A)
    r.client.script = [DONE, answer(200, {"counts": {}})]  # the job, then its errors listing
    r.clock.advance(7.0)
    assert await r.poller.poll(A) is None
    assert len(plan) == 0


async def test_a_dropped_job_is_forgotten() -> None:
    """A job removed from the table loses its record at its next (last) turn."""
    r, _ = adaptive()
    plan = r.runtime.plan
    assert plan is not None
    await r.poller.poll(A)
    r.table.remove(A)
    assert await r.poller.poll(A) is None
    assert len(plan) == 0


async def test_a_fixed_source_keeps_its_interval() -> None:
    """Without adaptive_polling nothing changes: the poll interval, as ever."""
    r = rig()
    r.client.default = RUNNING
    assert await r.poller.poll(A) == INTERVAL
