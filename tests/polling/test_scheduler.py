"""The scheduler on a fake clock: order, bounds, rescheduling, failures, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from exporter.clock import FakeClock
from exporter.polling.scheduler import CRASH_RETRY_DELAY, Scheduler
from tests.conftest import settle


async def test_runs_keys_when_due_and_not_before(clock: FakeClock) -> None:
    """A key runs only once its delay has passed on the clock."""
    ran: list[str] = []

    async def work(key: str) -> float | None:
        ran.append(key)
        return None

    async with Scheduler(work, clock=clock, max_concurrency=4) as sched:
        sched.schedule("late", 10)
        sched.schedule("early", 5)
        await settle()
        assert ran == []
        clock.advance(5)
        await settle()
        assert ran == ["early"]
        clock.advance(5)
        await settle()
        assert ran == ["early", "late"]
        assert len(sched) == 0


class CountingClock(FakeClock):
    """A fake clock that counts the scheduler loop's turns (each turn ends in a wait)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def wait(self, event: asyncio.Event, within: float) -> None:
        """Count the turn, then wait as the fake clock does."""
        self.waits += 1
        await super().wait(event, within)


async def test_a_sooner_key_wakes_the_loop_and_a_later_one_does_not() -> None:
    """Only a new head of the queue costs the sleeping loop a turn, and it then runs on time."""
    clock = CountingClock()
    ran: list[str] = []

    async def work(key: str) -> float | None:
        ran.append(key)
        return None

    async with Scheduler(work, clock=clock, max_concurrency=4) as sched:
        sched.schedule("head", 100)
        await settle()
        turns = clock.waits
        for i in range(50):
            sched.schedule(f"later-{i}", 200 + i)
        await settle()
        assert clock.waits == turns
        sched.schedule("sooner", 1)
        await settle()
        assert clock.waits == turns + 1
        clock.advance(1)
        await settle()
        assert ran == ["sooner"]


async def test_returned_delay_reschedules_and_none_stops(clock: FakeClock) -> None:
    """The work's return value is the delay to its next run; None ends it."""
    runs = 0

    async def work(key: str) -> float | None:
        nonlocal runs
        runs += 1
        return 30.0 if runs < 3 else None

    async with Scheduler(work, clock=clock, max_concurrency=1) as sched:
        sched.schedule("job", 0)
        await settle()
        assert runs == 1
        assert sched.due_in("job") == pytest.approx(30.0)
        clock.advance(29)
        await settle()
        assert runs == 1
        clock.advance(1)
        await settle()
        clock.advance(30)
        await settle()
        assert runs == 3
        assert len(sched) == 0
        assert sched.due_in("job") is None


async def test_concurrency_is_bounded(clock: FakeClock) -> None:
    """No more than max_concurrency work calls run at once; the rest wait their turn."""
    release = asyncio.Event()
    active = peak = done = 0

    async def work(key: int) -> float | None:
        nonlocal active, peak, done
        active += 1
        peak = max(peak, active)
        await release.wait()
        active -= 1
        done += 1
        return None

    async with Scheduler(work, clock=clock, max_concurrency=3) as sched:
        for i in range(10):
            sched.schedule(i, 0)
        await settle()
        assert sched.in_flight() == 3
        release.set()
        await settle(100)
        assert peak == 3
        assert done == 10


async def test_a_crash_is_reported_and_retried(clock: FakeClock) -> None:
    """An exception from the work reaches the error handler and the key runs again later."""
    seen: list[tuple[str, str]] = []
    calls = 0

    async def work(key: str) -> float | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return None

    def on_error(key: str, exc: BaseException) -> None:
        seen.append((key, str(exc)))

    async with Scheduler(work, clock=clock, max_concurrency=1, on_error=on_error) as sched:
        sched.schedule("job", 0)
        await settle()
        assert seen == [("job", "boom")]
        assert sched.due_in("job") == pytest.approx(CRASH_RETRY_DELAY)
        clock.advance(CRASH_RETRY_DELAY)
        await settle()
        assert calls == 2


