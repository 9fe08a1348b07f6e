"""Jobs listed in the files of a watched directory, for apps that prefer writing a file.

``*.yaml``/``*.yml`` files map source names to job lists shaped like a source's
``jobs:`` in the config; ``*.txt`` files hold one ``SOURCE JOB_ID`` a line.
:class:`DirWatcher` rescans the directory every couple of seconds and turns the
union of the files into ``add``/``remove`` calls.

A file is read again only when its fingerprint (resolved path, device, inode,
size, mtime) changes, and only once the new one has held for two scans in a
row: a file caught half-written is left for the next scan.  A file that is
unusable as a whole (bad YAML, not UTF-8, too big, unreadable) keeps its last
good jobs and is reported once per change; a deleted file takes its jobs with
it.  Hidden entries are skipped: Kubernetes' atomic writer keeps ``..data`` and
its timestamped directories there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.clock import Clock
from exporter.config import quote
from exporter.intake.dirscan import Listing, Version, collect, shown
from exporter.jobs.keys import JobKey, Labels

LOG = logging.getLogger(__name__)

SCAN_INTERVAL = 2.0
_MAX_LOGGED = 10  # problem lines per file change; the rest are counted

# Runs one scan's blocking I/O off the event loop: asyncio.to_thread, or a test's wrapper.
Offload = Callable[[Callable[[], Listing]], Awaitable[Listing]]


@dataclass(slots=True)
class _File:
    seen: Version | None = None  # at the last scan
    read: Version | None = None  # the version last read, usable or not
    jobs: dict[JobKey, Labels] = field(default_factory=dict)  # its last good contribution
    usable: bool = False  # whether the version last read parsed


def _log_capped(prefix: str, lines: Iterable[str]) -> None:
    found = list(lines)
    for line in found[:_MAX_LOGGED]:
        LOG.warning("%s%s", prefix, line)
    if len(found) > _MAX_LOGGED:
        LOG.warning("%s... and %d more", prefix, len(found) - _MAX_LOGGED)


class DirWatcher:
    """Keeps the jobs ``add`` was told about equal to what the files of ``directory`` list.

    ``add(source, job_id, labels)`` is called for a job new to the files and
    again when its labels change (an upsert); ``remove(source, job_id)`` once no
    file lists it or its source is no longer in ``sources()``.  An ``add`` that
    raises (a full or unknown source) is logged once and retried every scan.
    ``offload`` runs each scan's listing and reading, one call a scan.
    """

    def __init__(
        self,
        directory: str,
        *,
        sources: Callable[[], Collection[str]],
        add: Callable[[str, str, Labels], None],
        remove: Callable[[str, str], None],
        clock: Clock,
        interval: float = SCAN_INTERVAL,
        offload: Offload = asyncio.to_thread,
    ) -> None:
        self.directory = directory
        self._offload = offload
        self._sources = sources
        self._add = add
        self._remove = remove
        self._clock = clock
        self._interval = interval
        self._prefix = f"watch_dir {directory}: "
        self._files: dict[str, _File] = {}
        self._known_sources: frozenset[str] | None = None
        self._active: dict[JobKey, Labels] = {}  # what add() accepted
        self._failed: dict[JobKey, Labels] = {}  # what add() refused, retried every scan
        self._failures_logged: frozenset[str] = frozenset()
        self._dir_error: str | None = None
        self._scans = 0
        self._resync = False
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DirWatcher:
        await self.scan()
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="watch-dir")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The rescanning task, so the owner can see it die."""
        return self._task

    @property
    def jobs(self) -> Mapping[JobKey, Labels]:
        """The jobs ``add`` accepted and ``remove`` has not been called for."""
        return MappingProxyType(self._active)

    @property
    def complete(self) -> bool:
        """Whether the last scan listed the directory and read every file in it as it is now."""
        return (
            self._scans > 0
            and self._dir_error is None
            and all(f.usable and f.read == f.seen for f in self._files.values())
        )

    def resync(self) -> None:
        """Call ``add`` again for every listed job at the next scan (the owner lost some)."""
        self._resync = True

    async def close(self) -> None:
        """Stop rescanning; safe to call twice."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        last_error: str | None = None
        while True:
            await self._clock.wait(self._stop, self._interval)
            if self._stop.is_set():
                return
            try:
                await self.scan()
            except Exception as exc:  # the loop must outlive any one scan; CancelledError passes
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:  # the same failure every scan is logged once
                    LOG.error("%sscan failed: %s", self._prefix, error, exc_info=exc)
                last_error = error
            else:
                if last_error is not None:
                    LOG.info("%sscans work again", self._prefix)
                last_error = None

    async def scan(self) -> None:
        """One pass: read what changed, then call ``add``/``remove`` for the difference."""
        async with self._lock:
            sources = frozenset(self._sources())
            everything, self._resync = self._resync, False
            force = everything or sources != self._known_sources
            if sources != self._known_sources:  # entries skipped for their source may count now
                for state in self._files.values():
                    state.read = None
                self._known_sources = sources
            known = {name: (f.seen, f.read) for name, f in self._files.items()}
            eager = self._scans == 0  # at start-up nothing is held back for a second look
            listing = await self._offload(
                functools.partial(collect, self.directory, known, eager=eager, sources=sources)
            )
            self._scans += 1
            self._apply(listing, sources, force=force, everything=everything)

    def _apply(
        self, listing: Listing, sources: frozenset[str], *, force: bool, everything: bool
    ) -> None:
        if listing.error is not None:
            if listing.error != self._dir_error:
                LOG.warning("%scannot list: %s; its jobs stay", self._prefix, listing.error)
            self._dir_error = listing.error
            return
        if self._dir_error is not None:
            LOG.info("%slisted again", self._prefix)
            self._dir_error = None
        touched = {name for name in self._files if name not in listing.present}
        for name in touched:
            LOG.info("%s%s is gone", self._prefix, shown(name))
            del self._files[name]
        for name, fp in listing.present.items():
            self._files.setdefault(name, _File()).seen = fp
        for name, outcome in listing.outcomes.items():
            state = self._files[name]
            state.read = outcome.fingerprint
            state.usable = outcome.jobs is not None
            if outcome.jobs is None:
                problem = "; ".join(outcome.problems)
                LOG.warning("%s%s; keeping its %d jobs", self._prefix, problem, len(state.jobs))
                continue
            _log_capped(self._prefix, outcome.problems)
            if outcome.jobs != state.jobs:
                state.jobs = outcome.jobs
                touched.add(name)
        if touched or force:
            self._sync(sources, touched, everything=everything)
        elif self._failed:
            errors: dict[str, int] = {}
            for key, labels in list(self._failed.items()):
                self._try_add(key, labels, errors)
            self._report(errors)

    def _sync(self, sources: frozenset[str], touched: set[str], *, everything: bool) -> None:
        """Make what ``add`` accepted equal the union of the files, the first file's labels won."""
        union: dict[JobKey, Labels] = {}
        owner: dict[JobKey, str] = {}
        conflicts: list[str] = []
        for name in sorted(self._files):
            for key, labels in self._files[name].jobs.items():
                if key[0] not in sources:
                    continue
                if key not in union:
                    union[key], owner[key] = labels, name
                elif union[key] != labels and {name, owner[key]} & touched:
                    where = f"{shown(name)}: {key[0]} {quote(key[1])}"
                    conflicts.append(f"{where}: other labels than in {shown(owner[key])}, kept")
        _log_capped(self._prefix, conflicts)
        errors: dict[str, int] = {}
        gone = [key for key in self._active if key not in union]
        for key in gone:
            del self._active[key]
            try:
                self._remove(*key)
            except Exception as exc:  # one bad job must not stop the others
                reason = f"remove: {type(exc).__name__}: {exc}"
                errors[reason] = errors.get(reason, 0) + 1
        self._failed = {key: labels for key, labels in self._failed.items() if key in union}
        changed = sum(
            self._try_add(key, labels, errors)
            for key, labels in union.items()
            if everything or self._active.get(key) != labels
        )
        self._report(errors)
        if changed or gone:
            LOG.info(
                "%s%d jobs from %d files (%d added or relabelled, %d removed)",
                *(self._prefix, len(self._active), len(self._files), changed, len(gone)),
            )

    def _try_add(self, key: JobKey, labels: Labels, errors: dict[str, int]) -> int:
        """1 if ``add`` took the job, else 0 with the reason counted in ``errors``."""
        try:
            self._add(key[0], key[1], labels)
        except Exception as exc:  # a full or vanished source must not stop the rest
            self._failed[key] = labels
            reason = f"add: {type(exc).__name__}: {exc}"
            errors[reason] = errors.get(reason, 0) + 1
            return 0
        self._active[key] = labels
        self._failed.pop(key, None)
        return 1

    def _report(self, errors: dict[str, int]) -> None:
        """One line per kind of failed call, logged again only when the kinds change."""
        kinds = frozenset(errors)
        if kinds != self._failures_logged:
            _log_capped(
                self._prefix, (f"{n} jobs failed: {why}" for why, n in sorted(errors.items()))
            )
            if not self._failed and any(k.startswith("add:") for k in self._failures_logged):
                LOG.info("%severy listed job is watched now", self._prefix)
        self._failures_logged = kinds
