"""Shared windows: told to every member within 250 ms, read by late joiners, never shortened."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from exporter.clock import FakeClock, SystemClock
from exporter.fleet import Link, Windows
from tests.fleet.conftest import FAST, Fleets, Links, RedisServer, fleet_config, fleet_logs
from tests.harness import until

ACCOUNT = "fullstory-prod"


async def test_a_window_reaches_another_member_within_250_ms(
    redis_server: RedisServer, fleets: Fleets, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two members, two connections: each window one closes, the other knows of in < 250 ms."""
    config = fleet_config(redis_server)
    teller, told = fleets(config, "a"), fleets(config, "b")
    for member in (teller, told):
        await member.start()
        assert await member.link.ready(2.0)
    await until(told.link.feed.synced.is_set, "the subscriber ready")
    latencies = []
    for n in range(20):
        until_wall = time.time() + 60 + n
        started = time.perf_counter()
        teller.windows.close(ACCOUNT, until_wall, "retry-after")
        while told.windows.closed_until(ACCOUNT) != until_wall:
            assert time.perf_counter() - started < 1.0, "the window never arrived"
            await asyncio.sleep(0.0005)
        latencies.append(time.perf_counter() - started)
    assert max(latencies) < 0.25
    assert told.windows.reason(ACCOUNT) == "retry-after"
    with capsys.disabled():
        print(f"\nwindow propagation over 20 windows: max {max(latencies) * 1000:.1f} ms")