async def test_cancel_and_reschedule_win_over_a_run_in_flight(clock: FakeClock) -> None:
    """A key cancelled or rescheduled while running keeps the newer decision."""
    gate = asyncio.Event()

    async def work(key: str) -> float | None:
        await gate.wait()
        return 5.0

    async with Scheduler(work, clock=clock, max_concurrency=2) as sched:
        sched.schedule("cancelled", 0)
        sched.schedule("moved", 0)
        await settle()
        sched.cancel("cancelled")
        sched.schedule("moved", 100)
        gate.set()
        await settle()
        assert sched.due_in("cancelled") is None
        assert sched.due_in("moved") == pytest.approx(100)


async def test_close_cancels_work_in_flight_and_is_idempotent(clock: FakeClock) -> None:
    """close() cancels running work, returns, and can be called again."""
    cancelled = asyncio.Event()

    async def work(key: str) -> float | None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    sched = Scheduler(work, clock=clock, max_concurrency=1)
    sched.start()
    sched.schedule("job", 0)
    await settle()
    await sched.close()
    assert cancelled.is_set() is True
    assert sched.failed is None
    await sched.close()
    with pytest.raises(RuntimeError, match="scheduler already started or closed"):
        sched.start()


async def test_close_does_not_swallow_an_outside_cancel(clock: FakeClock) -> None:
    """A CancelledError aimed at the task closing the scheduler still propagates."""

    async def work(key: str) -> float | None:
        await asyncio.sleep(3600)
        return None

    sched = Scheduler(work, clock=clock, max_concurrency=1)

    async def closer() -> None:
        async with sched:
            sched.schedule("job", 0)
            await asyncio.Event().wait()

    task = asyncio.create_task(closer())
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() is True


def test_rejects_a_zero_bound(clock: FakeClock) -> None:
    """A concurrency bound below one is a programming error."""

    async def work(key: str) -> float | None:
        return None

    with pytest.raises(ValueError, match="max_concurrency"):
        Scheduler(work, clock=clock, max_concurrency=0)


async def test_heartbeat_moves_while_idle(clock: FakeClock) -> None:
    """The loop ticks at least every second even with nothing due, for /healthz."""

    async def work(key: str) -> float | None:
        return None

    async with Scheduler(work, clock=clock, max_concurrency=1) as sched:
        await settle()
        first = sched.heartbeat
        clock.advance(1.0)
        await settle()
        assert sched.heartbeat == first + 1.0


async def test_drain_waits_for_work_in_flight_and_starts_nothing_new(clock: FakeClock) -> None:
    """drain() lets running work finish, starts no due key, and reports none left."""
    gate = asyncio.Event()
    ran: list[str] = []

    async def work(key: str) -> float | None:
        ran.append(key)
        await gate.wait()
        return None

    async with Scheduler(work, clock=clock, max_concurrency=1) as sched:
        sched.schedule("first", 0)
        sched.schedule("second", 0)
        await settle()
        draining = asyncio.ensure_future(sched.drain(5.0))
        await settle()
        gate.set()
        assert await draining == 0
        clock.advance(10)
        await settle()
    assert ran == ["first"]


async def test_drain_gives_up_after_its_timeout(clock: FakeClock) -> None:
    """drain() returns how many runs are still going once its timeout has passed."""

    async def work(key: str) -> float | None:
        await asyncio.Event().wait()
        return None

    async with Scheduler(work, clock=clock, max_concurrency=2) as sched:
        sched.schedule("stuck", 0)
        await settle()
        draining = asyncio.ensure_future(sched.drain(2.0))
        await settle()
        assert draining.done() is False
        clock.advance(2.0)
        await settle()
        assert await draining == 1


async def test_raising_max_concurrency_starts_waiting_keys(clock: FakeClock) -> None:
    """A larger bound set at run time (a reload) starts keys that were waiting for a slot."""
    gate = asyncio.Event()

    async def work(key: str) -> float | None:
        await gate.wait()
        return None

    async with Scheduler(work, clock=clock, max_concurrency=1) as sched:
        for key in ("a", "b", "c"):
            sched.schedule(key, 0)
        await settle()
        assert sched.in_flight() == 1
        sched.max_concurrency = 3
        await settle()
        assert sched.in_flight() == 3
        assert sched.max_concurrency == 3
        with pytest.raises(ValueError, match="at least 1"):
            sched.max_concurrency = 0
        gate.set()
