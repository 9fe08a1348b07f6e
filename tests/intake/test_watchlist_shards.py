"""Sharding in the watchlist: each exporter watches the config and registered jobs of its shard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from exporter.intake.watchlist import Misdirected
from exporter.jobs.keys import Origin
from exporter.jobs.shard import Shard
from tests.harness import FS, Harness, source_yaml
from tests.intake.test_watchlist import SavedStore, record

MakeHarness = Callable[..., Awaitable[Harness]]
IDS = [f"job-{n}" for n in range(40)]


def watched(h: Harness) -> set[str]:
    """The IDs the exporter watches."""
    assert h.exporter is not None
    return {str(j["id"]) for j in h.exporter.watchlist.jobs()}


async def test_two_shards_split_the_config_jobs_between_them(make_harness: MakeHarness) -> None:
    """Shard 0 and shard 1 of 2 each watch the config jobs that fall to them, together all."""
    seen: list[set[str]] = []
    for index in (0, 1):
        h = await make_harness()
        for job_id in IDS:
            h.sim.add_job(FS, job_id, total=100, rate=1)
        await h.start(source_yaml(h.sim, FS, "fs", IDS), shard=Shard(index, 2))
        mine = watched(h)
        assert mine == {j for j in IDS if Shard(index, 2).owns(("fs", j))}
        assert h.exporter is not None
        assert {j["shard"] for j in h.exporter.watchlist.jobs()} == {index}
        seen.append(mine)
    assert seen[0] | seen[1] == set(IDS)
    assert seen[0] & seen[1] == set()
    assert 10 < len(seen[0]) < 30


async def test_a_registration_for_another_shard_is_misdirected(make_harness: MakeHarness) -> None:
    """Another shard's registration raises Misdirected naming its owner; dir jobs are unsharded."""
    h = await make_harness()
    exporter = await h.start(source_yaml(h.sim, FS, "fs", []), shard=Shard(0, 2))
    other = next(j for j in IDS if not Shard(0, 2).owns(("fs", j)))
    mine = next(j for j in IDS if Shard(0, 2).owns(("fs", j)))
    with pytest.raises(Misdirected) as exc:
        exporter.watchlist.watch("fs", other, ())
    assert exc.value.owner == 1
    assert str(exc.value) == "job falls to shard 1 of 2, not this one (0): register it there"
    assert exporter.watchlist.watch("fs", mine, ()) is True
    assert exporter.watchlist.watch("fs", other, (), origin=Origin.DIR) is True


async def test_restored_jobs_of_other_shards_are_stale(make_harness: MakeHarness) -> None:
    """After --total-shards changed, saved config and API jobs of other shards are dropped."""
    h = await make_harness()
    owns = Shard(0, 2).owns
    ours = next(j for j in IDS if owns(("fs", j)))
    theirs = [j for j in IDS if not owns(("fs", j))][:2]
    store = SavedStore(
        [
            record("fs", ours, FS, "api"),
            record("fs", theirs[0], FS, "api"),
            record("fs", theirs[1], FS, "config"),
        ]
    )
    exporter = await h.start(
        source_yaml(h.sim, FS, "fs", [theirs[1]]), store=store, shard=Shard(0, 2)
    )
    assert {str(j["id"]) for j in exporter.watchlist.jobs()} == {ours}
    assert sorted(store.deleted) == sorted(("fs", j) for j in theirs)
