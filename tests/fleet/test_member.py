"""A member of the fleet: one link, its windows and registrations, a limiter per account."""

from __future__ import annotations

import asyncio
import time

from tests.fleet.conftest import Fleets, RedisServer, fleet_config
from tests.harness import until


async def test_budgets_follow_the_config_and_lease_only_while_running(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """New accounts get a limiter (started once the member is), changed ones a new rate."""
    member = fleets(fleet_config(redis_server, size=2), "a")
    limiters = member.budgets({"acct": 10.0, "other": 4.0})
    assert sorted(limiters) == ["acct", "other"]
    assert (member.up, member.live_members()) == (False, 2)
    await member.start()
    assert await member.link.ready(2.0)
    await until(lambda: member.live_members() == 1, "counted alone")  # after member_ttl
    acct = limiters["acct"]
    acct.ready_in(time.monotonic())
    await until(lambda: acct.ready_in(time.monotonic()) == 0.0, "a lease")
    late = member.budgets({"acct": 6.0, "late": 1.0})
    assert sorted(late) == ["acct", "late"]
    assert late["acct"] is acct
    assert acct.rate == 6.0
    late["late"].ready_in(time.monotonic())
    with redis_server.client() as raw:
        await until(lambda: raw.exists("bje:{test}:bucket:late") == 1, "the new one leasing")
    await member.close()
    await member.close()
    assert not member.up
    await asyncio.sleep(0)
