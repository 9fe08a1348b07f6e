"""An account's request budget across the fleet: each member's share, held by a bucket in Redis.

A poll never waits on Redis: :meth:`Limiter.acquire` is a local decision.
Each member spends at most its fair share, the budget ÷ the live members
(:meth:`Link.live_members`), from a local allowance that refills at that
rate and holds at most :data:`LEASE` seconds of it; that is the pace the
polling policy plans with, and the only limit while Redis is away.  While
Redis is up each request also spends a token leased from one token bucket per
account in Redis, which a Lua script updates atomically in Redis' own time:
it holds the fleet to its budget when the members' counts disagree (one has
just joined, one has just left).  A background task leases up to
:data:`LEASE` seconds of the share per round trip, ahead of need.

The shared bucket holds at most :data:`BURST` seconds of the budget, so it
never hands out a backlog; the allowance does the same for each member, and
it goes on at the same pace across an outage, so Redis coming back brings no
burst.  Leased tokens not spent within :data:`LEASE_TTL` are given up.  A
member with little to poll leaves the rest of its share unused: conservative,
as the account's limit is the vendor's.  Each member sends its own
``max_requests_per_second`` with every lease; the bucket keeps the smallest
one asked with lately, so when configs disagree the smallest wins (logged once).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from exporter.clock import Clock
from exporter.fleet.link import Link
from exporter.fleet.wire import Arg, FleetUnavailable, Script, items, number

LOG = logging.getLogger(__name__)
LEASE = 0.5  # seconds of this member's share asked for per round trip
LEASE_TTL = 1.0  # a leased token unspent this long is dropped: spent late, it would be a burst
BURST = 0.5  # seconds of the fleet's budget the shared bucket holds at most
RATE_LAPSE = 10.0  # a smaller budget no member has asked with for this long gives way
ASK_WAIT = 0.01  # about one round trip: how long a caller waits for a lease being asked for
_BUCKET_TTL_MS = 60_000  # an account nobody polls leaves no key behind
_Ask = Callable[[Redis], Awaitable[tuple[float, float, float]]]

# ARGV: this member's rate, burst seconds, tokens wanted, rate lapse ms, bucket TTL ms.
# Returns the tokens granted, the budget in force and the seconds until one more token.  A new
# bucket starts full: the members' allowances, not the bucket, pace the first second.
_LEASE = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local mine = tonumber(ARGV[1])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'rate', 'rate_at')
local rate, rate_at = tonumber(b[3]), tonumber(b[4])
if rate == nil or rate_at == nil or mine <= rate or now - rate_at > tonumber(ARGV[4]) then
  rate, rate_at = mine, now
end
local burst = math.max(1, rate * tonumber(ARGV[2]))
local tokens, at = tonumber(b[1]), tonumber(b[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local grant = math.max(0, math.min(tonumber(ARGV[3]), tokens))
tokens = tokens - grant
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now, 'rate', rate, 'rate_at', rate_at)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {tostring(grant), tostring(rate), tostring(math.max(0, 1 - tokens) / rate)}
""")


