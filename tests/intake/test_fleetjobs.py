"""A sharded fleet's registrations: stored in Redis, watched by the shard each falls to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from exporter.fleet import Fleet
from exporter.intake.fleetjobs import FleetJobs, RegistryUnavailable
from exporter.intake.registration import JobsApiServer
from exporter.jobs.keys import Origin
from exporter.jobs.shard import Shard
from exporter.state.storage import SqliteStore
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


SETTLED = "exporter.fleet.registrations"  # the logger of what a full read settled


def settled_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """The registrations' log lines: level and message."""
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == SETTLED]


async def owner_stopped(make_harness: MakeHarness, member: Fleet, db: str) -> None:
    """A first run of the owner: OURS[0] and OURS[1] registered via the fleet, in its state file."""
    await started(member)
    h = await make_harness()
    config = source_yaml(h.sim, FS, "fs", [OURS[2]])
    exporter = await h.start(config, store=SqliteStore(db), shard=SHARD)
    jobs = FleetJobs(exporter.watchlist, member.registrations, max_jobs_per_source=100)
    jobs.start()
    assert await jobs.add("fs", OURS[0], ()) is True
    assert await jobs.add("fs", OURS[1], ()) is True
    assert watched(h) == set(OURS)
    jobs.close()
    await exporter.close()
    await member.close()


async def owner_restarted(make_harness: MakeHarness, db: str) -> Harness:
    """The owner again on the same state file (and a watch-dir job of its own)."""
    h = await make_harness()
    config = source_yaml(h.sim, FS, "fs", [OURS[2]])
    exporter = await h.start(config, store=SqliteStore(db), shard=SHARD)
    assert exporter.watchlist.watch("fs", "d0", (), origin=Origin.DIR) is True
    assert watched(h) == {*OURS, "d0"}
    return h


async def test_a_restart_drops_registrations_removed_while_the_owner_was_down(
    make_harness: MakeHarness,
    fleets: Fleets,  # noqa: F811 - the fixture
    redis_server: RedisServer,  # noqa: F811 - the fixture
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Restored ones removed meanwhile (a tombstone) go at a full read; config and dir jobs stay."""
    caplog.set_level(logging.INFO, SETTLED)
    config = fleet_config(redis_server)
    other = fleets(config, "other")
    await started(other)
    db = str(tmp_path / "state.db")
    await owner_stopped(make_harness, fleets(config, "before"), db)
    assert await other.registrations.remove("fs", OURS[0]) is True  # a DELETE to another replica
    h = await owner_restarted(make_harness, db)
    mine = fleets(config, "mine")
    await started(mine)
    await until(lambda: mine.registrations.synced)  # read in full before FleetJobs subscribes
    assert h.exporter is not None
    jobs = FleetJobs(h.exporter.watchlist, mine.registrations, max_jobs_per_source=100)
    jobs.start()
    await until(lambda: watched(h) == {OURS[1], OURS[2], "d0"})
    assert [r.job_id for r in await mine.registrations.all()] == [OURS[1]]
    message = (
        "fleet test: of 1 registrations held here that Redis did not list, 1 were removed "
        "meanwhile and 0 written back (Redis had lost them)"
    )
    assert settled_logs(caplog) == [("INFO", message)]


async def test_an_owner_restarted_during_an_outage_keeps_its_registrations_until_redis_answers(
    make_harness: MakeHarness,
    fleets: Fleets,  # noqa: F811 - the fixture
    redis_server: RedisServer,  # noqa: F811 - the fixture
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis down: the state file's registrations are kept; back empty: written back to it."""
    caplog.set_level(logging.INFO, SETTLED)
    config = fleet_config(redis_server)
    db = str(tmp_path / "state.db")
    await owner_stopped(make_harness, fleets(config, "before"), db)
    redis_server.kill()  # no persistence: it comes back empty
    h = await owner_restarted(make_harness, db)
    assert h.exporter is not None
    mine = fleets(config, "mine")
    await mine.start()
    jobs = FleetJobs(h.exporter.watchlist, mine.registrations, max_jobs_per_source=100)
    jobs.start()
    assert await mine.link.ready(0.3) is False  # several connection attempts failed meanwhile
    with pytest.raises(RegistryUnavailable):
        await jobs.remove("fs", OURS[0])
    assert mine.registrations.synced is False
    assert watched(h) == {*OURS, "d0"}
    assert settled_logs(caplog) == []
    redis_server.start()
    await until(lambda: mine.registrations.synced)
    assert watched(h) == {*OURS, "d0"}
    assert [r.job_id for r in await mine.registrations.all()] == [OURS[0], OURS[1]]
    message = (
        "fleet test: of 2 registrations held here that Redis did not list, 0 were removed "
        "meanwhile and 2 written back (Redis had lost them)"
    )
    assert settled_logs(caplog) == [("INFO", message)]
    assert await jobs.add("fs", OURS[0], ()) is False  # known again, fleet-wide


async def test_a_delete_of_a_registration_only_this_replica_still_watches_is_answered_204(
    make_harness: MakeHarness,
    fleets: Fleets,  # noqa: F811 - the fixture
    redis_server: RedisServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """Restored here, unknown to Redis (not read in full yet): removed here, not a 404."""
    config = fleet_config(redis_server)
    db = str(tmp_path / "state.db")
    await owner_stopped(make_harness, fleets(config, "before"), db)
    with redis_server.client() as raw:
        raw.flushall()  # lost with Redis' data: the owner would write them back once started
    h = await owner_restarted(make_harness, db)
    assert h.exporter is not None
    mine = fleets(config, "mine")
    await started(mine)
    jobs = FleetJobs(h.exporter.watchlist, mine.registrations, max_jobs_per_source=100)
    api = JobsApiServer(
        h.exporter.watchlist,
        host="127.0.0.1",
        port=0,
        monotonic=h.clock.monotonic,
        shared=jobs,
    )
    statuses: list[int] = []
    async with api, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{api.port}/api/v1/sources/fs/jobs"
        for job in (OURS[0], OURS[0], OURS[2], "d0", THEIRS[0]):
            async with http.delete(f"{base}/{job}") as resp:
                statuses.append(resp.status)
    assert statuses == [204, 404, 409, 409, 404]
    assert watched(h) == {OURS[1], OURS[2], "d0"}
    assert await mine.registrations.all() == []
