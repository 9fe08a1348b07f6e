"""Heartbeats in a sorted set, the count of live members, and fewer taken only once they hold."""

from __future__ import annotations

from exporter.clock import FakeClock
from exporter.fleet.members import Members
from exporter.fleet.wire import make_client
from tests.fleet.conftest import RedisServer


async def test_each_member_counts_the_live_ones_and_a_smaller_count_waits(
    redis_server: RedisServer,
) -> None:
    """Counts rise at once; one member gone, the other waits a heartbeat TTL to believe it."""
    clock = FakeClock()
    key = "bje:{test}:members"
    a = Members(key=key, member="a", assumed=5, ttl=30.0, clock=clock)
    b = Members(key=key, member="b", assumed=1, ttl=30.0, clock=clock)
    client = make_client(redis_server.url, connect_timeout=1.0, timeout=1.0)
    try:
        assert (a.count(), b.count()) == (5, 1)  # before any heartbeat: what was assumed
        await a.beat(client)
        await b.beat(client)
        assert b.count() == 2
        await a.beat(client)
        assert a.count() == 5  # fewer than assumed: not yet
        clock.advance(29.0)
        await a.beat(client)
        assert a.count() == 5
        clock.advance(1.0)
        await a.beat(client)
        assert a.count() == 2
        await b.leave(client)
        await a.beat(client)
        assert a.count() == 2
        clock.advance(30.0)
        await a.beat(client)
        assert a.count() == 1
        await b.beat(client)
        await a.beat(client)
        assert a.count() == 2  # more: at once
        assert 29_000 < await client.pttl(key) <= 30_000
    finally:
        await client.aclose()
