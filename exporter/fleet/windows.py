"""Closed windows per account, shared by the fleet: a vendor's Retry-After, a credentials hold.

A 429 (or a 503 with ``Retry-After``) seen by one exporter closes the account
for all of them, and so does a refused credential (``auth``): the credentials
are the account's.  Backoff after a 5xx or a timeout is not shared; it says
more about one exporter's path to the vendor than about the account.

:meth:`Windows.close` takes effect locally at once and is published through
the link's outbox: one script extends the window (never shortens it) in the
hash of windows in force and publishes it.  Every member's subscriber keeps a
local dict, so :meth:`Windows.closed_until` is a plain read; a member that
starts later or reconnects reads the hash.  Times are wall-clock seconds: the
members' clocks are assumed to agree to well under a second (NTP).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable

from redis.asyncio import Redis

from exporter.clock import Clock
from exporter.fleet.link import Link
from exporter.fleet.wire import Script, text

LOG = logging.getLogger(__name__)
REASONS = ("retry-after", "auth")
# Told of a window another member opened (or a longer one): account, until (wall), reason.
OnWindow = Callable[[str, float, str], None]

# Extend one account's window, drop the windows that have ended, keep the hash until the last
# ends, and tell every member.  ARGV: account, until (wall seconds), reason, now (wall
# seconds), channel, message.
_CLOSE = Script("""
local old = redis.call('HGET', KEYS[1], ARGV[1])
local old_until = old and tonumber(string.match(old, '^%S+'))
if old_until and old_until >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
local now, latest = tonumber(ARGV[4]), 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ends = tonumber(string.match(all[i + 1], '^%S+'))
  if ends == nil or ends <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif ends > latest then
    latest = ends
  end
end
redis.call('PEXPIREAT', KEYS[1], math.ceil(latest * 1000))
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
""")


class Windows:
    """Every account's closed window as this member knows it; changed by :meth:`close`."""

    def __init__(self, link: Link, *, clock: Clock, on_window: OnWindow | None = None) -> None:
        self._link = link
        self._clock = clock
        self._on_window = on_window
        self._key = link.key("windows")
        self._channel = link.key("windows")  # channels and keys are separate namespaces
        self._closed: dict[str, tuple[float, str]] = {}
        self._bad_logged = False
        link.listen(self._channel, self._message, self._resync)

    def closed_until(self, account: str) -> float:
        """When the account's window ends (wall seconds), or 0.0 when it is open."""
        entry = self._closed.get(account)
        if entry is None or entry[0] <= self._clock.time():
            return 0.0
        return entry[0]

    def reason(self, account: str) -> str | None:
        """Why the account is closed ("retry-after" or "auth"), or ``None`` when it is open."""
        return self._closed[account][1] if self.closed_until(account) else None

    def close(self, account: str, until_wall: float, reason: str) -> None:
        """Close ``account`` until ``until_wall`` here at once and, soon, fleet-wide."""
        if reason not in REASONS:
            raise ValueError(f"a shared window is for {' or '.join(REASONS)}, not {reason}")
        if not self._merge(account, until_wall, reason) or until_wall <= self._clock.time():
            return
        message = json.dumps([account, until_wall, reason])

        async def publish(client: Redis) -> None:
            now = self._clock.time()
            if until_wall <= now:
                return  # ended while queued (Redis was away): nobody needs to hear of it
            # repr: the whole float, so the hash and the message tell the same time.
            args = [account, repr(until_wall), reason, repr(now), self._channel, message]
            await _CLOSE.run(client, [self._key], args)

        self._link.post(publish, "window")

    def _merge(self, account: str, until: float, reason: str) -> bool:
        """Keep the later of the known window and this one; whether this one is later."""
        known = self._closed.get(account)
        if known is not None and known[0] >= until:
            return False
        self._closed[account] = (until, reason)
        # Ended windows go as new ones come: the dict holds no more than the accounts.
        now = self._clock.time()
        for name in [name for name, (ends, _) in self._closed.items() if ends <= now]:
            del self._closed[name]
        return True

    def _told(self, account: str, until: float, reason: str) -> None:
        """A window from the fleet: merged, and passed on when it changes what is known here."""
        changed = self._merge(account, until, reason) and until > self._clock.time()
        if changed and self._on_window is not None:
            self._on_window(account, until, reason)

    def _message(self, data: bytes) -> None:
        try:
            account, until, reason = json.loads(data)
            until = float(until)
            valid = isinstance(account, str) and reason in REASONS and math.isfinite(until)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            self._bad(data)
            return
        self._told(account, until, reason)

    async def _resync(self) -> None:
        """Read the windows in force: those published while this member was not listening."""
        known = await self._link.call(lambda r: r.hgetall(self._key), "windows read")
        for field, value in known.items():
            account = text(field)
            until, _, reason = text(value).partition(" ")
            try:
                ends = float(until)
            except ValueError:
                ends = 0.0
            if reason not in REASONS or not math.isfinite(ends) or not ends:
                self._bad(value)
                continue
            self._told(account, ends, reason)

    def _bad(self, what: str | bytes) -> None:
        if not self._bad_logged:  # another version of the exporter, or someone else's key
            self._bad_logged = True
            LOG.warning(
                "fleet %s: ignoring a window that cannot be read: %r", self._link.name, what[:200]
            )
