"""A sharded fleet's registrations: stored in Redis, watched by the shard each falls to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from exporter.fleet import Fleet
from exporter.intake.fleetjobs import FleetJobs, RegistryUnavailable
from exporter.jobs.shard import Shard
from tests.fleet.conftest import (  # noqa: F401 - fixtures, used by name
    Fleets,
    RedisServer,
    fleet_config,
    fleets,
    redis_binary,
    redis_server,
    redis_servers,
)
from tests.harness import FS, Harness, source_yaml

MakeHarness = Callable[..., Awaitable[Harness]]
SHARD = Shard(0, 2)
OURS = [f"j{n}" for n in range(60) if SHARD.owns(("fs", f"j{n}"))][:3]
THEIRS = [f"j{n}" for n in range(60) if not SHARD.owns(("fs", f"j{n}"))][:3]


async def started(fleet: Fleet) -> None:
    """Start a member and wait until Redis answered it."""
    await fleet.start()
    assert await fleet.link.ready(5.0) is True


def watched(h: Harness) -> set[str]:
    """The IDs the harness's exporter watches."""
    assert h.exporter is not None
    return {str(j["id"]) for j in h.exporter.watchlist.jobs()}


async def until(check: Callable[[], bool]) -> None:
    """Wait (real time, bounded) for the feed to deliver."""
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the change feed did not deliver within 2 s")


async def test_this_shard_watches_its_share_of_the_fleets_registrations(
    make_harness: MakeHarness,
    fleets: Fleets,  # noqa: F811 - the fixture
    redis_server: RedisServer,  # noqa: F811 - the fixture
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before and after start, via this replica or another: ours watched, theirs listed only."""
    config = fleet_config(redis_server)
    other = fleets(config, "other")
    mine = fleets(config, "mine")
    await started(other)
    await other.registrations.add("fs", OURS[0], (("team", "a"),))
    await other.registrations.add("fs", THEIRS[0])
    await started(mine)
    await until(lambda: len(mine.registrations.known()) == 2)
    h = await make_harness()
    exporter = await h.start(source_yaml(h.sim, FS, "fs", []), shard=SHARD)
    jobs = FleetJobs(exporter.watchlist, mine.registrations, max_jobs_per_source=100)
    jobs.start()
    assert watched(h) == {OURS[0]}
    assert await jobs.add("fs", OURS[1], ()) is True
    assert await jobs.add("fs", THEIRS[1], ()) is True
    assert watched(h) == {OURS[0], OURS[1]}
    await other.registrations.add("fs", OURS[2])  # on another replica
    await until(lambda: OURS[2] in watched(h))
    assert sorted((j["id"], j["shard"]) for j in jobs.others()) == [(THEIRS[0], 1), (THEIRS[1], 1)]
    assert await jobs.remove("fs", OURS[0]) is True
    assert watched(h) == {OURS[1], OURS[2]}
    await other.registrations.add("nope", OURS[0])
    await other.registrations.add("nope", OURS[1])
    await until(lambda: sum(r.source == "nope" for r in mine.registrations.known()) == 2)
    told = [r.getMessage() for r in caplog.records if "unknown source" in r.getMessage()]
    assert told == ["registered jobs of unknown source 'nope' are not watched"]
    jobs.close()
    await other.registrations.add("fs", OURS[0])
    await until(lambda: len(mine.registrations.known()) == 7)
    assert OURS[0] not in watched(h)  # closed: no longer following


async def test_a_registration_redis_cannot_take_is_refused(
    make_harness: MakeHarness,
    fleets: Fleets,  # noqa: F811 - the fixture
    redis_server: RedisServer,  # noqa: F811 - the fixture
) -> None:
    """With Redis gone, adding and removing raise RegistryUnavailable: nothing acknowledged."""
    mine = fleets(fleet_config(redis_server), "mine")
    await started(mine)
    h = await make_harness()
    exporter = await h.start(source_yaml(h.sim, FS, "fs", []), shard=SHARD)
    jobs = FleetJobs(exporter.watchlist, mine.registrations, max_jobs_per_source=1)
    assert await jobs.add("fs", THEIRS[0], ()) is True
    with pytest.raises(OverflowError, match="already has 1 registered jobs"):
        await jobs.add("fs", THEIRS[1], ())
    redis_server.kill()
    with pytest.raises(RegistryUnavailable, match="cannot take registrations now"):
        await jobs.add("fs", OURS[0], ())
    with pytest.raises(RegistryUnavailable):
        await jobs.remove("fs", THEIRS[0])
    assert jobs.has_source("fs") is True
    assert jobs.has_source("nope") is False
