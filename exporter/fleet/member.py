"""One exporter's membership of a fleet: the link and everything shared through it, as one."""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType

from exporter.clock import Clock
from exporter.config.model import FleetConfig
from exporter.fleet.limiter import Limiter
from exporter.fleet.link import DEFAULT_TIMINGS, Link, Watch, log_crash
from exporter.fleet.registrations import Registrations
from exporter.fleet.windows import OnWindow, Windows
from exporter.fleet.wire import Timings


class Fleet:
    """The link, the shared windows, each account's budget and the registered jobs.

    Built before :meth:`start` (the channels are subscribed then); the budgets
    may change at any time (:meth:`budgets`, on each config load).
    """

    def __init__(
        self,
        config: FleetConfig,
        *,
        clock: Clock,
        rng: random.Random,
        default_members: int = 1,
        member: str | None = None,
        timings: Timings = DEFAULT_TIMINGS,
        on_task: Watch = log_crash,
        on_window: OnWindow | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self.link = Link(
            config,
            clock=clock,
            rng=rng,
            default_members=default_members,
            member=member,
            timings=timings,
            on_task=on_task,
        )
        self.windows = Windows(self.link, clock=clock, on_window=on_window)
        self.registrations = Registrations(self.link, clock=clock)
        self._limiters: dict[str, Limiter] = {}
        self._running = False

    @property
    def up(self) -> bool:
        """Whether Redis answered the last call (``batchjob_exporter_fleet_up``)."""
        return self.link.up

    def live_members(self) -> int:
        """How many exporters share each budget, as last counted."""
        return self.link.live_members()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect in the background and start leasing for every budget; returns at once."""
        await self.link.start()  # undoes itself if it fails
        self._running = True
        for limiter in self._limiters.values():
            limiter.start()

    async def close(self) -> None:
        """Stop leasing, leave the fleet and disconnect; safe to call twice."""
        self._running = False
        for limiter in self._limiters.values():
            limiter.stop()
        await self.link.close()

    def budgets(self, rates: Mapping[str, float]) -> Mapping[str, Limiter]:
        """One limiter per account of ``rates`` (requests/s): new ones start, gone ones stop."""
        for account in [account for account in self._limiters if account not in rates]:
            self._limiters.pop(account).stop()
        for account, rate in rates.items():
            limiter = self._limiters.get(account)
            if limiter is None:
                limiter = Limiter(self.link, account, rate, clock=self._clock)
                self._limiters[account] = limiter
                if self._running:
                    limiter.start()
            else:
                limiter.set_rate(rate)
        return self.limiters

    @property
    def limiters(self) -> Mapping[str, Limiter]:
        """Each account's limiter (read-only)."""
        return MappingProxyType(self._limiters)
