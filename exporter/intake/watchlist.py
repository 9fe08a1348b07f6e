"""The set of watched jobs and where each came from: the config, the API, or the watch dir.

Every job carries its :class:`~exporter.jobs.keys.Origin`, shown as the
``origin`` label of ``batchjob_info``.  The config's jobs follow the config
(a reload adds and drops them); a job registered at run time stays until it
is unregistered, or its source leaves the config.  A key is watched once: the
config takes over a job that was registered before it was configured.

With ``--shard``/``--total-shards`` (a :class:`~exporter.jobs.shard.Shard`),
the config's and the registered jobs are watched only by the shard their key
falls to; the watch dir's are the pod's own and are not sharded.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping

from exporter.config import Config
from exporter.jobs.keys import JobKey, Labels, Origin
from exporter.jobs.shard import Shard
from exporter.jobs.table import JobTable
from exporter.jobs.view import summarize
from exporter.polling.runtime import PollClient, Runtime
from exporter.polling.scheduler import Scheduler
from exporter.state.records import JobRecord

# A job registered at run time is polled within this long, jittered, so an app
# registering a burst of jobs does not cause a burst of requests.
FIRST_POLL_WITHIN = 5.0


class Misdirected(Exception):
    """A job registered with a shard it does not fall to; ``owner`` is the one it does."""

    def __init__(self, key: JobKey, shard: Shard) -> None:
        self.owner = shard.of(key)
        super().__init__(
            f"job falls to shard {self.owner} of {shard.total}, not this one ({shard.index}): "
            "register it there"
        )


class Watchlist:
    """Adds and drops jobs in the table and the scheduler together."""

    def __init__(
        self,
        table: JobTable,
        runtimes: Mapping[str, Runtime[PollClient]],
        *,
        rng: random.Random,
        max_jobs_per_source: int,
        shard: Shard | None = None,
    ) -> None:
        self._table = table
        self.shard = shard or Shard()
        self._runtimes = runtimes
        self._rng = rng
        self._max_jobs = max_jobs_per_source
        self._scheduler: Scheduler[JobKey] | None = None  # attached while the exporter runs

    def _running(self) -> Scheduler[JobKey]:
        if self._scheduler is None:
            raise RuntimeError("the exporter is not running")
        return self._scheduler

    def attach(self, scheduler: Scheduler[JobKey] | None) -> None:
        """Poll through ``scheduler`` from now on (``None``: the exporter stopped)."""
        self._scheduler = scheduler

    def expire(self, now: float) -> None:
        """Drop finished jobs whose retention ran out at wall time ``now``, and their polls."""
        for key in self._table.expire(now):
            if self._scheduler is not None:
                self._scheduler.cancel(key)

    def watch(self, source: str, job_id: str, labels: Labels, origin: Origin = Origin.API) -> bool:
        """Watch a job registered at run time; ``True`` if it was not watched yet.

        Raises KeyError for an unknown source, OverflowError when the
        source already watches ``max_jobs_per_source`` jobs, and
        :class:`Misdirected` for a registration another shard watches.
        """
        src = self._runtimes[source]
        scheduler = self._running()
        key = (source, job_id)
        if key in self._table:
            return False
        if origin == Origin.API and not self.shard.owns(key):
            raise Misdirected(key, self.shard)
        if self._table.count(source) >= self._max_jobs:
            raise OverflowError(f"source {source!r} already watches {self._max_jobs} jobs")
        self._table.add(key, src.spec.name, labels, origin)
        scheduler.schedule(key, self._rng.random() * min(src.interval, FIRST_POLL_WITHIN))
        return True

    def has_source(self, source: str) -> bool:
        """Whether ``source`` is configured."""
        return source in self._runtimes

    def unwatch(self, source: str, job_id: str, only: str | None = None) -> bool:
        """Stop watching a job (of origin ``only``, if given); its series go at the next scrape."""
        key = (source, job_id)
        entry = self._table.get(key)
        if entry is None or (only is not None and entry.origin != only):
            return False
        self._table.remove(key)
        if self._scheduler is not None:
            self._scheduler.cancel(key)
        return True

    def origin_of(self, source: str, job_id: str) -> Origin | None:
        """Where a watched job came from; ``None`` if it is not watched."""
        entry = self._table.get((source, job_id))
        return None if entry is None else entry.origin

    def relabel(self, source: str, job_id: str, labels: Labels, only: Origin) -> None:
        """Give a job of origin ``only`` new labels (a changed watch-dir file)."""
        entry = self._table.get((source, job_id))
        if entry is not None and entry.origin == only:
            self._table.relabel(entry.key, labels, only)

    def jobs(self) -> list[dict[str, object]]:
        """Every watched job and its state, for ``GET /api/v1/jobs`` (as the jobs page reads it).

        Sharded, each says which shard watches it.
        """
        if not self.shard.sharded:
            return [summarize(entry).as_json() for entry in self._table]
        shard = self.shard.index
        return [{**summarize(entry).as_json(), "shard": shard} for entry in self._table]

    def registered(self) -> list[tuple[JobKey, Labels]]:
        """The jobs watched from the registration API, and their labels."""
        return [(entry.key, entry.labels) for entry in self._table if entry.origin == Origin.API]

    def sync_config(self, config: Config) -> None:
        """Watch the config's jobs: new ones spread over their interval, removed ones dropped."""
        scheduler = self._running()
        owns = self.shard.owns
        mine = {src.name: [j for j in src.jobs if owns((src.name, j.id))] for src in config.sources}
        wanted = {(name, job.id) for name, jobs in mine.items() for job in jobs}
        for entry in [e for e in self._table if e.origin == Origin.CONFIG and e.key not in wanted]:
            self.unwatch(*entry.key)
        for src in config.sources:
            phase = self._rng.random()
            new = 0
            jobs = mine[src.name]
            for job in jobs:
                key = (src.name, job.id)
                current = self._table.get(key)
                if current is None:
                    self._table.add(key, src.api, job.labels, Origin.CONFIG)
                    # Evenly over one interval from a random phase: no thundering herd.
                    at = (phase + new / len(jobs)) % 1.0
                    scheduler.schedule(key, src.poll_interval * at)
                    new += 1
                elif current.origin != Origin.CONFIG or current.labels != job.labels:
                    # Relabelled, or taken over from the API or the watch dir.
                    self._table.relabel(key, job.labels, Origin.CONFIG)

    def reset(self, sources: Iterable[str]) -> None:
        """Drop the jobs of ``sources``; re-add run-time jobs whose source is still there.

        For a source removed, or whose API changed: a job's state means nothing
        under another API, so its run-time registration starts afresh.
        """
        names = set(sources)
        for entry in [e for e in self._table if e.key[0] in names]:
            self.unwatch(*entry.key)
            if entry.key[0] in self._runtimes and entry.origin != Origin.CONFIG:
                self.watch(*entry.key, entry.labels, origin=entry.origin)

    def restore(self, records: Iterable[JobRecord], config: Config, now: float) -> list[JobKey]:
        """Put back jobs saved before a restart; the keys of records too stale to use.

        A record is stale when its source is gone, its source's API changed, it
        came from the config and the config no longer lists it, its retention ran
        out while the exporter was down (wall time ``now``), or it is a config or
        registered job another shard watches now (``--total-shards`` changed).
        Finished jobs come back with their final values and are not polled again.
        """
        scheduler = self._running()
        configured = {(src.name, job.id) for src in config.sources for job in src.jobs}
        stale: list[JobKey] = []
        for r in records:
            key = (r.source, r.job_id)
            src = self._runtimes.get(r.source)
            if (
                src is None
                or src.spec.name != r.api
                or (r.origin == Origin.CONFIG and key not in configured)
                or (r.expires_at is not None and r.expires_at <= now)
                or (r.origin != Origin.DIR and not self.shard.owns(key))
            ):
                stale.append(key)
                continue
            entry = self._table.restore(key, r.api, r.labels, r.origin, r)
            if not entry.finished:
                scheduler.schedule(key, self._rng.random() * src.interval)
        return stale

    def prune(self, kind: Origin, keep: Collection[JobKey]) -> None:
        """Unwatch jobs of origin ``kind`` not in ``keep`` (restored dir jobs whose file went)."""
        for entry in [e for e in self._table if e.origin == kind and e.key not in keep]:
            self.unwatch(*entry.key)
