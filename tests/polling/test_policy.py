"""The pure plan: estimates from progress, stages, age, stalls, bounds and jitter."""

from __future__ import annotations

import pytest

from exporter.config import AdaptivePolling
from exporter.model import Snapshot, Status
from exporter.polling import policy
from exporter.polling.policy import History, Learned, Plan, observe, plan
from exporter.vendors.base import StageHint

BOUNDS = AdaptivePolling(min_interval=5.0, max_interval=600.0)
WALL = 1_700_000_000.0  # wall time at monotonic 0
NOTHING = Learned()  # no finished job yet
HINTS: tuple[StageHint | None, ...] = (None, "soon", "wait")


def running(
    done: int | None = None,
    total: int | None = None,
    *,
    stage: str = "running",
    created: float | None = None,
    successful_items: int | None = None,
) -> Snapshot:
    """A running job's snapshot, with progress against a total when given."""
    return Snapshot(
        Status.RUNNING, stage, total_items=total, completed_items=done,
        successful_items=successful_items, created=created,
    )  # fmt: skip


def polled(*samples: tuple[float, Snapshot], first_seen: float = 0.0) -> History:
    """The history of good polls at (monotonic time, snapshot)."""
    history: History | None = None
    for at, snap in samples:
        history = observe(history, snap, now=at, wall=WALL + at, first_seen=WALL + first_seen)
    assert history is not None
    return history


def planned(
    h: History,
    now: float,
    *,
    hint: StageHint | None = None,
    far: bool = False,
    learned: Learned = NOTHING,
    jitter: float = 0.0,
    bounds: AdaptivePolling = BOUNDS,
) -> Plan:
    """The plan at ``now`` (no jitter unless given)."""
    return plan(h, now=now, bounds=bounds, hint=hint, far=far, learned=learned, jitter=jitter)


def test_the_finish_is_estimated_from_the_rate_and_polled_a_fifth_of_the_way() -> None:
    """500 of 1000 items in 50 s: 50 s left, so the next poll comes after 10 s."""
    h = polled((0.0, running(0, 1000)), (50.0, running(500, 1000)))
    assert h.rate == pytest.approx(10.0)
    got = planned(h, 50.0)
    assert got.delay == pytest.approx(10.0)
    assert (got.urgent, got.finish_at) == (False, 100.0)


def test_a_near_finish_is_polled_just_after_it() -> None:
    """20 s left is under five times min_interval: poll at the estimate plus 5 %."""
    h = polled((0.0, running(0, 1000)), (80.0, running(800, 1000)))
    got = planned(h, 80.0)
    assert got.delay == pytest.approx(21.0)
    assert (got.urgent, got.finish_at) == (True, 100.0)


def test_a_finish_within_min_interval_is_polled_at_min_interval() -> None:
    """1 s left: never sooner than min_interval."""
    h = polled((0.0, running(0, 1000)), (99.9, running(999, 1000)))
    assert planned(h, 99.9).delay == 5.0
    assert planned(h, 99.9).urgent


def test_all_items_done_is_polled_at_min_interval() -> None:
    """Every item done but not yet completed: the status follows at any moment."""
    h = polled((0.0, running(0, 10)), (5.0, running(10, 10)))
    assert planned(h, 5.0) == Plan(delay=5.0, urgent=True, finish_at=5.0)


def test_a_far_estimate_is_bounded_by_max_interval() -> None:
    """A 6-hour job is asked at least every max_interval."""
    h = polled((0.0, running(0, 21_600)), (100.0, running(100, 21_600)))
    assert planned(h, 100.0).delay == 600.0


def test_a_job_that_slows_down_is_re_estimated_later() -> None:
    """The rate follows recent polls, so a slower stretch moves the finish out."""
    fast = polled((0.0, running(0, 10_000)), (100.0, running(1000, 10_000)))
    slow = observe(fast, running(1100, 10_000), now=200.0, wall=WALL + 200.0, first_seen=WALL)
    rate = 10.0 * 60 / 160 + 1.0 * 100 / 160  # the old rate weighs 60 s against 100 s
    assert slow.rate == pytest.approx(rate)
    assert planned(fast, 100.0).finish_at == pytest.approx(1000.0)
    assert planned(slow, 200.0).finish_at == pytest.approx(200.0 + 8900 / rate)


def test_a_stalled_jobs_next_poll_moves_out_with_the_stall() -> None:
    """Counts that stop moving: the next poll after a stall of s comes s/5 later, up to max."""
    h = polled((0.0, running(0, 1000)), (10.0, running(100, 1000)))
    delays = []
    for at in (60.0, 160.0, 1000.0, 5000.0):
        h = observe(h, running(100, 1000), now=at, wall=WALL + at, first_seen=WALL)
        delays.append(planned(h, at))
    assert [p.delay for p in delays] == [10.0, pytest.approx(30.0), pytest.approx(198.0), 600.0]
    assert not any(p.urgent or p.finish_at for p in delays)
    resumed = observe(h, running(200, 1000), now=5010.0, wall=WALL + 5010.0, first_seen=WALL)
    assert planned(resumed, 5010.0).finish_at is not None  # moving again: estimated again


def test_no_rate_yet_is_asked_again_at_min_interval() -> None:
    """The first look at a job with no created time gives no rate: soon again, to get one."""
    h = polled((0.0, running(300, 1000)))
    assert h.rate is None
    assert planned(h, 0.0).delay == 5.0


