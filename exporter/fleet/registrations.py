"""Registered jobs, fleet-wide: stored in Redis, acknowledged only once Redis has them.

A ``PUT`` to any replica lands here (:meth:`Registrations.add`) and the
owning shard hears of it through the change feed, within a round trip;
each (re)subscription reads everything again and passes on the difference,
so a change made while this member was not listening is not missed.  A write
either is in Redis when the call returns or raises :class:`FleetUnavailable`
(the API answers 503 and the client tries again: every write is
idempotent).  Each script writes and publishes in one step, so the feed's
order is the store's.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from exporter.clock import Clock
from exporter.fleet.link import Link
from exporter.fleet.wire import Arg, Script, number, text

LOG = logging.getLogger(__name__)
Labels = tuple[tuple[str, str], ...]  # a job's own labels, as exporter.jobs.keys.Labels
JobKey = tuple[str, str]  # (source, job_id)
PAGE = 1000  # registrations read per round trip (HSCAN's COUNT)
_Page = Awaitable[tuple[int, dict[bytes | str, bytes | str]]]

# KEYS: the registrations, the count per source. ARGV: field, registered_at, labels, source,
# the most a source may have (-1: no bound), channel.  1: new, 0: known (labels updated), -1: full.
_ADD = Script(r"""
local old = redis.call('HGET', KEYS[1], ARGV[1])
local value
if old then
  local cut = string.find(old, ' ', 1, true)
  if cut == nil then
    value = ARGV[2] .. ' ' .. ARGV[3]  -- unreadable: written afresh
  elseif string.sub(old, cut + 1) == ARGV[3] then
    return 0
  else
    value = string.sub(old, 1, cut) .. ARGV[3]
  end
