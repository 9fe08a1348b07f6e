"""Time as a dependency, so scheduling and backoff are tested without sleeping.

The scheduler waits with :meth:`Clock.wait`, which returns early when its
wake-up event is set.  :class:`FakeClock` only moves when a test calls
:meth:`FakeClock.advance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time for scheduling, wall time for timestamps, and a wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        ...

    def time(self) -> float:
        """Unix seconds, for timestamps users see."""
        ...

    async def wait(self, event: asyncio.Event, within: float) -> None:
        """Return once ``event`` is set or ``within`` seconds have passed."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> float:
        """Seconds from :func:`time.monotonic`."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds from :func:`time.time`."""
        return time.time()

    async def wait(self, event: asyncio.Event, within: float) -> None:
        """Wait on the event with a timeout; the timeout is not an error."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(within, 0.0)):
                await event.wait()


class FakeClock:
    """A clock that stands still until :meth:`advance` moves it."""

    def __init__(self, start: float = 1_000.0, wall_offset: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_offset
        self._sleepers: list[tuple[float, asyncio.Future[bool]]] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._now

    def time(self) -> float:
        """The fake wall time, a fixed offset from the monotonic one."""
        return self._now + self._wall_offset

    async def wait(self, event: asyncio.Event, within: float) -> None:
        """Wait until the event is set or the fake time reaches the deadline."""
        if event.is_set():
            return
        deadline = self._now + max(within, 0.0)
        sleeper: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, sleeper))
        event_task: asyncio.Future[bool] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([sleeper, event_task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            event_task.cancel()
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not sleeper]

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every waiter whose deadline has come."""
        self._now += seconds
        for deadline, sleeper in self._sleepers:
            if deadline <= self._now and not sleeper.done():
                sleeper.set_result(True)
