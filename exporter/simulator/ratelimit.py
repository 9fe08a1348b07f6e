"""A vendor's per-account request budget: a token bucket per account, on an injected clock.

Each account (a string the simulator derives from the credentials a request
carries) has a bucket of ``burst`` tokens refilled at ``rate`` tokens per
second.  A request takes one token; with none left it is refused, and
:meth:`RateLimiter.admit` says how long until one is: the ``Retry-After`` a
vendor sends, whole seconds rounded up, at least 1.  Nothing here reads a
clock or does I/O: the simulator passes its clock's time, the benchmark a fake one.
"""

from __future__ import annotations

import math
from collections import OrderedDict

# Float slack so that a client waiting exactly ``Retry-After`` is let in.
EPSILON = 1e-6


def _check(rate: object, burst: object) -> None:
    """Refuse a rate that is not a finite positive number or a burst that is not an int >= 1."""
    if (
        not isinstance(rate, int | float)
        or isinstance(rate, bool)
        or not math.isfinite(rate)
        or rate <= 0
    ):
        raise ValueError(f"rate must be a finite positive number, got {rate!r}")
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
        raise ValueError(f"burst must be a positive integer, got {burst!r}")


class RateLimiter:
    """Token buckets by account: ``rate`` tokens per second, at most ``burst`` saved up.

    An account never seen, or whose bucket has filled up again, has ``burst``
    tokens.  A full bucket is forgotten (a new one would be the same), so the
    memory held is bounded by the accounts seen in the last ``burst / rate``
    seconds.  ``admitted`` and ``rejected`` count the answers of :meth:`admit`.
    """

    def __init__(self, *, rate: float, burst: int) -> None:
        _check(rate, burst)
        self.rate = float(rate)
        self.burst = burst
        self.admitted = 0
        self.rejected = 0
        # account -> (tokens left, when counted); least recently touched first, so the
        # buckets that may have filled up are at the front.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def tracked(self) -> int:
        """Return how many accounts' buckets are held (those not full again)."""
        return len(self._buckets)

    def tokens(self, account: str, now: float) -> float:
        """Return the tokens ``account`` has at ``now`` (``burst`` if it has no bucket)."""
        held = self._buckets.get(account)
        if held is None:
            return float(self.burst)
        left, since = held
        # A clock that stepped back refills nothing (and is not counted twice later).
        return min(float(self.burst), left + self.rate * max(0.0, now - since))

    def admit(self, account: str, now: float) -> float | None:
        """``None``: the request is allowed (a token taken); else seconds until one is.

        The seconds are the ``Retry-After`` to send: the wait rounded up to a
        whole second, at least 1; a request at ``now`` plus that is let in.
        """
        self._forget_full(now)
        left = self.tokens(account, now)
        held = self._buckets.get(account)
        since = now if held is None else max(held[1], now)
        if left + EPSILON >= 1:
            self._buckets[account] = (left - 1, since)
            self._buckets.move_to_end(account)
            self.admitted += 1
            return None
        self._buckets[account] = (left, since)
        self._buckets.move_to_end(account)
        self.rejected += 1
        return float(max(1, math.ceil((1 - left) / self.rate)))

    def _forget_full(self, now: float) -> None:
        """Drop the least recently touched buckets while they have filled up again."""
        while self._buckets:
            account = next(iter(self._buckets))
            if self.tokens(account, now) + EPSILON < self.burst:
                return
            del self._buckets[account]


def retry_after(seconds: float) -> str:
    """Return :meth:`RateLimiter.admit`'s wait as a ``Retry-After`` header value."""
    return str(max(1, math.ceil(seconds)))
