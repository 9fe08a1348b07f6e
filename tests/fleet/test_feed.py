"""The subscriber: one channel one listener, and a refused catch-up tried again later."""

from __future__ import annotations

import asyncio

import pytest

from exporter.fleet import FleetUnavailable
from tests.fleet.conftest import Links, RedisServer, fleet_config
from tests.harness import until


async def test_a_channel_has_one_listener(redis_server: RedisServer, links: Links) -> None:
    """A second listener on the same channel is a mistake."""
    link = links(fleet_config(redis_server), "a")

    async def ready() -> None:
        return None

    link.listen("bje:{test}:c", lambda data: None, ready)
    with pytest.raises(ValueError, match="has a listener already"):
        link.listen("bje:{test}:c", lambda data: None, ready)


async def test_a_refused_catch_up_is_tried_again_later_not_in_a_loop(
    redis_server: RedisServer, links: Links
) -> None:
    """The catch-up fails while Redis is up: the feed waits, then subscribes and reads again."""
    link = links(fleet_config(redis_server), "a")
    attempts: list[float] = []
    heard: list[bytes] = []

    async def ready() -> None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 1:
            raise FleetUnavailable("Redis refused the read")

    link.listen("bje:{test}:c", heard.append, ready)
    await link.start()
    await until(link.feed.synced.is_set, "the second catch-up")
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.05  # FAST's retry_cap of 0.1, jitter aside
    with redis_server.client() as raw:
        raw.publish("bje:{test}:c", b"hello")
    await until(lambda: heard == [b"hello"], "the message")


async def test_an_asked_for_catch_up_runs_in_the_feeds_turn(
    redis_server: RedisServer, links: Links
) -> None:
    """catch_up() reads again; a message published during that read comes after it."""
    link = links(fleet_config(redis_server), "a")
    order: list[str] = []
    reading = asyncio.Event()
    release = asyncio.Event()

    async def ready() -> None:
        order.append("read")
        if len(order) == 2:  # the asked-for one: a message is published while it runs
            reading.set()
            await release.wait()
            order.append("read done")

    link.listen("bje:{test}:c", lambda data: order.append(data.decode()), ready)
    await link.start()
    await until(link.feed.synced.is_set, "the first catch-up")
    link.feed.catch_up()
    await asyncio.wait_for(reading.wait(), 5)
    with redis_server.client() as raw:
        raw.publish("bje:{test}:c", b"during")
    await asyncio.sleep(0.05)  # the feed would have handed it over by now, were it reading
    assert order == ["read", "read"]
    release.set()
    await until(lambda: order == ["read", "read", "read done", "during"], "the message after")
