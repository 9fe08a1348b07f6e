"""Registered jobs, fleet-wide: stored in Redis, acknowledged only once Redis has them.

A ``PUT`` to any replica lands here (:meth:`Registrations.add`) and the
owning shard hears of it through the change feed, within a round trip;
each (re)subscription reads everything again and passes on the difference,
so a change made while this member was not listening is not missed.  A write
either is in Redis when the call returns or raises :class:`FleetUnavailable`
(the API answers 503 and the client tries again: every write is
idempotent).  A registration this member holds (heard of, or its own from
its state file) that a full read does not list was either removed meanwhile,
which its tombstone says (:mod:`exporter.fleet.stored`), or lost with Redis'
data: those it writes back, as an acknowledged registration is not lost.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from exporter.clock import Clock
from exporter.fleet.link import Link
from exporter.fleet.stored import (
    ADD,
    GONE_FOR,
    REMOVE,
    RESTORE,
    JobKey,
    Labels,
    decode_field,
    decode_labels,
    encode_field,
    encode_labels,
)
from exporter.fleet.wire import Arg, FleetUnavailable, items, number, text

LOG = logging.getLogger(__name__)
_GONE_MS = round(GONE_FOR * 1000)
PAGE = 1000  # registrations read per round trip (HSCAN's COUNT); written back per script call
_Page = Awaitable[tuple[int, dict[bytes | str, bytes | str]]]
# This member's own registrations (key and labels): a restarted shard's, from its state file.
Own = Callable[[], Iterable[tuple[JobKey, Labels]]]


@dataclass(frozen=True, slots=True)
class Registration:
    """A job registered through the API of some replica; ``registered_at`` in wall seconds."""

    source: str
    job_id: str
    labels: Labels
    registered_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """What changed: registrations new or relabelled, and the keys of those removed."""

    upserted: tuple[Registration, ...] = ()
    removed: tuple[JobKey, ...] = ()


OnChange = Callable[[Change], None]


class Registrations:
    """The fleet's registered jobs in Redis, and this member's copy of them kept by the feed."""

    def __init__(self, link: Link, *, clock: Clock) -> None:
        self._link = link
        self._clock = clock
        self._key = link.key("jobs")
        self._counts = link.key("jobs", "count")
        self._gone = link.key("jobs", "gone")
        self._channel = link.key("jobs")
        self._keys = [self._key, self._counts, self._gone]  # every script's KEYS, in this order
        self._known: dict[JobKey, Registration] = {}
        self._subscribers: list[OnChange] = []
        self._bad_logged = False
        self._synced = False
        self._own: Own | None = None
        link.listen(self._channel, self._message, self._resync)

    def subscribe(self, on_change: OnChange) -> Callable[[], None]:
        """Call ``on_change`` for every change from now on (it must not raise); an unsubscribe."""
        self._subscribers.append(on_change)
        return lambda: self._subscribers.remove(on_change)

    @property
    def synced(self) -> bool:
        """Whether Redis was read in full at least once (until then, :meth:`known` is partial)."""
        return self._synced

    def keep(self, own: Own) -> None:
        """Settle ``own()``, this member's registrations, at each full read; now if read already.

        A restarted shard's come from its state file: Redis may have lost them, or
        they may have been removed while it was away, which no feed tells it.
        """
        self._own = own
        # Even before the first read ends: one under way may have begun without ``own``.
        self._link.feed.catch_up()

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
        field, now = encode_field(source, job_id), self._clock.time()
        most = -1 if max_jobs is None else max_jobs
        args: list[Arg] = [field, repr(now), encode_labels(labels), source, most, self._channel]

        async def add(client: Redis) -> float:
            return number(await ADD.run(client, self._keys, args))

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
        args: list[Arg] = [encode_field(source, job_id), source, self._channel, _GONE_MS]

        async def remove(client: Redis) -> float:
            return number(await REMOVE.run(client, self._keys, args))

        # Before the call: its own message may reach the feed first and drop the copy.
        known = (source, job_id) in self._known  # Redis may have lost it: its owner still polls
        removed = await self._link.call(remove, "unregistration") > 0
        self._drop((source, job_id))
        return removed or known

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
        held = {key: r for key, r in self._known.items() if key not in now}
        if self._own is not None:
            stamp = self._clock.time()
            for key, labels in self._own():
                if key not in now and key not in held:
                    held[key] = Registration(key[0], key[1], labels, stamp)
        try:
            gone = await self._settle(held, now) if held else []
        except FleetUnavailable:  # logged by the link: the read still counts, held ones wait
            now.update(held)
            gone = []
        upserted = tuple(r for key, r in now.items() if self._known.get(key) != r)
        removed = tuple(dict.fromkeys([*(key for key in self._known if key not in now), *gone]))
        self._known = now
        self._synced = True
        self._tell(Change(upserted, removed))

    async def _settle(
        self, held: dict[JobKey, Registration], now: dict[JobKey, Registration]
    ) -> list[JobKey]:
        """Write back the ``held`` registrations Redis lost (into ``now``); those removed."""
        gone: list[JobKey] = []
        back = 0
        pending = list(held.values())
        for start in range(0, len(pending), PAGE):
            page = pending[start : start + PAGE]
            args: list[Arg] = [self._channel]
            for r in page:
                value = f"{r.registered_at!r} {encode_labels(r.labels)}"
                args += [encode_field(r.source, r.job_id), value, r.source]

            async def restore(client: Redis, args: list[Arg] = args) -> list[object]:
                return items(await RESTORE.run(client, self._keys, args))

            answers = await self._link.call(restore, "registrations written back")
            for r, answer in zip(page, answers, strict=True):
                key = (r.source, r.job_id)
                if number(answer) == 0:
                    gone.append(key)
                else:  # written back, or registered again meanwhile (the feed brings its labels)
                    back += number(answer) == 1
                    now[key] = r
        if gone or back:
            LOG.info(
                "fleet %s: of %d registrations held here that Redis did not list, %d were "
                "removed meanwhile and %d written back (Redis had lost them)",
                self._link.name,
                len(held),
                len(gone),
                back,
            )
        return gone

    def _message(self, data: bytes) -> None:
        message = data.decode("utf-8", "replace")
        if message.startswith("-"):
            key = decode_field(message[1:])
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
        if change.upserted or change.removed:
            for subscriber in list(self._subscribers):
                subscriber(change)

    def _parse(self, field: str, value: str) -> Registration | None:
        """A stored registration (``REGISTERED_AT LABELS``), or ``None`` (logged once)."""
        key, (since, _, labels) = decode_field(field), value.partition(" ")
        parsed = decode_labels(labels)
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
