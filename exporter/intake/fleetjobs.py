"""Registered jobs of a sharded fleet: stored in Redis, watched by the shard they fall to.

With ``global.fleet`` and ``--total-shards`` above 1, a ``PUT`` to any replica's
registration API is stored in the fleet's Redis (acknowledged only once
stored) and the owning shard picks it up from the fleet's change feed; a
``DELETE`` on any replica removes it everywhere.  :class:`FleetJobs` is both
sides: the API's store, and the feed's subscriber that watches and unwatches
this shard's share of the registrations.  Unsharded, registrations stay each
exporter's own (a sidecar's app registers with its own sidecar).

A restart brings this shard's registrations back from its state file, and
keeps them while Redis does not answer (they are all it has).  Each full read
of Redis then settles those it does not list: removed through another replica
while this one was down (no feed told of it), they are unwatched; lost with
Redis' data (a restart without persistence), they are written back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from exporter.fleet import Change, FleetUnavailable, Registrations
from exporter.intake.watchlist import Watchlist
from exporter.jobs.keys import Labels, Origin

LOG = logging.getLogger(__name__)


class RegistryUnavailable(Exception):
    """The fleet's store cannot take or give registrations now (Redis is away): a 503."""


class FleetJobs:
    """A shard's registered jobs, kept in step with the fleet's; the API's store."""

    def __init__(
        self, watchlist: Watchlist, registrations: Registrations, *, max_jobs_per_source: int
    ) -> None:
        self._watchlist = watchlist
        self._registrations = registrations
        self._max_jobs = max_jobs_per_source
        self._stop: Callable[[], None] | None = None
        self._unknown_told: set[str] = set()

    def start(self) -> None:
        """Follow the fleet's registrations (the exporter runs: its scheduler is attached)."""
        if self._stop is None:
            registrations = self._registrations
            self._stop = registrations.subscribe(self._changed)
            self._changed(Change(upserted=tuple(registrations.known())))
            # After the subscription: a read this causes tells of what it settles.
            owns = self._watchlist.shard.owns
            registrations.keep(
                lambda: [(k, labels) for k, labels in self._watchlist.registered() if owns(k)]
            )

    def close(self) -> None:
        """Stop following them."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()

    def has_source(self, source: str) -> bool:
        """Whether ``source`` is configured (the fleet's replicas share one config)."""
        return self._watchlist.has_source(source)

    async def add(self, source: str, job_id: str, labels: Labels) -> bool:
        """Store a registration fleet-wide; whether it is new.  OverflowError: the fleet is full."""
        try:
            return await self._registrations.add(source, job_id, labels, max_jobs=self._max_jobs)
        except FleetUnavailable:
            raise RegistryUnavailable("the fleet's Redis cannot take registrations now") from None

    async def remove(self, source: str, job_id: str) -> bool:
        """Remove a registration fleet-wide, and here; whether there was one (either)."""
        try:
            stored = await self._registrations.remove(source, job_id)
        except FleetUnavailable:
            raise RegistryUnavailable("the fleet's Redis cannot take registrations now") from None
        # One restored from the state file that Redis no longer has (not read in full yet)
        # goes too: else it could not be removed until this shard's next restart.
        local = self._watchlist.unwatch(source, job_id, only=Origin.API)
        return stored or local

    def others(self) -> list[dict[str, object]]:
        """The registrations other shards watch, JSON-ready, each with its shard (no state)."""
        shard = self._watchlist.shard
        out: list[dict[str, object]] = []
        for r in self._registrations.known():
            owner = shard.of((r.source, r.job_id))
            if owner != shard.index:
                out.append(
                    {
                        "source": r.source,
                        "id": r.job_id,
                        "origin": Origin.API.value,
                        "labels": dict(r.labels),
                        "shard": owner,
                    }
                )
        return out

    def _changed(self, change: Change) -> None:
        """Watch this shard's new registrations and unwatch its removed ones."""
        watchlist = self._watchlist
        owns = watchlist.shard.owns
        for r in change.upserted:
            key = (r.source, r.job_id)
            if not owns(key):
                continue
            try:
                if not watchlist.watch(r.source, r.job_id, r.labels):
                    watchlist.relabel(r.source, r.job_id, r.labels, only=Origin.API)
            except KeyError:
                if r.source not in self._unknown_told:  # a source this config does not have
                    self._unknown_told.add(r.source)
                    LOG.warning("registered jobs of unknown source %r are not watched", r.source)
            except OverflowError as exc:  # this shard alone is full: said, not raised
                LOG.warning("registration of %s/%s not watched: %s", r.source, r.job_id, exc)
        for source, job_id in change.removed:
            if owns((source, job_id)):
                watchlist.unwatch(source, job_id, only=Origin.API)
