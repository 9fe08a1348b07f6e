"""The watch dir's jobs in the watchlist: which directory is watched, and pruning after a restart.

:class:`DirJobs` owns the one :class:`~exporter.intake.watchdir.DirWatcher`
the config asks for, swaps it when ``global.watch_dir`` changes, and drops
restored dir jobs that no file lists any more, but only once every file could
be read: until then a half-written file may still list them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from exporter.clock import Clock
from exporter.intake.watchdir import DirWatcher
from exporter.intake.watchlist import Watchlist
from exporter.jobs.keys import Labels, Origin

__all__ = ["DirJobs"]


class DirJobs:
    """Keeps the watchlist's ``dir`` jobs equal to what the watched directory's files list."""

    def __init__(
        self,
        watchlist: Watchlist,
        *,
        sources: Callable[[], Collection[str]],
        clock: Clock,
        on_task: Callable[[asyncio.Task[None] | None], None],
    ) -> None:
        self._watchlist = watchlist
        self._sources = sources
        self._clock = clock
        self._on_task = on_task  # the owner watches the rescanning task for a crash
        self._watcher: DirWatcher | None = None
        self._pruned = False
        self._closed = False

    async def watch(self, directory: str | None) -> None:
        """Watch ``directory``'s job files instead of the current one's (``None``: none)."""
        old, self._watcher = self._watcher, None
        if old is not None:
            await old.close()
            for key in old.jobs:
                self._watchlist.unwatch(*key, only=Origin.DIR)
        if directory is None or self._closed:
            return
        watchlist = self._watchlist

        def add(source: str, job_id: str, labels: Labels) -> None:
            # Raises for an unknown source or a full one: the watcher retries at its next scan.
            if not watchlist.watch(source, job_id, labels, origin=Origin.DIR):
                watchlist.relabel(source, job_id, labels, only=Origin.DIR)

        def remove(source: str, job_id: str) -> None:
            watchlist.unwatch(source, job_id, only=Origin.DIR)

        watcher = DirWatcher(
            directory, sources=self._sources, add=add, remove=remove, clock=self._clock
        )
        await watcher.__aenter__()
        self._watcher = watcher
        self._on_task(watcher.task)

    def resync(self) -> None:
        """Add every listed job again at the next scan (a reload dropped some)."""
        if self._watcher is not None:
            self._watcher.resync()

    def prune(self) -> None:
        """Drop restored dir jobs no file lists, once every file could be read; then no more."""
        if self._pruned or self._closed:
            return  # closed: no watcher, so "no file lists them" would be untrue
        watcher = self._watcher
        if watcher is None:
            self._watchlist.prune(Origin.DIR, ())
        elif watcher.complete:
            self._watchlist.prune(Origin.DIR, watcher.jobs)
        else:
            return
        self._pruned = True

    async def close(self) -> None:
        """Stop watching; a reload finishing later starts no new watcher. Safe to call twice."""
        self._closed = True
        if self._watcher is not None:
            await self._watcher.close()
            self._watcher = None