async def test_a_member_that_starts_later_reads_the_windows_in_force(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """The hash holds what is in force, expiring with its last window; a late joiner reads it."""
    config = fleet_config(redis_server)
    first = fleets(config, "a")
    await first.start()
    assert await first.link.ready(2.0)
    now = time.time()
    first.windows.close("acct-auth", now + 30, "auth")
    first.windows.close(ACCOUNT, now + 60, "retry-after")
    await until(lambda: len(first.link.writes) == 0, "the windows published")
    with redis_server.client() as raw:
        assert raw.hgetall("bje:{test}:windows") == {
            b"acct-auth": f"{now + 30!r} auth".encode(),
            ACCOUNT.encode(): f"{now + 60!r} retry-after".encode(),
        }
        assert 59_000 < raw.pttl("bje:{test}:windows") <= 60_000
    late = fleets(config, "b")
    await late.start()
    await until(late.link.feed.synced.is_set, "the late member's first read")
    assert late.windows.closed_until(ACCOUNT) == now + 60
    assert late.windows.closed_until("acct-auth") == now + 30
    assert late.windows.reason("acct-auth") == "auth"
    assert late.windows.closed_until("another") == 0.0
    assert late.windows.reason("another") is None


async def test_a_window_is_never_shortened(redis_server: RedisServer, fleets: Fleets) -> None:
    """A shorter window (an answer already in flight) leaves the longer one in force."""
    config = fleet_config(redis_server)
    one, two = fleets(config, "a"), fleets(config, "b")
    for member in (one, two):
        await member.start()
        assert await member.link.ready(2.0)
    await until(lambda: one.link.feed.synced.is_set() and two.link.feed.synced.is_set(), "ready")
    now = time.time()
    one.windows.close(ACCOUNT, now + 10, "retry-after")
    await until(lambda: two.windows.closed_until(ACCOUNT) == now + 10, "the window told")
    two.windows.close(ACCOUNT, now + 5, "auth")  # known to be shorter: not even published
    assert len(two.link.writes) == 0
    assert two.windows.closed_until(ACCOUNT) == now + 10
    # Both at once, neither knowing of the other's: Redis keeps the longer.
    one.windows.close("race", now + 20, "retry-after")
    two.windows.close("race", now + 8, "retry-after")
    await until(lambda: two.windows.closed_until("race") == now + 20, "the longer kept")
    with redis_server.client() as raw:
        assert raw.hget("bje:{test}:windows", "race") == f"{now + 20!r} retry-after".encode()


async def test_closing_is_local_at_once_and_reaches_the_fleet_after_an_outage(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """Redis away: the window holds here and is published once Redis is back."""
    config = fleet_config(redis_server)
    one, two = fleets(config, "a"), fleets(config, "b")
    for member in (one, two):
        await member.start()
        assert await member.link.ready(2.0)
    redis_server.kill()
    await until(lambda: not one.up and not two.up, "the outage noticed")
    until_wall = time.time() + 60
    one.windows.close(ACCOUNT, until_wall, "retry-after")
    assert one.windows.closed_until(ACCOUNT) == until_wall
    assert two.windows.closed_until(ACCOUNT) == 0.0
    redis_server.start()
    await until(lambda: two.windows.closed_until(ACCOUNT) == until_wall, "told after the outage")


async def test_a_window_from_the_fleet_is_passed_on_and_own_ones_are_not(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """``on_window`` hears of windows other members opened, once each."""
    config = fleet_config(redis_server)
    heard: list[tuple[str, float, str]] = []
    one, two = fleets(config, "a"), fleets(config, "b", on_window=lambda *w: heard.append(w))
    for member in (one, two):
        await member.start()
        assert await member.link.ready(2.0)
    await until(two.link.feed.synced.is_set, "the subscriber ready")
    until_wall = time.time() + 60
    one.windows.close(ACCOUNT, until_wall, "auth")
    two.windows.close("own", until_wall, "auth")
    await until(lambda: bool(heard), "the window heard")
    await until(lambda: len(one.link.writes) + len(two.link.writes) == 0, "all published")
    await asyncio.sleep(0.05)
    assert heard == [(ACCOUNT, until_wall, "auth")]


async def test_a_window_ends_on_time_and_only_shared_reasons_are_taken(
    redis_server: RedisServer, links: Links
) -> None:
    """On the member's clock the window ends; a 5xx backoff is not the fleet's business."""
    link = links(fleet_config(redis_server), "a")
    clock = FakeClock()
    windows = Windows(link, clock=clock)
    windows.close(ACCOUNT, clock.time() + 30, "retry-after")
    assert windows.closed_until(ACCOUNT) == clock.time() + 30
    clock.advance(30)
    assert windows.closed_until(ACCOUNT) == 0.0
    windows.close("past", clock.time() - 1, "auth")  # already over: nothing to publish
    assert len(link.writes) == 1
    with pytest.raises(ValueError, match="retry-after or auth, not backoff"):
        windows.close(ACCOUNT, clock.time() + 30, "backoff")


async def test_unreadable_windows_are_ignored_and_logged_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage on the channel or in the hash (another version, someone else) changes nothing."""
    link = Link(
        fleet_config(redis_server),
        clock=SystemClock(),
        rng=random.Random(1),
        member="a",
        timings=FAST,
    )
    windows = Windows(link, clock=SystemClock())
    with redis_server.client() as raw:
        raw.hset("bje:{test}:windows", mapping={"x": "soon retry-after", "y": "1 backoff"})
    async with link:
        await until(link.feed.synced.is_set, "the first read")
        with redis_server.client() as raw:
            for junk in (b"not json", json.dumps(["a", "x", "auth"]), json.dumps([1, 2, "auth"])):
                raw.publish("bje:{test}:windows", junk)
            raw.publish("bje:{test}:windows", json.dumps(["ok", time.time() + 60, "auth"]))
        await until(lambda: windows.closed_until("ok") > 0, "the good window")
        assert [windows.closed_until(name) for name in ("x", "y", "a")] == [0.0, 0.0, 0.0]
        windows.close("x", time.time() + 60, "auth")  # over someone else's value
        await until(lambda: len(link.writes) == 0, "the window published")
        with redis_server.client() as raw:
            assert raw.hget("bje:{test}:windows", "x").endswith(b" auth")
    assert fleet_logs(caplog, "cannot be read") == [
        "fleet test: ignoring a window that cannot be read: b'soon retry-after'"
    ]
