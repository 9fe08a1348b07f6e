"""A rate-capped source's lane in the real scheduler: value or due order, its rate, gate first."""

from __future__ import annotations

import random

from exporter.clock import FakeClock
from exporter.config import AdaptivePolling
from exporter.jobs.keys import JobKey
from exporter.model import Snapshot, Status
from exporter.polling.budget import Budget
from exporter.polling.gate import Backoff, SourceGate
from exporter.polling.plans import SourcePlan
from exporter.polling.scheduler import Scheduler
from tests.conftest import settle
from tests.polling.test_plans import WALL, ZeroRandom, progress

SOURCE = "src"
MATE = "mate"  # another source of SOURCE's account: the same gate, so the same lane
BOUNDS = AdaptivePolling(min_interval=5.0, max_interval=600.0)


class Rig:
    """A scheduler whose keys of SOURCE queue in one budget; the runs are noted."""

    def __init__(self, clock: FakeClock, *, rate: float = 1.0, adaptive: bool = True) -> None:
        self.clock = clock
        self.gate = SourceGate(max_rate=rate, backoff=Backoff(), rng=random.Random(1))
        self.plan = SourcePlan(BOUNDS, hints={}, rng=ZeroRandom())
        self.budget = Budget(self.gate, {SOURCE: self.plan} if adaptive else None)
        self.ran: list[tuple[float, str]] = []
        self.scheduler: Scheduler[JobKey] = Scheduler(
            self.work, clock=clock, max_concurrency=8, lanes=self.lane
        )

    def lane(self, key: JobKey) -> Budget | None:
        """SOURCE's and MATE's keys wait in the budget; others start when due."""
        return self.budget if key[0] in (SOURCE, MATE) else None

    async def work(self, key: JobKey) -> float | None:
        """Note the run and take the gate's slot, as a poll's request does."""
        self.ran.append((self.clock.monotonic(), key[1]))
        if key[0] in (SOURCE, MATE):
            assert self.gate.acquire(self.clock.monotonic()) == 0.0
        return None

    def polled(self, job_id: str, *samples: tuple[float, Snapshot]) -> None:
        """Give ``job_id`` a history of good polls at (time after now, snapshot)."""
        now = self.clock.monotonic()
        for at, snap in samples:
            self.plan.succeeded(job_id, snap, now=now + at, wall=WALL + now + at, first_seen=WALL)


