"""The outbox: writes no caller waits for, sent in order once Redis is up, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from exporter.config.model import FleetConfig, Secret
from exporter.fleet import Timings
from tests.fleet.conftest import Links, RedisServer, fleet_config, fleet_logs
from tests.harness import until


async def test_posted_writes_wait_for_redis_and_keep_their_order(
    redis_server: RedisServer, links: Links
) -> None:
    """Writes posted while Redis is away are sent, in order, once it is back."""
    link = links(fleet_config(redis_server), "a")
    await link.start()
    assert await link.ready(2.0)
    redis_server.kill()
    await until(lambda: not link.up, "the outage noticed")
    for n in range(3):

        async def push(client: Redis, n: int = n) -> None:
            await client.rpush("bje:{test}:order", str(n))

        link.post(push, "push")
    redis_server.start()
    await until(lambda: len(link.writes) == 0, "the writes sent")
    with redis_server.client() as raw:
        assert raw.lrange("bje:{test}:order", 0, -1) == [b"0", b"1", b"2"]


async def test_a_full_outbox_drops_its_oldest_writes_logged_once(
    tmp_path: Path, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """The queue is bounded: past its size the oldest write goes, with one log line."""
    config = FleetConfig(Secret(inline=f"unix://{tmp_path}/none.sock"), name="n")
    link = links(config, "a", timings=Timings(queue=2))

    async def nothing(client: Redis) -> None:
        return None

    for _ in range(5):
        link.post(nothing, "nothing")
    assert (len(link.writes), link.writes.dropped) == (2, 3)
    assert fleet_logs(caplog, "queue full") == [
        "fleet n: write queue full; dropping the oldest writes"
    ]


async def test_a_write_redis_refuses_is_dropped_and_the_next_goes(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """Sending a refused write again would not help: it goes, logged once, the rest follow."""
    with redis_server.client() as raw:
        raw.set("bje:{test}:text", "text")
    link = links(fleet_config(redis_server), "a")

    async def refused(client: Redis) -> None:
        await client.incr("bje:{test}:text")

    async def fine(client: Redis) -> None:
        await client.set("bje:{test}:after", "1")

    link.post(refused, "counter")
    link.post(fine, "flag")
    await link.start()
    await until(lambda: len(link.writes) == 0, "both handled")
    with redis_server.client() as raw:
        assert raw.get("bje:{test}:after") == b"1"
    assert len(fleet_logs(caplog, "refused the counter")) == 1
