"""Which exporter of a sharded fleet watches a job: Jump Consistent Hash of its key.

``--shard=N --total-shards=M`` (kube-state-metrics' names) split the config's
and the registered jobs between M exporters.  A key falls to the bucket that
Jump Consistent Hash (Lamping and Veach, 2014, "A Fast, Minimal Memory,
Consistent Hash Algorithm") gives for the first 8 bytes, big-endian, of
SHA-256 of ``source``, a NUL byte and ``job_id``: going from M to M+1 shards moves only
about 1/(M+1) of the jobs, all of them to the new shard.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from exporter.jobs.keys import JobKey

_MASK = (1 << 64) - 1
_LCG = 2862933555777941757  # the paper's 64-bit linear congruential multiplier
_TRAILING_NUMBER = re.compile(r"-(\d+)$")


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in ``range(buckets)`` of a 64-bit ``key`` (the paper's ``JumpConsistentHash``)."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * _LCG + 1) & _MASK
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def key_hash(key: JobKey) -> int:
    """The 64-bit hash of a job key: SHA-256's first 8 bytes, big-endian."""
    source, job_id = key
    digest = hashlib.sha256(f"{source}\0{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def shard_from_hostname(hostname: str) -> int:
    """The trailing ``-N`` of a host name, as a StatefulSet names its pods (``exporter-2``: 2)."""
    match = _TRAILING_NUMBER.search(hostname)
    if match is None:
        raise ValueError(f"host name {hostname!r} does not end in -N (a StatefulSet pod's name)")
    return int(match[1])


@dataclass(frozen=True, slots=True)
class Shard:
    """An exporter's shard: ``index`` of ``total`` (``Shard()`` is the whole, unsharded)."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1 or not 0 <= self.index < self.total:
            raise ValueError(f"shard {self.index} is not in 0..{self.total - 1}")

    @property
    def sharded(self) -> bool:
        """Whether jobs are split at all."""
        return self.total > 1

    def of(self, key: JobKey) -> int:
        """The shard that watches ``key``."""
        return jump_hash(key_hash(key), self.total) if self.total > 1 else 0

    def owns(self, key: JobKey) -> bool:
        """Whether this exporter watches ``key``."""
        return self.total == 1 or self.of(key) == self.index
