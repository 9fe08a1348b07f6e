"""The one Redis connection of an exporter: made in the background, never waited on.

:class:`Link` connects, reconnects after a failure with jittered exponential
backoff, and keeps this member's heartbeat.  A call (:meth:`Link.call`) has a
short timeout and fails at once with :class:`FleetUnavailable` while Redis is
known to be down, so nothing ever waits for an outage to end; writes that no
caller waits for go through a bounded queue (:meth:`Link.post`) and are sent
once Redis is back.  One subscriber connection carries every channel
(:meth:`Link.listen`).  The URL is a secret: no log line names it, nor
redis-py's error text, which names the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from exporter.clock import Clock
from exporter.config.model import FleetConfig
from exporter.fleet.feed import Feed, Handler, Ready
from exporter.fleet.members import Members
from exporter.fleet.wire import (
    FAILURES,
    UNAVAILABLE,
    FleetUnavailable,
    Timings,
    cancellable,
    make_client,
    reason,
)
from exporter.fleet.writes import Op, Writes

LOG = logging.getLogger(__name__)
T = TypeVar("T")
Watch = Callable[[asyncio.Task[None]], None]
DEFAULT_TIMINGS = Timings()


def default_member() -> str:
    """The member ID of this process: its host name (a pod's name) and its pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def log_crash(task: asyncio.Task[None]) -> None:
    """The default watcher of a background task: one line with the traceback if it dies."""

    def died(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and (exc := done.exception()) is not None:
            LOG.critical("fleet task %s died", done.get_name(), exc_info=exc)

    task.add_done_callback(died)


class Link:
    """An exporter's connection to the fleet's Redis, its heartbeat and its background tasks.

    ``default_members`` is how many exporters to assume (``--total-shards``)
    when neither Redis nor ``fleet.size`` has said; ``on_task`` watches every
    background task (the owner's crash handler: one handler, one log line).
    """

    def __init__(
        self,
        config: FleetConfig,
        *,
        clock: Clock,
        rng: random.Random,
        default_members: int = 1,
        member: str | None = None,
        timings: Timings = DEFAULT_TIMINGS,
        on_task: Watch = log_crash,
    ) -> None:
        self._config = config
        self._clock = clock
        self._rng = rng
        self.member = member or default_member()
        self.timings = timings
        self._on_task = on_task
        # The braces are a Redis Cluster hash tag: every key of a fleet in one slot.
        self.prefix = f"bje:{{{config.name}}}:"
        self._client: Redis | None = None
        self._closing: set[asyncio.Task[None]] = set()  # clients let go of, being closed
        self._up = False
        self._up_event = asyncio.Event()
        self._down = asyncio.Event()  # set while down: wakes the supervisor from its sleep
        self._down.set()
        self._never = asyncio.Event()
        self._outage_logged = False
        self._down_since = 0.0
        self.members = Members(
            key=self.key("members"),
            member=self.member,
            assumed=config.size or default_members,
            ttl=timings.member_ttl,
            clock=clock,
        )
        self._refused: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = self._closed = False
        self.writes = Writes(
            call=self.call,
            wait_up=self.wait_up,
            is_up=lambda: self._up,
            size=timings.queue,
            fleet=config.name,
        )
        self.feed = Feed(
            client=lambda: self._client if self._up else None,
            wait_up=self.wait_up,
            went_down=self.went_down,
            clock=clock,
            timings=timings,
        )

    @property
    def name(self) -> str:
        """The fleet's name."""
        return self._config.name

    def key(self, *parts: str) -> str:
        """A key of this fleet: the prefix and the parts joined by ``:``."""
        return self.prefix + ":".join(parts)

    @property
    def up(self) -> bool:
        """Whether Redis answered the last call (a plain read: never waits)."""
        return self._up

    def live_members(self) -> int:
        """Live heartbeats last counted in Redis; before any, ``fleet.size``, else the default."""
        return self.members.count()

    def listen(self, channel: str, on_message: Handler, on_ready: Ready) -> None:
        """Deliver ``channel``'s messages to ``on_message``; ``on_ready`` after each subscribe."""
        if self._started:
            raise RuntimeError("channels are added before the link starts")
        self.feed.add(channel, on_message, on_ready)

    async def __aenter__(self) -> Link:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting in the background; returns at once, connected or not."""
        if self._started or self._closed:
            raise RuntimeError("the link has started already or is closed")
        self._started = True
        try:
            self.spawn(self._supervise(), "link")
            self.spawn(self.writes.run(), "writes")
            if self.feed.channels:
                self.spawn(self.feed.run(), "feed")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop every task, leave the member set and disconnect; safe to call twice."""
        self._closed = True
        try:
            # Cancelled again while any runs (a few times at most): redis-py can lose a
            # cancellation (see cancellable).  asyncio.wait never raises a task's exception,
            # while a CancelledError aimed at close() itself still propagates from it.
            for _ in range(10):
                pending = [task for task in self._tasks if not task.done()]
                if not pending:
                    break
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=self.timings.timeout)
            if self._up:  # counted out at once rather than after member_ttl
                with contextlib.suppress(FleetUnavailable):
                    await self.call(self.members.leave, "goodbye")
        finally:
            self._set_down()
            await self._drop_client()

    async def ready(self, within: float) -> bool:
        """Wait up to ``within`` seconds for Redis; whether it is up (start-up and tests)."""
        await self._clock.wait(self._up_event, within)
        return self._up

    async def wait_up(self) -> None:
        """Return once Redis is up (for background tasks: callers that must not wait never do)."""
        await self._up_event.wait()

    def spawn(self, coro: Coroutine[object, object, None], name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a background task of the link: watched, cancelled on close."""
        if self._closed:
            coro.close()
            raise RuntimeError("the link is closed")
        task = asyncio.create_task(coro, name=f"fleet-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._on_task(task)
        return task

    async def call(self, op: Callable[[Redis], Awaitable[T]], what: str) -> T:
        """``op`` on the client within the call timeout, or :class:`FleetUnavailable`."""
        client = self._client
        if client is None or not self._up:
            raise FleetUnavailable("Redis is not connected")
        try:
            with cancellable():
                async with asyncio.timeout(self.timings.timeout):
                    return await op(client)
        except UNAVAILABLE as exc:
            if client is self._client:  # a failure of an old client says nothing of the new one
                self.went_down(reason(exc))
            # Not chained: redis-py's message names the host, and this may reach a log line.
            raise FleetUnavailable(f"Redis unavailable: {reason(exc)}") from None
        except ResponseError as exc:
            if what not in self._refused:  # NOPERM, OOM, a script error: once per kind of call
                self._refused.add(what)
                LOG.error("fleet %s: Redis refused the %s: %s", self.name, what, str(exc)[:200])
            raise FleetUnavailable(f"Redis refused the {what}") from None
        finally:
            if client is not self._client:  # dropped meanwhile: a command since may have connected
                self._retire(client)

    def post(self, op: Op, what: str) -> None:
        """Send ``op`` soon without waiting; kept while Redis is away (ops must be idempotent)."""
        self.writes.post(op, what)

    def went_down(self, why: str) -> None:
        """Redis failed a call: say so once per outage and reconnect in the background."""
        if not self._outage_logged:
            self._outage_logged = True
            self._down_since = self._clock.monotonic()
            LOG.warning(
                "fleet %s: Redis unavailable (%s); polling goes on with local politeness, "
                "as one of %d exporters, until it is back",
                self.name,
                why,
                self.live_members(),
            )
        self._set_down()

    def _set_down(self) -> None:
        self._up = False
        self._up_event.clear()
        self._down.set()

    def _came_up(self) -> None:
        if self._outage_logged:
            down_for = self._clock.monotonic() - self._down_since
            LOG.info("fleet %s: Redis is back after %.1fs", self.name, down_for)
        else:
            LOG.info("fleet %s: connected to Redis as member %s", self.name, self.member)
        self._outage_logged = False
        self._up = True
        self._down.clear()
        self._up_event.set()

    async def _supervise(self) -> None:
        failures = 0
        while True:
            if not self._up:
                if not await self._connect():
                    failures += 1
                    await self._clock.wait(self._never, self._retry_delay(failures))
                    continue
                failures = 0
            await self._beat()
            await self._clock.wait(self._down, self.timings.heartbeat)

    def _retry_delay(self, failures: int) -> float:
        """Exponential in the failures, capped, times a jitter in [0.5, 1): no reconnect storm."""
        timings = self.timings
        raw = min(timings.retry_cap, timings.retry_base * 2.0 ** min(failures - 1, 32))
        return raw * (0.5 + self._rng.random() / 2)

    async def _connect(self) -> bool:
        """A new client and two PINGs: the first may connect, the second must be quick."""
        await self._drop_client()
        secret = self._config.redis_url
        try:
            # Read at each reconnect, so a rotated password file is picked up.
            url = await asyncio.to_thread(secret.read)
            client = make_client(
                url, connect_timeout=self.timings.connect_timeout, timeout=self.timings.timeout
            )
        except (OSError, ValueError):
            self.went_down(f"no usable URL in the {secret.describe()}")
            return False
        self._client = client
        try:
            with cancellable():
                async with asyncio.timeout(self.timings.connect_timeout):
                    await client.ping()
                async with asyncio.timeout(self.timings.timeout):
                    await client.ping()  # a Redis too slow to answer in time is as good as down
        except FAILURES as exc:
            self.went_down(reason(exc))
            await self._drop_client()
            return False
        self._came_up()
        return True

    async def _beat(self) -> None:
        with contextlib.suppress(FleetUnavailable):
            await self.call(self.members.beat, "heartbeat")

    async def _drop_client(self) -> None:
        """Let go of the client and wait until every client let go of is closed."""
        client, self._client = self._client, None
        if client is not None:
            self._retire(client)
        if self._closing:
            await asyncio.wait(set(self._closing))  # a cancelled wait leaves them running

    def _retire(self, client: Redis) -> None:
        """Close ``client`` in a task of its own: cancelling whoever let go of it cannot stop that.

        redis-py's ``aclose()`` disconnects each connection in a task of a gather;
        cancelled in the turn it starts them (``close()`` meeting a reconnect), none
        runs and their sockets stay open until garbage collection.  Closing again is
        harmless, and closes a connection a late call opened in the pool meanwhile.
        """
        task = asyncio.create_task(self._aclose(client), name="fleet-aclose")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._on_task(task)

    async def _aclose(self, client: Redis) -> None:
        with contextlib.suppress(*FAILURES):
            async with asyncio.timeout(self.timings.timeout):
                await client.aclose()
