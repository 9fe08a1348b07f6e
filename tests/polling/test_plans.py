"""One source's plans: records, learning from finished jobs, demand, ranks, lateness."""

from __future__ import annotations

import random

import pytest

from exporter.config import AdaptivePolling
from exporter.model import Snapshot, Status
from exporter.polling.plans import MIN_LEARNED, SWEEP_MIN, SourcePlan, quantile
from exporter.vendors.base import StageHint

BOUNDS = AdaptivePolling(min_interval=5.0, max_interval=600.0)
WALL = 1_700_000_000.0
RUNNING = Snapshot(Status.RUNNING, "running")


def progress(done: int, total: int = 1000) -> Snapshot:
    """A running job with ``done`` of ``total`` items done."""
    return Snapshot(Status.RUNNING, "running", total_items=total, completed_items=done)


def source(*, rate: float | None = None, hints: dict[str, StageHint] | None = None) -> SourcePlan:
    """A plan with no jitter (its rng always draws 0) and a lateness list."""
    plan = SourcePlan(BOUNDS, hints=hints or {}, rng=ZeroRandom(), lateness=LATE.append)
    plan.rate = rate
    return plan


class ZeroRandom(random.Random):
    """An rng whose draws are all 0: plans without jitter."""

    def random(self) -> float:
        """Always 0."""
        return 0.0


LATE: list[float] = []


def ok(plan: SourcePlan, job_id: str, snap: Snapshot, at: float) -> float:
    """A good poll of ``job_id`` at monotonic ``at`` (started then); its next delay."""
    plan.started(job_id, at)
    return plan.succeeded(job_id, snap, now=at, wall=WALL + at, first_seen=WALL)


@pytest.fixture(autouse=True)
def _no_lateness_yet() -> None:
    """Each test starts with no lateness observed."""
    LATE.clear()


def test_quantile_is_the_nearest_rank() -> None:
    """The q quantile of the values, by nearest rank."""
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.97) == 4.0
    assert quantile([7.0], 0.0) == 7.0


def test_a_good_poll_returns_the_plan_and_counts_its_demand() -> None:
    """The delay is the pure plan's; the demand sums one over each job's interval."""
    plan = source()
    assert ok(plan, "a", RUNNING, 0.0) == 5.0
    assert ok(plan, "b", progress(0), 0.0) == 5.0
    assert ok(plan, "b", progress(500), 50.0) == pytest.approx(10.0)
    assert plan.demand == pytest.approx(1 / 5 + 1 / 10)
    assert len(plan) == 2


def test_lateness_is_how_late_a_poll_started_against_its_plan() -> None:
    """Planned at 5 s, started at 12 s: 7 s late; the first poll has no plan to be late for."""
    plan = source()
    ok(plan, "a", RUNNING, 0.0)
    ok(plan, "a", RUNNING, 12.0)
    ok(plan, "a", RUNNING, 16.0)  # early (a reload, a restart): 0, not negative
    assert LATE == [7.0, 0.0]


def test_a_failed_poll_comes_back_within_the_bounds() -> None:
    """The job's own backoff, never below min_interval nor above max_interval."""
    plan = source()
    assert plan.failed("a", now=0.0, backoff=0.7) == 5.0
    ok(plan, "a", progress(0), 10.0)
    assert plan.failed("a", now=20.0, backoff=30.0) == 30.0
    assert plan.failed("a", now=50.0, backoff=900.0) == 600.0
    assert plan.demand == pytest.approx(1 / 600)


def test_finished_jobs_teach_the_typical_duration() -> None:
    """After MIN_LEARNED finished jobs the 97th percentile of their durations is typical."""
    plan = source()
    for index in range(MIN_LEARNED):
        job_id = f"j{index}"
        ok(plan, job_id, RUNNING, 0.0)
        assert plan.learned.typical is None
        plan.finished(job_id, 100.0 * (index + 1))
    assert plan.learned.typical == 1000.0
    assert len(plan) == 0
    assert plan.demand == 0.0


def test_finished_or_forgotten_jobs_without_a_history_teach_nothing() -> None:
    """A job that never had a good poll has no start to measure from."""
    plan = source()
    plan.started("a", 0.0)
    plan.finished("a", 50.0)
    plan.forget("never-seen")
    assert len(plan) == 0
    assert plan.learned.typical is None


def test_sweep_drops_records_of_jobs_gone_and_resums_the_demand() -> None:
    """Once there are more than SWEEP_MIN records, those not alive go."""
    plan = source()
    for index in range(SWEEP_MIN + 1):
        ok(plan, f"j{index}", RUNNING, 0.0)
    crowded = plan.needs_sweep
    plan.sweep(lambda job_id: job_id == "j0")
    assert (crowded, plan.needs_sweep, len(plan)) == (True, False, 1)
    assert plan.demand == pytest.approx(1 / 5)


def test_rank_puts_what_buys_freshness_first() -> None:
    """Never polled and failed stand max_interval ahead; a near finish beats overdue polls."""
    plan = source()
    assert plan.rank("new", 100.0) == 100.0 - 600.0
    ok(plan, "relaxed", Snapshot(Status.RUNNING, "processing"), 0.0)  # planned at 5 s
    assert plan.rank("relaxed", 5.0) == 5.0
    ok(plan, "near", progress(0), 0.0)
    ok(plan, "near", progress(900), 90.0)  # finishes at 100: a poll just after it
    assert plan.rank("near", 100.5) == pytest.approx(100.5 - 600.0)
    ok(plan, "far", progress(0), 0.0)
    ok(plan, "far", progress(10), 100.0)  # 9900 s out: polled by max_interval, ranked there
    assert plan.rank("far", 700.0) == 700.0
    plan.failed("relaxed", now=10.0, backoff=1.0)
    assert plan.rank("relaxed", 15.0) == 15.0 - 600.0


def test_a_last_stage_ranks_ahead() -> None:
    """A job in a "soon" stage stands max_interval ahead of its planned time."""
    plan = source(hints={"uploading": "soon"})
    ok(plan, "a", Snapshot(Status.RUNNING, "uploading"), 0.0)
    assert plan.rank("a", 5.0) == 5.0 - 600.0


def test_stretch_is_the_demand_over_the_budget_at_least_one() -> None:
    """200 jobs asking every 5 s want 40 requests/s: 4x a budget of 10."""
    plan = source(rate=10.0)
    assert plan.stretch == 1.0
    for index in range(200):
        ok(plan, f"j{index}", RUNNING, 0.0)
    assert plan.stretch == pytest.approx(4.0)
    assert source().stretch == 1.0  # no budget: nothing to stretch
