"""The fleet-wide budget: each member's share, leased tokens, the smallest budget wins."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from exporter.clock import FakeClock, SystemClock
from exporter.config.model import FleetConfig, Secret
from exporter.fleet import Limiter, Link
from exporter.fleet.limiter import LEASE_TTL
from tests.fleet.conftest import Links, RedisServer, fleet_config, fleet_logs
from tests.harness import until

ACCOUNT = "acct"


async def spend(limiter: Limiter, until_monotonic: float) -> list[float]:
    """Ask for requests as fast as they are given until then: the monotonic time of each."""
    granted: list[float] = []
    while (now := time.monotonic()) < until_monotonic:
        wait = limiter.acquire(now)
        if wait == 0:
            granted.append(now)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(min(wait, 0.02, until_monotonic - now))
    return granted


async def started_members(
    redis_server: RedisServer, links: Links, rates: list[float]
) -> list[Limiter]:
    """Members on one account, each with its own connection, started and counting each other."""
    config = fleet_config(redis_server)
    members = [links(config, f"m{n}") for n in range(len(rates))]
    limiters = [
        Limiter(link, ACCOUNT, rate, clock=SystemClock())
        for link, rate in zip(members, rates, strict=True)
    ]
    for link, limiter in zip(members, limiters, strict=True):
        await link.start()
        limiter.start()
    for link in members:
        assert await link.ready(2.0)
    await until(lambda: all(link.live_members() == len(rates) for link in members), "all counted")
    return limiters


async def test_three_members_hold_the_accounts_budget_together(
    redis_server: RedisServer, links: Links, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three members of one bucket of 30/s, each as greedy as it can be, take 90 ± 10 % in 3 s."""
    limiters = await started_members(redis_server, links, [30.0, 30.0, 30.0])
    end = time.monotonic() + 3.0
    spent = await asyncio.gather(*(spend(limiter, end) for limiter in limiters))
    total = sum(len(times) for times in spent)
    with capsys.disabled():
        print(f"\nthree members, 30/s, 3 s: {total} requests ({[len(t) for t in spent]})")
    assert 81 <= total <= 99
    assert all(len(times) >= 15 for times in spent)  # nobody is starved
    assert [limiter.rate for limiter in limiters] == [30.0, 30.0, 30.0]
    assert limiters[0].share == 10.0


