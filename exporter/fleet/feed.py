"""One subscriber connection for every channel of the fleet, and a catch-up after each subscription.

Pub/sub delivers only to whoever is subscribed when a message is published,
so after every (re)subscription each channel's ``on_ready`` reads the state
it may have missed (the windows in force, every registration).  It runs once
the subscriptions are confirmed: a change published after the read arrives
as a message, and one published before it is already in what was read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from exporter.clock import Clock
from exporter.fleet.wire import (
    FAILURES,
    UNAVAILABLE,
    FleetUnavailable,
    Timings,
    cancellable,
    reason,
)

Handler = Callable[[bytes], None]
Ready = Callable[[], Awaitable[None]]


class Feed:
    """The link's subscriber: follows every channel while Redis is up, resubscribes after."""

    def __init__(
        self,
        *,
        client: Callable[[], Redis | None],
        wait_up: Callable[[], Awaitable[None]],
        went_down: Callable[[str], None],
        clock: Clock,
        timings: Timings,
    ) -> None:
        self._client = client
        self._wait_up = wait_up
        self._went_down = went_down
        self._clock = clock
        self._timings = timings
        self.channels: dict[str, tuple[Handler, Ready]] = {}
        # Set from the end of the catch-up until the subscription is lost.
        self.synced = asyncio.Event()
        self._never = asyncio.Event()
        self._again = False  # a catch-up asked for (see catch_up); the next subscription's serves

    def add(self, channel: str, on_message: Handler, on_ready: Ready) -> None:
        """Follow ``channel``; ``on_ready`` reads what a subscriber may have missed."""
        if channel in self.channels:
            raise ValueError(f"channel {channel} has a listener already")
        self.channels[channel] = (on_message, on_ready)

    def catch_up(self) -> None:
        """Read what a subscriber may have missed again, soon, in the feed's own turn.

        Not in a task of its own: the messages that arrive meanwhile must wait and
        come after the read, as they do after a subscription, or an older read
        would undo a newer message.
        """
        self._again = True

    async def run(self) -> None:
        """Subscribe whenever the link is up, until cancelled."""
        while True:
            await self._wait_up()
            client = self._client()
            if client is None:
                continue
            pubsub = client.pubsub()
            try:
                await self._follow(client, pubsub)
            except UNAVAILABLE as exc:
                if self._client() is client:
                    self._went_down(reason(exc))
            except FleetUnavailable:
                pass  # a catch-up read failed: the link has logged why
            finally:
                self.synced.clear()
                with contextlib.suppress(*FAILURES), cancellable():
                    async with asyncio.timeout(self._timings.timeout):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            if self._client() is client:
                # Still up, so Redis refused a catch-up: try again later, not in a tight loop.
                await self._clock.wait(self._never, self._timings.retry_cap)

    async def _follow(self, client: Redis, pubsub: PubSub) -> None:
        timings = self._timings
        with cancellable():
            async with asyncio.timeout(timings.connect_timeout):
                await pubsub.subscribe(*self.channels)
                confirmed = 0
                while confirmed < len(self.channels):
                    message = await pubsub.get_message(timeout=timings.timeout)
                    confirmed += self._dispatch(message)
        await self._read_missed()
        self.synced.set()
        while self._client() is client:
            if self._again:
                await self._read_missed()
            # get_message's own timeout ends an idle wait; this one bounds a stuck read.
            with cancellable():
                async with asyncio.timeout(timings.feed_poll + timings.timeout):
                    message = await pubsub.get_message(timeout=timings.feed_poll)
            self._dispatch(message)

    async def _read_missed(self) -> None:
        """Every channel's catch-up read; it serves any catch-up asked for until now."""
        self._again = False
        for _, on_ready in self.channels.values():
            await on_ready()

    def _dispatch(self, message: object) -> int:
        """Hand a message to its channel's handler; 1 for a subscription's confirmation."""
        if not isinstance(message, dict):
            return 0  # nothing arrived within the wait
        kind, channel, data = message.get("type"), message.get("channel"), message.get("data")
        if kind == "subscribe":
            return 1
        if kind == "message" and isinstance(channel, bytes) and isinstance(data, bytes):
            entry = self.channels.get(channel.decode("utf-8", "replace"))
            if entry is not None:
                entry[0](data)
        return 0