def test_a_created_time_gives_a_rate_at_the_first_poll() -> None:
    """A job created 100 s ago with 100 of 1000 items done: 900 s left."""
    snap = running(100, 1000, created=WALL - 100.0)
    h = polled((0.0, snap))
    assert h.start == -100.0
    assert planned(h, 0.0).finish_at == pytest.approx(900.0)


def test_remaining_items_count_as_progress_too() -> None:
    """Without completedItems, total minus remaining is what is done."""
    snap = Snapshot(Status.RUNNING, "x", total_items=100, remaining_items=40)
    assert polled((0.0, snap)).done == 60


def test_a_total_without_done_or_remaining_is_no_progress() -> None:
    """A total alone says nothing of how far the job is: no estimate."""
    h = polled((0.0, Snapshot(Status.RUNNING, "x", total_items=100)))
    assert (h.done, planned(h, 0.0).finish_at) == (None, None)


def test_a_last_stage_is_polled_at_min_interval() -> None:
    """A "soon" stage (Talkdesk's uploading): every min_interval, urgent."""
    h = polled((0.0, running(stage="uploading")), (300.0, running(stage="uploading")))
    assert planned(h, 300.0, hint="soon", far=True) == Plan(5.0, True, None)


def test_a_waiting_stage_grows_with_the_wait() -> None:
    """A "wait" stage (created) is asked after half the time spent in it so far."""
    h = polled((0.0, running(stage="created")), (100.0, running(stage="created")))
    assert planned(h, 100.0, hint="wait").delay == 50.0
    pending = polled((0.0, Snapshot(Status.PENDING, "queued")), (400.0, running(stage="queued")))
    assert planned(pending, 400.0).delay == 5.0  # a stage that says nothing any more


def test_pending_without_a_hint_waits_like_a_wait_stage() -> None:
    """A job the API reports pending grows its interval with its wait."""
    queued = Snapshot(Status.PENDING, "queued")
    h = polled((0.0, queued), (100.0, queued))
    assert planned(h, 100.0).delay == 50.0


def test_other_stages_of_an_api_with_last_stages_grow_with_age() -> None:
    """Processing, where uploading comes before the end: a twentieth of the job's age."""
    h = polled((0.0, running(stage="processing")), (1000.0, running(stage="processing")))
    assert planned(h, 1000.0, far=True).delay == 50.0
    assert planned(h, 1000.0, far=False).delay == 5.0


def test_no_information_is_min_interval_until_longer_than_typical() -> None:
    """Without a total or stage, age beyond the source's typical run stretches the interval."""
    learned = Learned(typical=1000.0)
    young = polled((0.0, running()), (900.0, running()))
    old = polled((0.0, running()), (3000.0, running()))
    assert planned(young, 900.0, learned=learned).delay == 5.0
    assert planned(old, 3000.0, learned=learned).delay == 15.0
    ancient = polled((0.0, running()), (10**6, running()))
    assert planned(ancient, 10**6, learned=learned).delay == 600.0  # still by max_interval


def test_without_finished_jobs_typical_is_six_max_intervals() -> None:
    """Nothing learned yet: "longer than most" means six max_intervals (an hour at 10 m)."""
    h = polled((0.0, running()), (7200.0, running()))
    assert planned(h, 7200.0).delay == 10.0


def test_counts_that_stopped_moving_for_half_the_typical_run_count_as_past_it() -> None:
    """A no-total job whose counts froze for 1000 s of a typical 1000 s run: twice past it."""
    learned = Learned(typical=1000.0)
    h = polled((0.0, running(successful_items=5)), (100.0, running(successful_items=5)))
    h = observe(h, running(successful_items=5), now=1000.0, wall=WALL + 1000.0, first_seen=WALL)
    assert planned(h, 1000.0, learned=learned).delay == 10.0


def test_a_failed_poll_comes_back_at_min_interval() -> None:
    """The last poll failed: soon again, urgent; a good poll clears it."""
    h = policy.failed(polled((0.0, running(0, 1000)), (50.0, running(500, 1000))))
    assert planned(h, 60.0) == Plan(5.0, True, None)
    assert not observe(h, running(600, 1000), now=70.0, wall=WALL + 70.0, first_seen=WALL).failed


def test_jitter_only_shortens_relaxed_polls_and_never_below_min() -> None:
    """Up to 10 % sooner for polls not timed to a finish; timed ones keep their time."""
    h = polled((0.0, running(stage="processing")), (1000.0, running(stage="processing")))
    assert planned(h, 1000.0, far=True, jitter=0.5).delay == pytest.approx(47.5)
    near = polled((0.0, running(0, 1000)), (80.0, running(800, 1000)))
    assert planned(near, 80.0, jitter=0.99).delay == pytest.approx(21.0)
    young = polled((0.0, running()), (10.0, running()))
    assert planned(young, 10.0, jitter=0.99).delay == 5.0


@pytest.mark.parametrize("age", [0.0, 10.0, 1e3, 1e5, 1e7])
@pytest.mark.parametrize("far", [True, False])
def test_every_plan_stays_within_the_bounds(age: float, far: bool) -> None:
    """Whatever the job looks like, the delay is within [min_interval, max_interval]."""
    bounds = AdaptivePolling(7.0, 70.0)
    for snap in (running(), running(1, 10**9), running(stage="created"), running(10, 10)):
        h = polled((0.0, snap), (age, snap))
        for hint in HINTS:
            got = planned(h, age, hint=hint, far=far, bounds=bounds, jitter=0.9)
            assert 7.0 <= got.delay <= 70.0