async def advance(clock: FakeClock, seconds: float, step: float = 0.5) -> None:
    """Move the clock in small steps, letting the loop run after each."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await settle()


async def test_due_polls_go_by_value_not_first_come(clock: FakeClock) -> None:
    """Five due at once, one a second: never polled and a near finish before an overdue plan."""
    r = Rig(clock)
    r.polled("relaxed", (-100.0, Snapshot(Status.RUNNING, "processing")))  # planned at -95
    r.polled("near", (-90.0, progress(0)), (0.0, progress(900)))  # finish at 10, poll at 10.5
    r.polled("far", (-100.0, progress(0)), (0.0, progress(10)))  # far out: polled by max
    async with r.scheduler:
        for job_id in ("relaxed", "far", "near", "new"):
            r.scheduler.schedule((SOURCE, job_id), 0.0)
        r.scheduler.schedule(("other", "free"), 0.0)
        await settle()
        await advance(clock, 4.0)
    assert r.ran == [
        (1000.0, "free"),  # not budgeted: at once
        (1000.0, "new"),  # never polled: at its due time (0) - 600
        (1001.0, "near"),  # timed to its finish: at 10.5 - 600
        (1002.0, "relaxed"),  # overdue against its plan of -95
        (1003.0, "far"),  # planned later than relaxed
    ]


async def test_a_closed_gate_sends_nothing_until_it_opens(clock: FakeClock) -> None:
    """A Retry-After window beats any plan: the queue waits it out, then resumes at the rate."""
    r = Rig(clock, rate=2.0)
    async with r.scheduler:
        r.gate.retry_after(clock.monotonic(), 30.0)
        for job_id in ("a", "b"):
            r.scheduler.schedule((SOURCE, job_id), 0.0)
        await settle()
        await advance(clock, 29.5)
        assert r.ran == []
        assert r.scheduler.due_in((SOURCE, "a")) == 0.0  # due, waiting in its budget
        await advance(clock, 1.5)
    assert r.ran == [(1030.0, "a"), (1030.5, "b")]


async def test_a_poll_cancelled_while_it_waits_is_skipped(clock: FakeClock) -> None:
    """A job dropped while queued neither runs nor uses up a slot; the lane then empties."""
    r = Rig(clock)
    async with r.scheduler:
        for job_id in ("a", "b", "c"):
            r.scheduler.schedule((SOURCE, job_id), 0.0)
        await settle()
        r.scheduler.cancel((SOURCE, "b"))
        await advance(clock, 3.0)
        assert r.scheduler.due_in((SOURCE, "b")) is None
    assert r.ran == [(1000.0, "a"), (1001.0, "c")]
    assert len(r.budget) == 0


async def test_a_lane_of_only_dropped_polls_empties_without_a_run(clock: FakeClock) -> None:
    """Every waiting poll cancelled: nothing runs, and the scheduler forgets the lane."""
    r = Rig(clock)
    async with r.scheduler:
        r.gate.hold(clock.monotonic(), 10.0)  # closed: both wait
        for job_id in ("a", "b"):
            r.scheduler.schedule((SOURCE, job_id), 0.0)
        await settle()
        r.scheduler.cancel((SOURCE, "a"))
        assert r.scheduler.due_in((SOURCE, "a")) is None  # no longer waiting, though queued
        r.scheduler.cancel((SOURCE, "b"))
        await advance(clock, 11.0)
        assert r.scheduler.due_in((SOURCE, "b")) is None
    assert r.ran == []
    assert len(r.budget) == 0


async def test_a_rescheduled_key_waits_once(clock: FakeClock) -> None:
    """A key scheduled again while it waits runs once, its old entry skipped."""
    r = Rig(clock)
    async with r.scheduler:
        r.scheduler.schedule((SOURCE, "a"), 0.0)
        r.scheduler.schedule((SOURCE, "b"), 0.0)
        await settle()
        r.scheduler.schedule((SOURCE, "b"), 0.0)
        await advance(clock, 3.0)
    assert r.ran == [(1000.0, "a"), (1001.0, "b")]


async def test_without_a_rate_cap_a_lane_lets_everything_through(clock: FakeClock) -> None:
    """A budget whose source lost its rate cap (a reload) drains at once."""
    r = Rig(clock)
    r.gate.set_rate(None)
    async with r.scheduler:
        for job_id in ("a", "b", "c"):
            r.scheduler.schedule((SOURCE, job_id), 0.0)
        await settle()
    assert [at for at, _ in r.ran] == [1000.0, 1000.0, 1000.0]


async def test_a_fixed_interval_source_goes_by_due_time_one_per_slot(clock: FakeClock) -> None:
    """Without a plan the longest due goes first, one a slot, each started once (no retries)."""
    r = Rig(clock, rate=2.0, adaptive=False)
    async with r.scheduler:
        for job_id, delay in (("c", 0.4), ("a", 0.0), ("b", 0.2), ("d", 0.4)):
            r.scheduler.schedule((SOURCE, job_id), delay)
        await settle()
        await advance(clock, 3.0)
    assert r.ran == [(1000.0, "a"), (1000.5, "b"), (1001.0, "c"), (1001.5, "d")]


async def test_the_sources_of_one_account_take_turns_in_its_lane(clock: FakeClock) -> None:
    """Two sources on one gate share its lane: by rank across both, neither starves."""
    r = Rig(clock, rate=1.0)  # SOURCE is adaptive, MATE is not: its polls rank by due time
    async with r.scheduler:
        for n in range(3):
            r.scheduler.schedule((MATE, f"m{n}"), 0.0)
            r.scheduler.schedule((SOURCE, f"s{n}"), 0.0)
        await settle()
        await advance(clock, 6.0)
    # SOURCE's never-polled jobs rank at due - max_interval, ahead of MATE's due times.
    assert [job for _, job in r.ran] == ["s0", "s1", "s2", "m0", "m1", "m2"]
    assert [at for at, _ in r.ran] == [1000.0 + n for n in range(6)]
