"""Fleet-wide registrations: acknowledged once stored, fed to all, read again after a gap."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from exporter.fleet import Change, Fleet, FleetUnavailable, Registration
from tests.fleet.conftest import Fleets, RedisServer, fleet_config, fleet_logs
from tests.harness import until

LABELS = (("team", "payments"), ("tier", "1"))


async def members(redis_server: RedisServer, fleets: Fleets, count: int) -> list[Fleet]:
    """Members of one fleet, each with its own connections, subscribed and caught up."""
    config = fleet_config(redis_server)
    made = [fleets(config, f"m{n}") for n in range(count)]
    for member in made:
        await member.start()
    for member in made:
        await until(member.link.feed.synced.is_set, "the feed caught up")
    return made


async def test_a_registration_on_one_replica_reaches_the_others_in_a_round_trip(
    redis_server: RedisServer, fleets: Fleets, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PUT to one member: stored, counted, and in the other's copy well within a second."""
    here, there = await members(redis_server, fleets, 2)
    changes: list[Change] = []
    there.registrations.subscribe(changes.append)
    started = time.perf_counter()
    assert await here.registrations.add("fs", "job-1", LABELS) is True
    await until(lambda: bool(changes), "the change fed", within=1.0)
    latency = time.perf_counter() - started
    (registration,) = changes[0].upserted
    assert (registration.source, registration.job_id, registration.labels) == (
        "fs",
        "job-1",
        LABELS,
    )
    assert abs(registration.registered_at - time.time()) < 5
    assert changes == [Change(upserted=(registration,))]
    assert there.registrations.known() == [registration]
    assert await there.registrations.all() == [registration]
    assert await there.registrations.count("fs") == 1
    assert await there.registrations.count("other") == 0
    with capsys.disabled():
        print(f"\nregistration fed to another replica in {latency * 1000:.1f} ms")


