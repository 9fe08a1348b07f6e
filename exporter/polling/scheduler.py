"""One asyncio loop that runs keyed work when it is due, with a global bound.

The scheduler keeps a heap of due times, not a task per job: 10,000 watched
jobs cost 10,000 heap entries and at most ``max_concurrency`` live tasks.  It
knows nothing of vendors: a key is opaque and the work function says when
that key wants to run again (``None``: never).  A key whose ``lanes(key)``
names a :class:`Lane` is handed to it when due, and starts when the lane lets
it (a budget that meters its keys and picks which goes first).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Generic, Protocol, TypeVar

from exporter.clock import Clock

K = TypeVar("K", bound=Hashable)

LOG = logging.getLogger(__name__)

# The loop wakes at least this often, so /healthz can tell a stuck loop from an idle one.
HEARTBEAT_INTERVAL = 1.0
# A work function that raises is retried after this long instead of being lost.
CRASH_RETRY_DELAY = 60.0

Work = Callable[[K], Awaitable[float | None]]
ErrorHandler = Callable[[K, BaseException], None]


class Lane(Protocol[K]):
    """Due keys that wait for their turn; the scheduler starts them when the lane says."""

    def offer(self, key: K, seq: int, due: float) -> None:
        """``key`` (its schedule entry ``seq``) was due at ``due`` and now waits here."""
        ...

    def ready_in(self, now: float) -> float:
        """Seconds until a waiting key may start (``inf`` when none waits)."""
        ...

    def take(self, now: float, current: Callable[[K, int], bool]) -> tuple[int, K] | None:
        """The waiting key to start now, the first still ``current``; ``None`` if none."""
        ...

    def waiting(self) -> Iterator[tuple[int, K]]:
        """The entries that wait."""
        ...


Lanes = Callable[[K], "Lane[K] | None"]


def _no_lanes(key: object) -> None:
    """Every key starts when due."""


def _log_crash(key: object, exc: BaseException) -> None:
    LOG.error("poll of %s crashed; retrying in %.0fs", key, CRASH_RETRY_DELAY, exc_info=exc)


class Scheduler(Generic[K]):
    """Run ``work(key)`` for each key when due, at most ``max_concurrency`` at once.

    Use as an async context manager, or call :meth:`start` and :meth:`close`.
    Keys scheduled before start run once started.  An exception from ``work``
    goes to ``on_error`` (default: one log line) and the key runs again later.
    """

    def __init__(
        self,
        work: Work[K],
        *,
        clock: Clock,
        max_concurrency: int,
        on_error: ErrorHandler[K] = _log_crash,
        lanes: Lanes[K] = _no_lanes,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._work = work
        self._clock = clock
        self._max = max_concurrency
        self._on_error = on_error
        self._lanes = lanes
        # Lanes that were handed keys, until they are empty (a reload may drop one: it drains).
        self._laned: dict[Lane[K], None] = {}
        self._heap: list[tuple[float, int, K]] = []
        # A key's current entry is the one whose sequence number is stored here;
        # older heap entries for it are skipped when popped (lazy deletion).
        self._current: dict[K, int] = {}
        self._seq = itertools.count()
        self._running: dict[asyncio.Task[None], K] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._draining = False
        self._idle = asyncio.Event()  # set whenever a run finishes, for drain()
        self.heartbeat = clock.monotonic()

    async def __aenter__(self) -> Scheduler[K]:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the loop in a task of its own."""
        if self._loop_task is not None or self._closed:
            raise RuntimeError("scheduler already started or closed")
        self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    async def close(self) -> None:
        """Stop the loop and cancel work in flight; safe to call twice."""
        self._closed = True
        tasks = [t for t in (self._loop_task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        # Gathered with return_exceptions so one stuck task cannot keep close() from finishing,
        # while a CancelledError aimed at close() itself still propagates from the await.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()

    async def drain(self, within: float) -> int:
        """Start nothing new and wait up to ``within`` for work in flight; how many remain."""
        self._draining = True
        deadline = self._clock.monotonic() + within
        while self._running and (left := deadline - self._clock.monotonic()) > 0:
            self._idle.clear()
            await self._clock.wait(self._idle, left)
        return len(self._running)

    @property
    def max_concurrency(self) -> int:
        """The bound on work in flight; raising it takes effect at once (a reload)."""
        return self._max

    @max_concurrency.setter
    def max_concurrency(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._max = value
        self._wake.set()

    @property
    def loop_task(self) -> asyncio.Task[None] | None:
        """The loop's task, so an owner can watch it die."""
        return self._loop_task

    @property
    def failed(self) -> BaseException | None:
        """The exception that ended the loop, if it died."""
        task = self._loop_task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def __len__(self) -> int:
        """How many keys are scheduled or running."""
        return len(self._current)

    def in_flight(self) -> int:
        """How many work calls are running now."""
        return len(self._running)

    def schedule(self, key: K, delay: float) -> None:
        """Run ``key`` after ``delay`` seconds, replacing any earlier schedule for it."""
        seq = next(self._seq)
        self._current[key] = seq
        heap = self._heap
        heapq.heappush(heap, (self._clock.monotonic() + delay, seq, key))
        # The loop sleeps until the head is due: only a new head changes that.  At
        # hundreds of polls a second, waking for every reschedule costs a loop turn each.
        if heap[0][1] == seq:
            self._wake.set()

    def cancel(self, key: K) -> None:
        """Forget ``key``; a run in flight finishes but is not rescheduled."""
        self._current.pop(key, None)

    def due_in(self, key: K) -> float | None:
        """Seconds until ``key`` runs next (for tests and the jobs listing), if scheduled."""
        seq = self._current.get(key)
        for at, entry_seq, entry_key in self._heap:
            if entry_seq == seq and entry_key == key:
                return at - self._clock.monotonic()
        for lane in self._laned:
            if any(entry == (seq, key) for entry in lane.waiting()):
                return 0.0  # due, waiting for its lane
        return None

    async def _run(self) -> None:
        while True:
            self.heartbeat = now = self._clock.monotonic()
            self._wake.clear()
            self._start_due(now)
            timeout = HEARTBEAT_INTERVAL
            if self._heap and len(self._running) < self._max:
                timeout = min(timeout, self._heap[0][0] - now)
            if self._laned and len(self._running) < self._max:
                timeout = min(timeout, *(lane.ready_in(now) for lane in self._laned))
            await self._clock.wait(self._wake, timeout)

    def _start_due(self, now: float) -> None:
        heap = self._heap
        if self._draining:
            return
        lanes = self._lanes
        while heap and len(self._running) < self._max and heap[0][0] <= now:
            at, seq, key = heapq.heappop(heap)
            if self._current.get(key) != seq:
                continue
            lane = lanes(key)
            if lane is not None:
                lane.offer(key, seq, at)
                self._laned[lane] = None
                continue
            self._start(key, seq)
        if self._laned:
            self._start_laned(now)

    def _start_laned(self, now: float) -> None:
        """Start what each lane lets through now; forget lanes left empty."""
        for lane in list(self._laned):
            while len(self._running) < self._max and lane.ready_in(now) <= 0:
                taken = lane.take(now, self._is_current)
                if taken is None:
                    break
                self._start(taken[1], taken[0])
            if lane.ready_in(now) == math.inf:
                del self._laned[lane]

    def _is_current(self, key: K, seq: int) -> bool:
        return self._current.get(key) == seq

    def _start(self, key: K, seq: int) -> None:
        task = asyncio.create_task(self._run_one(key, seq))
        self._running[task] = key
        task.add_done_callback(self._finished)

    async def _run_one(self, key: K, seq: int) -> None:
        try:
            delay = await self._work(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._on_error(key, exc)
            delay = CRASH_RETRY_DELAY
        # Rescheduled only if nobody touched the key meanwhile (cancel or a fresh schedule).
        if self._current.get(key) == seq:
            if delay is None:
                del self._current[key]
            else:
                self.schedule(key, delay)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        # Only a loop held back by the concurrency bound waits on a finish.
        if len(self._running) >= self._max - 1:
            self._wake.set()
        self._idle.set()