class Limiter:
    """One account's share of the fleet's budget (requests per second), spent without waiting.

    ``acquire`` and ``ready_in`` take the caller's monotonic ``now``, as the
    gate's do; the lease task runs once :meth:`start` is called.
    """

    def __init__(self, link: Link, account: str, rate: float, *, clock: Clock) -> None:
        if not rate > 0:
            raise ValueError("a budget is a rate above zero")
        self._link = link
        self.account = account
        self._own = rate
        self._rate = rate  # in force across the fleet: the smallest any member asks with
        self._clock = clock
        self._key = link.key("bucket", account)
        self._allowance = 0.0  # this member's share, accrued (starts empty: no burst at start)
        self._allowed_at: float | None = None
        self._leased = 0.0
        self._leased_at = -math.inf
        self._away = False  # Redis was away at the last look (logged once per outage)
        self._next_ask = 0.0  # when the lease task asks Redis next (monotonic)
        self._demand = asyncio.Event()
        self._never = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._told_rate: float | None = None

    @property
    def rate(self) -> float:
        """The account's budget in force across the fleet (requests per second)."""
        return self._rate

    @property
    def share(self) -> float:
        """The fair share of one member: the budget ÷ the live members."""
        return self._rate / self._link.live_members()

    def set_rate(self, rate: float) -> None:
        """Take a new budget from this exporter's config (a reload)."""
        if not rate > 0:
            raise ValueError("a budget is a rate above zero")
        self._own = rate
        self._rate = min(self._rate, rate) if self._told_rate is not None else rate

    def start(self) -> None:
        """Start leasing in the background (a task of the link)."""
        if self._task is None:
            self._task = self._link.spawn(self._lease_loop(), f"lease-{self.account}")

    def stop(self) -> None:
        """Stop leasing (the account is gone); the link reaps the task."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def acquire(self, now: float) -> float:
        """0.0 after spending a token for one request now, else the seconds to wait for one."""
        wait = self.ready_in(now)
        if wait > 0:
            return wait
        self._allowance -= 1.0
        if self._link.up:
            self._leased -= 1.0
            if self._leased < self.share * LEASE / 2:
                self._demand.set()  # ahead of need: the next lease comes before this one ends
        return 0.0

    def ready_in(self, now: float) -> float:
        """Seconds until :meth:`acquire` would let a request through; takes nothing."""
        self._catch_up(now)
        wait = 0.0 if self._allowance >= 1.0 else (1.0 - self._allowance) / self.share
        if self._link.up and self._leased < 1.0:
            self._demand.set()
            wait = max(wait, max(self._next_ask - now, 0.0) + ASK_WAIT)
        return wait

    def _catch_up(self, now: float) -> None:
        """Accrue the allowance; drop leases that are too old, or all of them once Redis goes."""
        share = self.share
        since = now if self._allowed_at is None else self._allowed_at
        accrued = min(max(1.0, share * LEASE), self._allowance + max(now - since, 0.0) * share)
        self._allowance = max(self._allowance, accrued)
        self._allowed_at = max(since, now)
        if self._link.up:
            self._away = False
            if now - self._leased_at > LEASE_TTL:
                self._leased = 0.0
            return
        self._leased = 0.0  # when Redis is back, the shared bucket decides afresh
        if not self._away:
            self._away = True
            LOG.warning(
                "fleet %s: account %s keeps to this exporter's share while Redis is away: "
                "%.3g requests/s (%.3g ÷ %d exporters)",
                self._link.name,
                self.account,
                share,
                self._rate,
                self._link.live_members(),
            )

    async def _lease_loop(self) -> None:
        while True:
            await self._demand.wait()
            self._demand.clear()
            await self._link.wait_up()
            self._catch_up(self._clock.monotonic())
            want = max(self.share * LEASE - self._leased, 1.0 - self._leased)
            if want <= 0:
                continue
            try:
                granted, rate, refill = await self._link.call(self._asker(want), "budget lease")
            except FleetUnavailable:
                if self._link.up:  # refused (logged by the link): not again at once
                    await self._pause(LEASE)
                continue
            self._catch_up(self._clock.monotonic())
            self._leased += granted
            self._leased_at = self._clock.monotonic()
            self._agree(rate)
            if granted < want:
                # The bucket ran dry (the members' counts disagree): the others take theirs.
                await self._pause(min(LEASE / 2, max(refill, (want - granted) / self.rate)))

    def _asker(self, want: float) -> _Ask:
        args: list[Arg] = [
            repr(self._own),
            repr(BURST),
            repr(want),
            round(RATE_LAPSE * 1000),
            _BUCKET_TTL_MS,
        ]

        async def ask(client: Redis) -> tuple[float, float, float]:
            reply = items(await _LEASE.run(client, [self._key], args))
            granted, rate, refill = (number(value) for value in reply)
            return granted, rate, refill

        return ask

    async def _pause(self, seconds: float) -> None:
        self._next_ask = self._clock.monotonic() + seconds
        await self._clock.wait(self._never, seconds)
        self._next_ask = 0.0

    def _agree(self, rate: float) -> None:
        """Take the fleet's budget; say once when it is smaller than this exporter's own."""
        self._rate = rate
        if rate < self._own and self._told_rate != rate:
            LOG.warning(
                "fleet %s: account %s has a budget of %.3g requests/s across the fleet, less "
                "than this exporter's %.3g: another exporter's config says so, and the "
                "smallest wins",
                self._link.name,
                self.account,
                rate,
                self._own,
            )
        self._told_rate = rate if rate < self._own else None