else
  local most = tonumber(ARGV[5])
  if most >= 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0') >= most then
    return -1
  end
  value = ARGV[2] .. ' ' .. ARGV[3]
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
end
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('PUBLISH', ARGV[6], '+' .. ARGV[1] .. '\n' .. value)
if old then return 0 end
return 1
""")
# KEYS as above. ARGV: field, source, channel.  1: removed, 0: was not there.
_REMOVE = Script("""
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('PUBLISH', ARGV[3], '-' .. ARGV[1])
return 1
""")


@dataclass(frozen=True, slots=True)
class Registration:
    """A job registered through the API of some replica; ``registered_at`` in wall seconds."""

    source: str
    job_id: str
    labels: Labels
    registered_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """What changed: registrations new or relabelled, and the keys of those removed.

    ``complete`` when it follows a full read of Redis: :meth:`Registrations.known`
    is then all the fleet has, so a job it lacks is no registration of the fleet's
    (even one this member never heard of, such as one a restart brought back).
    """

    upserted: tuple[Registration, ...] = ()
    removed: tuple[JobKey, ...] = ()
    complete: bool = False


OnChange = Callable[[Change], None]


class Registrations:
    """The fleet's registered jobs in Redis, and this member's copy of them kept by the feed."""

    def __init__(self, link: Link, *, clock: Clock) -> None:
        self._link = link
        self._clock = clock
        self._key = link.key("jobs")
        self._counts = link.key("jobs", "count")
        self._channel = link.key("jobs")
        self._known: dict[JobKey, Registration] = {}
        self._subscribers: list[OnChange] = []
        self._bad_logged = False
        self._synced = False
        link.listen(self._channel, self._message, self._resync)

    def subscribe(self, on_change: OnChange) -> Callable[[], None]:
        """Call ``on_change`` for every change from now on (it must not raise); an unsubscribe."""
        self._subscribers.append(on_change)
        return lambda: self._subscribers.remove(on_change)

    @property
    def synced(self) -> bool:
        """Whether Redis was read in full at least once (until then, :meth:`known` is partial)."""
        return self._synced

    def known(self) -> list[Registration]:
        """Every registration as this member last heard (no I/O; stale while Redis is away)."""
        return sorted(self._known.values(), key=lambda r: (r.source, r.job_id))

    async def add(
        self, source: str, job_id: str, labels: Labels = (), *, max_jobs: int | None = None
    ) -> bool:
        """Register a job (or relabel it); whether it is new.  Raises ``FleetUnavailable``.

        With ``max_jobs``, a new job beyond that many of its source's raises
        :class:`OverflowError` (counted fleet-wide, atomically).
        """
        field, now = _field(source, job_id), self._clock.time()
        most = -1 if max_jobs is None else max_jobs
        args: list[Arg] = [field, repr(now), _labels(labels), source, most, self._channel]

        async def add(client: Redis) -> float:
            return number(await _ADD.run(client, [self._key, self._counts], args))

        outcome = await self._link.call(add, "registration")
        if outcome < 0:
            raise OverflowError(f"source {source!r} already has {max_jobs} registered jobs")
        known = self._known.get((source, job_id))
        since = now if known is None else known.registered_at
        # Applied here at once, so this replica's next read shows it; the feed's copy is a no-op.
        self._apply(Registration(source, job_id, tuple(labels), since))
        return outcome > 0

    async def remove(self, source: str, job_id: str) -> bool:
        """Unregister a job; whether it was registered.  Raises ``FleetUnavailable``."""
        args = [_field(source, job_id), source, self._channel]

        async def remove(client: Redis) -> float:
            return number(await _REMOVE.run(client, [self._key, self._counts], args))

        removed = await self._link.call(remove, "unregistration") > 0
        self._drop((source, job_id))
        return removed

    async def count(self, source: str) -> int:
        """How many jobs of ``source`` the fleet has registered.  Raises ``FleetUnavailable``."""
        counted = await self._link.call(lambda r: r.hget(self._counts, source), "count")
        return 0 if counted is None else int(number(counted))

    async def all(self) -> list[Registration]:
        """Every registration, read from Redis a page at a time.  Raises ``FleetUnavailable``."""
        found: dict[JobKey, Registration] = {}
        cursor = 0
        while True:
            cursor, page = await self._link.call(self._page(cursor), "registrations read")
            for field, value in page.items():
                registration = self._parse(text(field), text(value))
                if registration is not None:
                    found[registration.source, registration.job_id] = registration
            if cursor == 0:
                return sorted(found.values(), key=lambda r: (r.source, r.job_id))

    def _page(self, cursor: int) -> Callable[[Redis], _Page]:
        async def page(client: Redis) -> tuple[int, dict[bytes | str, bytes | str]]:
            after, page = await client.hscan(self._key, cursor, count=PAGE)
            if not isinstance(page, dict):  # a list only when asked for fields without values
                raise TypeError("HSCAN answered without values")
            return after, page

        return page

    async def _resync(self) -> None:
        """Everything again after a (re)subscription: the difference goes to the subscribers."""
        now = {(r.source, r.job_id): r for r in await self.all()}
        upserted = tuple(r for key, r in now.items() if self._known.get(key) != r)
        removed = tuple(key for key in self._known if key not in now)
        self._known = now
        self._synced = True
        self._tell(Change(upserted, removed, complete=True))  # told even if nothing changed

    def _message(self, data: bytes) -> None:
        message = data.decode("utf-8", "replace")
        if message.startswith("-"):
            key = _key(message[1:])
            if key is not None:
                self._drop(key)
                return
        elif message.startswith("+"):
            field, _, value = message[1:].partition("\n")
            registration = self._parse(field, value)
            if registration is not None:
                self._apply(registration)
            return
        self._bad(message)

    def _apply(self, registration: Registration) -> None:
        key = (registration.source, registration.job_id)
        if self._known.get(key) != registration:
            self._known[key] = registration
            self._tell(Change(upserted=(registration,)))

    def _drop(self, key: JobKey) -> None:
        if self._known.pop(key, None) is not None:
            self._tell(Change(removed=(key,)))

    def _tell(self, change: Change) -> None:
        if change.upserted or change.removed or change.complete:
            for subscriber in list(self._subscribers):
                subscriber(change)

    def _parse(self, field: str, value: str) -> Registration | None:
        """A stored registration (``REGISTERED_AT LABELS``), or ``None`` (logged once)."""
        key, (since, _, labels) = _key(field), value.partition(" ")
        parsed = _parse_labels(labels)
        try:
            registered_at = float(since)
        except ValueError:
            registered_at = math.nan
        if key is None or parsed is None or not math.isfinite(registered_at):
            self._bad(value)
            return None
        return Registration(key[0], key[1], parsed, registered_at)

    def _bad(self, what: str) -> None:
        if not self._bad_logged:  # another version of the exporter, or someone else's key
            self._bad_logged = True
            name = self._link.name
            LOG.warning(
                "fleet %s: ignoring a registration that cannot be read: %r", name, what[:200]
            )


def _field(source: str, job_id: str) -> str:
    """A registration's field in the hash: JSON, so no source or ID can be mistaken for another."""
    return json.dumps([source, job_id], ensure_ascii=False)


def _key(field: str) -> JobKey | None:
    """A field back into its (source, job_id); ``None`` if it is anything else."""
    try:
        key = json.loads(field)
    except ValueError:
        return None
    if isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key):
        return (key[0], key[1])
    return None


def _parse_labels(text: str) -> Labels | None:
    """JSON ``[[name, value], ...]`` back into labels; ``None`` if it is anything else."""
    try:
        pairs = json.loads(text)
    except ValueError:
        return None
    if not isinstance(pairs, list):
        return None
    labels: list[tuple[str, str]] = []
    for pair in pairs:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
        ):
            return None
        labels.append((pair[0], pair[1]))
    return tuple(labels)


def _labels(labels: Labels) -> str:
    """Labels as one canonical string: the script compares them as text."""
    return json.dumps([list(pair) for pair in labels], ensure_ascii=False, separators=(",", ":"))