async def test_adding_again_is_not_new_and_relabelling_keeps_the_first_time(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """The same PUT twice changes nothing; new labels are fed, registered_at stays."""
    here, there = await members(redis_server, fleets, 2)
    assert await here.registrations.add("fs", "j", LABELS) is True
    await until(lambda: len(there.registrations.known()) == 1, "the first fed")
    (first,) = there.registrations.known()
    changes: list[Change] = []
    there.registrations.subscribe(changes.append)
    assert await there.registrations.add("fs", "j", LABELS) is False
    assert await here.registrations.add("fs", "j", (("team", "risk"),)) is False
    await until(lambda: bool(changes), "the relabelling fed")
    relabelled = Registration("fs", "j", (("team", "risk"),), first.registered_at)
    assert changes == [Change(upserted=(relabelled,))]
    assert await here.registrations.all() == [relabelled]
    assert await here.registrations.count("fs") == 1


async def test_removing_is_fed_and_counted(redis_server: RedisServer, fleets: Fleets) -> None:
    """Removed on one member: gone from the other's copy and from the count; twice is False."""
    here, there = await members(redis_server, fleets, 2)
    await here.registrations.add("fs", "a")
    await here.registrations.add("fs", "b")
    await here.registrations.add("td", "a")
    await until(lambda: len(there.registrations.known()) == 3, "three fed")
    changes: list[Change] = []
    unsubscribe = there.registrations.subscribe(changes.append)
    assert await there.registrations.remove("fs", "a") is True
    await until(lambda: len(here.registrations.known()) == 2, "the removal fed")
    # Heard of by now: before, this member's copy would still make it a removal (True).
    assert await here.registrations.remove("fs", "a") is False
    assert changes == [Change(removed=(("fs", "a"),))]
    assert [(r.source, r.job_id) for r in await here.registrations.all()] == [
        ("fs", "b"),
        ("td", "a"),
    ]
    assert (await here.registrations.count("fs"), await here.registrations.count("td")) == (1, 1)
    await here.registrations.remove("td", "a")
    await until(lambda: len(there.registrations.known()) == 1, "the second removal fed")
    with redis_server.client() as raw:
        assert raw.hgetall("bje:{test}:jobs:count") == {b"fs": b"1"}
    unsubscribe()
    await here.registrations.remove("fs", "b")
    await until(lambda: not there.registrations.known(), "the last removal fed")
    assert changes == [Change(removed=(("fs", "a"),)), Change(removed=(("td", "a"),))]


async def test_the_bound_per_source_is_fleet_wide_and_atomic(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """``max_jobs`` counts every replica's registrations; many at once cannot pass it."""
    here, there = await members(redis_server, fleets, 2)
    await here.registrations.add("fs", "a", max_jobs=2)
    outcomes = await asyncio.gather(
        *(
            member.registrations.add("fs", f"job-{n}-{name}", max_jobs=2)
            for n in range(10)
            for name, member in (("here", here), ("there", there))
        ),
        return_exceptions=True,
    )
    assert sum(1 for outcome in outcomes if outcome is True) == 1
    full = [outcome for outcome in outcomes if isinstance(outcome, OverflowError)]
    assert len(full) == 19
    assert str(full[0]) == "source 'fs' already has 2 registered jobs"
    assert await there.registrations.count("fs") == 2
    assert await there.registrations.add("fs", "a", max_jobs=2) is False  # known: not new
    assert await there.registrations.add("td", "a", max_jobs=2) is True  # another source


async def test_nothing_is_acknowledged_while_redis_is_away(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """Every call raises FleetUnavailable at once (the API answers 503); the copy stays."""
    (member,) = await members(redis_server, fleets, 1)
    await member.registrations.add("fs", "kept")
    redis_server.kill()
    await until(lambda: not member.up, "the outage noticed")
    started = time.monotonic()
    calls = (
        member.registrations.add("fs", "new"),
        member.registrations.remove("fs", "kept"),
        member.registrations.all(),
        member.registrations.count("fs"),
    )
    for call in calls:
        with pytest.raises(FleetUnavailable):
            await call
    assert time.monotonic() - started < 0.15  # at once: not four 0.2 s call timeouts
    assert [r.job_id for r in member.registrations.known()] == ["kept"]


async def test_a_resubscription_reads_everything_again_and_feeds_the_difference(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """Changes made while a member was not listening arrive as one change once it is back."""
    here, there = await members(redis_server, fleets, 2)
    await here.registrations.add("fs", "gone")
    await here.registrations.add("fs", "stays", LABELS)
    await until(lambda: len(there.registrations.known()) == 2, "both fed")
    changes: list[Change] = []
    there.registrations.subscribe(changes.append)
    value = json.dumps([["team", "new"]])
    with redis_server.client() as raw:
        # Behind the feed's back, as if published while the member was away: a removal
        # leaves its tombstone (scored in ms, as the script does).
        raw.hdel("bje:{test}:jobs", json.dumps(["fs", "gone"]))
        raw.zadd("bje:{test}:jobs:gone", {json.dumps(["fs", "gone"]): 1_700_000_000_000})
        raw.hset("bje:{test}:jobs", json.dumps(["td", "new"]), f"1700000000.5 {value}")
        raw.client_kill_filter(_type="pubsub")  # every subscriber must subscribe again
    await until(lambda: bool(changes), "the difference fed")
    assert changes == [
        Change(
            upserted=(Registration("td", "new", (("team", "new"),), 1700000000.5),),
            removed=(("fs", "gone"),),
        )
    ]
    assert [r.job_id for r in there.registrations.known()] == ["stays", "new"]


async def test_a_member_that_starts_later_hears_of_every_registration(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """Its first catch-up feeds what the fleet registered before it came."""
    (first,) = await members(redis_server, fleets, 1)
    for n in range(3):
        await first.registrations.add("fs", f"j{n}")
    late = fleets(fleet_config(redis_server), "late")
    changes: list[Change] = []
    late.registrations.subscribe(changes.append)
    assert late.registrations.synced is False
    await late.start()
    await until(lambda: bool(changes), "the first catch-up")
    assert [[r.job_id for r in change.upserted] for change in changes] == [["j0", "j1", "j2"]]
    assert late.registrations.synced is True


async def test_registrations_redis_lost_are_written_back_and_removed_ones_are_not(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """Redis emptied (a restart without persistence): a member writes back what it held."""
    here, there = await members(redis_server, fleets, 2)
    await here.registrations.add("fs", "kept", LABELS)
    await here.registrations.add("fs", "removed")
    assert await here.registrations.remove("fs", "removed") is True
    await until(lambda: len(there.registrations.known()) == 1, "both fed")
    changes: list[Change] = []
    there.registrations.subscribe(changes.append)
    with redis_server.client() as raw:
        raw.delete("bje:{test}:jobs", "bje:{test}:jobs:count")  # the tombstone stays
        raw.client_kill_filter(_type="pubsub")
    with redis_server.client() as raw:
        await until(lambda: raw.hlen("bje:{test}:jobs") == 1, "written back")
    assert [(r.job_id, r.labels) for r in await here.registrations.all()] == [("kept", LABELS)]
    assert await here.registrations.count("fs") == 1
    assert changes == []  # nothing removed: the members held what Redis lost
    assert [r.job_id for r in there.registrations.known()] == ["kept"]


async def test_unreadable_registrations_are_skipped_and_logged_once(
    redis_server: RedisServer, fleets: Fleets, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries another version or someone else wrote are ignored, with one line."""
    with redis_server.client() as raw:
        raw.hset(
            "bje:{test}:jobs",
            mapping={
                "not json": "1 []",
                json.dumps(["fs", "bad-time"]): "soon []",
                json.dumps(["fs", "bad-labels"]): '1 [["a"]]',
                json.dumps(["fs", "ok"]): "1 []",
            },
        )
    (member,) = await members(redis_server, fleets, 1)
    with redis_server.client() as raw:
        for junk in ("?x", "-not json", "+not json\n1 []"):
            raw.publish("bje:{test}:jobs", junk)
    await member.registrations.add("fs", "after")
    await until(lambda: len(member.registrations.known()) == 2, "the good ones")
    await asyncio.sleep(0.05)
    assert [r.job_id for r in member.registrations.known()] == ["after", "ok"]
    assert len(fleet_logs(caplog, "cannot be read")) == 1


async def test_write_backs_count_afresh_when_the_hash_alone_was_lost(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """The counts of a hash that is gone (evicted alone) are stale: restored ones count once."""
    here, _ = await members(redis_server, fleets, 2)
    await here.registrations.add("fs", "a")
    await here.registrations.add("fs", "b")
    with redis_server.client() as raw:
        raw.delete("bje:{test}:jobs")  # the counts hash stays, saying 2
        raw.client_kill_filter(_type="pubsub")
        await until(lambda: raw.hlen("bje:{test}:jobs") == 2, "written back")
    assert await here.registrations.count("fs") == 2


async def test_a_removal_redis_had_lost_still_reaches_every_member(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """Lost from Redis without a reconnect: the DELETE still tells the members, and is true."""
    here, there = await members(redis_server, fleets, 2)
    await there.registrations.add("fs", "k")
    await until(lambda: len(here.registrations.known()) == 1, "fed")
    with redis_server.client() as raw:
        raw.hdel("bje:{test}:jobs", json.dumps(["fs", "k"]))  # no reconnect: nobody reads again
    assert await there.registrations.remove("fs", "k") is True  # its owner was polling it
    await until(lambda: here.registrations.known() == [], "the removal fed")


async def test_a_registration_after_the_hash_alone_was_lost_counts_afresh(
    redis_server: RedisServer, fleets: Fleets
) -> None:
    """No reconnect, so no write-back: the next new registration starts the counts again."""
    (member,) = await members(redis_server, fleets, 1)
    await member.registrations.add("fs", "a")
    await member.registrations.add("fs", "b")
    with redis_server.client() as raw:
        raw.delete("bje:{test}:jobs")  # the counts hash stays, saying 2
    assert await member.registrations.add("fs", "c", max_jobs=2) is True  # not "full"
    assert await member.registrations.count("fs") == 1
