"""Who is in the fleet: this member's heartbeat, and how many are alive as last counted."""

from __future__ import annotations

from redis.asyncio import Redis

from exporter.clock import Clock
from exporter.fleet.wire import Script

# Refresh this member's entry and count the live ones, in Redis' own time (no clock skew).
_HEARTBEAT = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
""")


class Members:
    """The sorted set of heartbeats (member → when it lapses) and the count this member uses.

    Before Redis has counted, ``assumed`` members are (``fleet.size``, else
    ``--total-shards``).  A smaller count is taken only once it has held for
    ``ttl``: after a restart of Redis, or of this member, the others have not
    all beaten yet, and counting too few would hand each too large a share.
    """

    def __init__(self, *, key: str, member: str, assumed: int, ttl: float, clock: Clock) -> None:
        self._key = key
        self.member = member
        self._count = max(1, assumed)
        self._ttl = ttl
        self._clock = clock
        self._fewer_since: float | None = None  # when the counts began to be below the one used

    def count(self) -> int:
        """How many members share each budget (a plain read)."""
        return self._count

    async def beat(self, client: Redis) -> None:
        """Refresh this member's heartbeat and take the count that comes back."""
        ttl = round(self._ttl * 1000)
        counted = await _HEARTBEAT.run(client, [self._key], [self.member, ttl])
        if isinstance(counted, int):
            self._counted(max(1, counted))

    async def leave(self, client: Redis) -> None:
        """Leave at once rather than when the heartbeat lapses (a clean shutdown)."""
        await client.zrem(self._key, self.member)

    def _counted(self, members: int) -> None:
        now = self._clock.monotonic()
        if members >= self._count:
            self._count, self._fewer_since = members, None
        elif self._fewer_since is None:
            self._fewer_since = now
        elif now - self._fewer_since >= self._ttl:
            self._count, self._fewer_since = members, None
