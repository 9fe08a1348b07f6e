"""An account's manners as the fleet shares them, in the shape the gate asks for.

:class:`FleetManners` is a :class:`~exporter.polling.gate.SharedManners` over
:class:`~exporter.fleet.Fleet`: the windows another exporter met close this
one's gate, the windows this one meets are told to the others, and the
account's budget is the fleet's limiter.  Every call is a dict read or a
fire-and-forget write: a poll never waits on Redis.
"""

from __future__ import annotations

from exporter.clock import Clock
from exporter.fleet import Fleet


class FleetManners:
    """One account's shared manners; fleet windows are wall time, the gate's monotonic."""

    __slots__ = ("_account", "_clock", "_fleet")

    def __init__(self, fleet: Fleet, account: str, *, clock: Clock) -> None:
        self._fleet = fleet
        self._account = account
        self._clock = clock

    def closed(self) -> tuple[float, str | None]:
        """Seconds the fleet keeps the account closed (0.0: open), and why."""
        left = self._fleet.windows.closed_until(self._account) - self._clock.time()
        if left <= 0:
            return 0.0, None
        return left, self._fleet.windows.reason(self._account)

    def close(self, seconds: float, reason: str) -> None:
        """Tell the fleet the account is closed for ``seconds``."""
        self._fleet.windows.close(self._account, self._clock.time() + seconds, reason)

    def acquire(self, now: float) -> float | None:
        """A slot of the account's fleet budget; ``None`` when it has none."""
        limiter = self._fleet.limiters.get(self._account)
        return None if limiter is None else limiter.acquire(now)

    def ready_in(self, now: float) -> float | None:
        """When the fleet budget would give a slot; ``None`` when it has none."""
        limiter = self._fleet.limiters.get(self._account)
        return None if limiter is None else limiter.ready_in(now)