async def test_an_outage_falls_back_to_each_share_and_the_return_brings_no_burst(
    redis_server: RedisServer,
    links: Links,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Killed mid-run: 10/s each (30 ÷ 3), logged once each; restarted: 30/s again, no backlog."""
    limiters = await started_members(redis_server, links, [30.0, 30.0, 30.0])
    start = time.monotonic()
    phase = 1.5
    marks = [start + phase, start + 2 * phase, start + 3 * phase]

    async def outage() -> float:
        await asyncio.sleep(marks[0] - time.monotonic())
        redis_server.kill()
        await asyncio.sleep(marks[1] - time.monotonic())
        redis_server.start()
        return time.monotonic()

    spending = [asyncio.create_task(spend(limiter, marks[2])) for limiter in limiters]
    back = await outage()
    spent = await asyncio.gather(*spending)
    times = sorted(t for member in spent for t in member)
    up = sum(1 for t in times if t < marks[0])
    down = sum(1 for t in times if marks[0] <= t < marks[1])
    again = sum(1 for t in times if t >= marks[1])
    first_half_second = sum(1 for t in times if back <= t < back + 0.5)
    with capsys.disabled():
        print(f"\nup {up}, Redis down {down}, back {again}, first 0.5 s back {first_half_second}")
    assert 40 <= up <= 50  # 45 at 30/s
    assert 40 <= down <= 50  # three local shares of 10/s: 45
    assert again <= 50
    # 15 at 30/s, and one or two more each at the window's edges; a backlog would add 15 more.
    assert first_half_second <= 21
    assert len(fleet_logs(caplog, "keeps to this exporter's share")) == 3
    assert fleet_logs(caplog, "keeps to this exporter's share")[0] == (
        "fleet test: account acct keeps to this exporter's share while Redis is away: "
        "10 requests/s (30 ÷ 3 exporters)"
    )


async def test_when_budgets_disagree_the_smallest_wins_with_one_line(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """One says 30/s, the other 10/s: the fleet keeps to 10/s; 30 is back once 10 lapses."""
    big, small = await started_members(redis_server, links, [30.0, 10.0])
    end = time.monotonic() + 2.0
    spent = await asyncio.gather(spend(big, end), spend(small, end))
    assert 16 <= sum(len(t) for t in spent) <= 26  # 20 at 10/s
    assert (big.rate, small.rate) == (10.0, 10.0)
    assert fleet_logs(caplog, "budget of") == [
        "fleet test: account acct has a budget of 10 requests/s across the fleet, less than "
        "this exporter's 30: another exporter's config says so, and the smallest wins"
    ]
    small.stop()
    with redis_server.client() as raw:
        raw.hset("bje:{test}:bucket:acct", "rate_at", "0")  # nobody asked with 10/s for ages
    deadline = time.monotonic() + 2.0
    while big.rate != 30.0 and time.monotonic() < deadline:
        await spend(big, time.monotonic() + 0.1)  # its next lease finds 10/s lapsed
    assert big.rate == 30.0


async def test_leased_tokens_not_spent_in_time_are_given_up(
    redis_server: RedisServer, links: Links
) -> None:
    """A lease is for now: spent a second or more later, it would be a burst."""
    (limiter,) = await started_members(redis_server, links, [30.0])
    now = time.monotonic()
    limiter.ready_in(now)  # asks for a lease
    await until(lambda: limiter.ready_in(time.monotonic()) == 0.0, "a lease")
    assert limiter.ready_in(time.monotonic() + LEASE_TTL + 0.1) > 0.0


async def test_a_refused_lease_is_logged_once_and_leaves_no_tokens(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone else's value under the bucket's key: no tokens, one line, no tight loop."""
    with redis_server.client() as raw:
        raw.set("bje:{test}:bucket:acct", "not a hash")
    (limiter,) = await started_members(redis_server, links, [30.0])
    granted = await spend(limiter, time.monotonic() + 0.3)
    assert granted == []
    (line,) = fleet_logs(caplog, "refused")
    assert line.startswith("fleet test: Redis refused the budget lease: WRONGTYPE")


async def test_while_redis_is_away_the_share_is_spent_locally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Never connected: the budget ÷ fleet.size, a little at a time, logged once."""
    config = FleetConfig(Secret(inline=f"unix://{tmp_path}/none.sock"), name="n", size=3)
    clock = FakeClock()
    limiter = Limiter(Link(config, clock=clock, rng=random.Random(1)), ACCOUNT, 30.0, clock=clock)
    now = clock.monotonic()
    assert limiter.acquire(now) == pytest.approx(0.1)  # 10/s: the first token a tenth away
    clock.advance(0.1)
    assert limiter.acquire(clock.monotonic()) == 0.0
    assert limiter.acquire(clock.monotonic()) == pytest.approx(0.1)
    clock.advance(5.0)  # idle: at most half a second of the share is kept
    now = clock.monotonic()
    assert [limiter.acquire(now) for _ in range(6)] == [0.0] * 5 + [pytest.approx(0.1)]
    assert fleet_logs(caplog, "share") == [
        "fleet n: account acct keeps to this exporter's share while Redis is away: "
        "10 requests/s (30 ÷ 3 exporters)"
    ]


def test_a_budget_is_above_zero(tmp_path: Path) -> None:
    """Zero or less is a mistake; a reload changes the rate in force."""
    config = FleetConfig(Secret(inline=f"unix://{tmp_path}/none.sock"), name="n")
    clock = FakeClock()
    link = Link(config, clock=clock, rng=random.Random(1))
    with pytest.raises(ValueError, match="above zero"):
        Limiter(link, ACCOUNT, 0.0, clock=clock)
    limiter = Limiter(link, ACCOUNT, 5.0, clock=clock)
    limiter.set_rate(7.0)
    assert (limiter.rate, limiter.share) == (7.0, 7.0)
    with pytest.raises(ValueError, match="above zero"):
        limiter.set_rate(-1.0)
