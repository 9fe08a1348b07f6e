"""Sharding: Jump Consistent Hash of a job's key, few jobs moving when the shard count grows."""

from __future__ import annotations

import pytest

from exporter.jobs.shard import Shard, jump_hash, key_hash, shard_from_hostname


def test_jump_hash_matches_other_implementations_of_the_paper() -> None:
    """Known answers of go-jump and rust jump-consistent-hash: the paper's algorithm exactly."""
    assert jump_hash(1, 1) == 0
    assert jump_hash(42, 57) == 43
    assert jump_hash(0xDEAD10CC, 1) == 0
    assert jump_hash(0xDEAD10CC, 666) == 361
    assert jump_hash(256, 1024) == 520
    assert [jump_hash(k, 60) for k in (0, 1, 2)] == [0, 55, 46]
    with pytest.raises(ValueError, match="at least 1"):
        jump_hash(1, 0)


def test_the_key_hash_is_sha256s_first_eight_bytes_big_endian() -> None:
    """``source NUL job_id`` through SHA-256, as the issue fixes it, so other tools agree."""
    assert key_hash(("fs", "abc")) == 0x582DB1C902FF3119  # sha256(b"fs\0abc")[:8]
    assert key_hash(("f", "sabc")) != key_hash(("fs", "abc"))  # the NUL keeps them apart


def test_growing_the_fleet_moves_few_jobs_and_only_to_the_new_shard() -> None:
    """From 4 to 5 shards about a fifth of 10,000 keys move, every one of them to shard 4."""
    keys = [("fs", f"job-{n}") for n in range(10_000)]
    four, five = Shard(0, 4), Shard(0, 5)
    moved = [k for k in keys if four.of(k) != five.of(k)]
    assert all(five.of(k) == 4 for k in moved)
    assert 1700 < len(moved) < 2300
    counts = [sum(1 for k in keys if five.of(k) == s) for s in range(5)]
    assert min(counts) > 1800


def test_each_key_is_owned_by_exactly_one_shard() -> None:
    """Over three shards every key has one owner; unsharded, this exporter owns all."""
    keys = [("td", f"r{n}") for n in range(300)]
    owners = [[s for s in range(3) if Shard(s, 3).owns(k)] for k in keys]
    assert all(len(o) == 1 for o in owners)
    assert all(Shard().owns(k) for k in keys)
    assert Shard().sharded is False
    assert Shard(1, 3).sharded is True


@pytest.mark.parametrize(("index", "total"), [(3, 3), (-1, 2), (0, 0)])
def test_a_shard_outside_its_total_is_refused(index: int, total: int) -> None:
    """``--shard`` must be below ``--total-shards``, which is at least 1."""
    with pytest.raises(ValueError, match="is not in"):
        Shard(index, total)


def test_the_shard_comes_from_a_statefulset_pods_name() -> None:
    """``batch-job-exporter-12`` is shard 12; a name without ``-N`` is refused."""
    assert shard_from_hostname("batch-job-exporter-12") == 12
    with pytest.raises(ValueError, match="does not end in -N"):
        shard_from_hostname("exporter")
