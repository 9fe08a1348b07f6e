"""Writes no caller waits for: a bounded queue, sent in order while Redis is up, kept while not."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from exporter.fleet.wire import FleetUnavailable

LOG = logging.getLogger(__name__)
Op = Callable[[Redis], Awaitable[object]]
Call = Callable[[Op, str], Awaitable[object]]


class Writes:
    """The link's outbox: :meth:`post` never waits; :meth:`run` sends (at least once each).

    An op may run twice (it timed out after Redis had done it, and is sent
    again), so every op queued here must be idempotent.
    """

    def __init__(
        self,
        *,
        call: Call,
        wait_up: Callable[[], Awaitable[None]],
        is_up: Callable[[], bool],
        size: int,
        fleet: str,
    ) -> None:
        self._call = call
        self._wait_up = wait_up
        self._is_up = is_up
        self._size = size
        self._fleet = fleet
        self._queue: deque[tuple[Op, str]] = deque()
        self._queued = asyncio.Event()
        self.dropped = 0  # writes given up because the queue was full

    def __len__(self) -> int:
        """How many writes wait to be sent."""
        return len(self._queue)

    def post(self, op: Op, what: str) -> None:
        """Queue ``op``; a full queue gives up its oldest write (logged once)."""
        if len(self._queue) >= self._size:
            self._queue.popleft()
            if self.dropped == 0:
                LOG.warning("fleet %s: write queue full; dropping the oldest writes", self._fleet)
            self.dropped += 1
        self._queue.append((op, what))
        self._queued.set()

    async def run(self) -> None:
        """Send queued writes in order, until cancelled."""
        while True:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            await self._wait_up()
            entry = self._queue[0]
            try:
                await self._call(*entry)
            except FleetUnavailable:
                if not self._is_up():
                    continue  # kept: sent again once Redis is back
                # Up, so Redis refused it (logged by the link): sending it again would not help.
            if self._queue and self._queue[0] is entry:  # post() may have trimmed it meanwhile
                self._queue.popleft()
