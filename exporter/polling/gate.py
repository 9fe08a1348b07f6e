"""Per-source manners: Retry-After windows, backoff with jitter, a request rate cap.

Every request to a source asks its :class:`SourceGate` first.  A closed gate
means no request at all, and the job is put back after the window with an
upward-only jitter, so a thousand jobs do not stampede the vendor the moment
it reopens.
"""

from __future__ import annotations

import email.utils
import logging
import random
from dataclasses import dataclass
from typing import Protocol

LOG = logging.getLogger(__name__)

# A Retry-After longer than a day is almost certainly a vendor bug; it is still honoured
# up to this bound so a typo cannot silence a source for a year.
MAX_RETRY_AFTER = 86_400.0
# Requests sent are counted per second over this many seconds, for the budget's use.
WINDOW = 60


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base * 2**(n-1)`` capped, times a jitter factor in [0.5, 1)."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """The wait after ``failures`` consecutive failures (``failures >= 1``)."""
        raw = min(self.cap, self.base * 2.0 ** min(failures - 1, 32))
        return raw * (0.5 + rng.random() / 2)


def parse_retry_after(value: str | None, wall_now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    ``None`` when the header is absent or unreadable, so the caller falls
    back to its own backoff instead of guessing.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when.timestamp() - wall_now, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class GateState:
    """What a source's gate says at one moment, for pages that show it (read-only)."""

    closed_for: float  # seconds until it reopens (0.0: open)
    reason: str | None  # "retry-after", "backoff" or "auth" (credentials hold); None when open
    max_rate: float | None  # the request rate cap (requests/s) or None


class SharedManners(Protocol):
    """The fleet's side of an account's manners (``polling/shared.py`` over ``exporter.fleet``)."""

    def closed(self) -> tuple[float, str | None]:
        """Seconds the fleet keeps the account closed (0.0: open), and why."""
        ...

    def close(self, seconds: float, reason: str) -> None:
        """Tell the fleet: closed for ``seconds`` (``retry-after`` or ``auth``)."""
        ...

    def acquire(self, now: float) -> float | None:
        """A slot of the fleet's budget: 0.0 now, else the wait; ``None``: no shared budget."""
        ...

    def ready_in(self, now: float) -> float | None:
        """When :meth:`acquire` would give a slot, taking none; ``None``: no shared budget."""
        ...


class SourceGate:
    """Whether a request to one source may go now, and until when it may not.

    ``max_rate`` (requests per second) spaces requests evenly; ``None`` means
    no cap beyond the scheduler's concurrency bound.  With ``shared`` (a fleet),
    the fleet's windows close the gate too, the gate tells the fleet of the
    Retry-After windows and credential holds it meets (its own backoff stays its
    own), and the fleet's budget stands in for the local rate cap.
    """

    def __init__(self, *, max_rate: float | None, backoff: Backoff, rng: random.Random) -> None:
        self._max_rate = max_rate or None
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._backoff = backoff
        self._rng = rng
        self._closed_until = 0.0
        # Why the window ending at _closed_until was opened; only read while it is in force.
        self._reason = "backoff"
        self._next_slot = 0.0
        self.failures = 0
        # Requests let through, per second of the last WINDOW: counts and the second each is of.
        self._sent = [0] * WINDOW
        self._second = [-1] * WINDOW
        self.shared: SharedManners | None = None

    @property
    def max_rate(self) -> float | None:
        """The request rate cap in force (requests per second), or ``None``."""
        return self._max_rate

    def set_rate(self, max_rate: float | None) -> None:
        """Change the request rate cap (a reload); a window in force stays closed."""
        self._max_rate = max_rate or None
        self._interval = 1.0 / max_rate if max_rate else 0.0

    def state(self, now: float) -> GateState:
        """How long the gate stays closed, why, and the rate cap in force."""
        local = max(self._closed_until - now, 0.0)
        reason = self._reason if local > 0 else None
        if self.shared is not None:
            fleet, why = self.shared.closed()
            if fleet > local:
                local, reason = fleet, why
        return GateState(closed_for=local, reason=reason, max_rate=self._max_rate)

    def _close_until(self, until: float, reason: str) -> None:
        """Extend the closed window; the window that ends last names the reason."""
        if until >= self._closed_until:
            self._closed_until = until
            self._reason = reason

    def closed_for(self, now: float) -> float:
        """Seconds until the source may be asked again (0: open)."""
        local = max(self._closed_until - now, 0.0)
        return local if self.shared is None else max(local, self.shared.closed()[0])

    def acquire(self, now: float) -> float:
        """Take a request slot now and return 0, or return how long to wait for one."""
        wait = self.closed_for(now)
        if wait > 0:
            return wait
        fleet = None if self.shared is None else self.shared.acquire(now)
        if fleet is not None:
            if fleet > 0:
                return fleet
        elif self._next_slot > now:
            return self._next_slot - now
        else:
            self._next_slot = now + self._interval
        second = int(now)
        slot = second % WINDOW
        if self._second[slot] != second:
            self._second[slot], self._sent[slot] = second, 0
        self._sent[slot] += 1
        return 0.0

    def slot_in(self, now: float) -> float:
        """How long until :meth:`acquire` would let a request through; takes nothing."""
        fleet = None if self.shared is None else self.shared.ready_in(now)
        slot = self._next_slot - now if fleet is None else fleet
        return max(self.closed_for(now), slot, 0.0)

    def sent_last_minute(self, now: float) -> int:
        """Requests let through in the last :data:`WINDOW` seconds (this one included)."""
        oldest = int(now) - WINDOW
        return sum(n for n, second in zip(self._sent, self._second, strict=True) if second > oldest)

    def retry_after(self, now: float, seconds: float | None) -> float:
        """Close the gate for the vendor's ``Retry-After`` or, without one, a backoff.

        Returns the window.  A window is never shortened by a later, shorter
        answer from a request that was already in flight.
        """
        self.failures += 1
        if seconds is not None:
            self._close_until(now + seconds, "retry-after")
            if self.shared is not None:
                self.shared.close(seconds, "retry-after")
            return seconds
        window = self._backoff.delay(self.failures, self._rng)
        self._close_until(now + window, "backoff")
        return window

    def failure(self, now: float) -> float:
        """A server error or a network failure: back off the whole source."""
        return self.retry_after(now, None)

    def hold(self, now: float, seconds: float) -> None:
        """Keep the source closed for a fixed time (credentials refused: the account's)."""
        self._close_until(now + seconds, "auth")
        if self.shared is not None:
            self.shared.close(seconds, "auth")

    def success(self) -> None:
        """The source answered normally: the backoff starts over."""
        self.failures = 0

    def spread(self, wait: float, width: float) -> float:
        """A delay of at least ``wait``, jittered upwards over ``width`` to spread a crowd."""
        return wait + self._rng.random() * width
