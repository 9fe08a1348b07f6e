"""State that survives a restart: the watched jobs and what their last polls said.

:class:`SqliteStore` keeps one JSON row per job in a SQLite file (WAL mode).
:meth:`~SqliteStore.put` and :meth:`~SqliteStore.delete` only note the latest
change of a job in a dict; a background task writes that batch every
``flush_interval`` seconds in one transaction, on the store's own worker
thread, so the event loop never waits on the disk.  A SIGKILL loses at most
one interval of updates, but none a caller awaited :meth:`~SqliteStore.flush`
for (the registration API does, before it answers).  A failed write (disk
full, read-only) logs a line and keeps the batch for the next try; the batch
never holds more than one entry per job.  A file that is not a readable
database of a known schema is renamed aside to ``<path>.corrupt-<unix time>``
and the store starts empty.
:class:`MemoryStore` is what runs without ``--storage.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from exporter.clock import Clock, SystemClock
from exporter.jobs.keys import JobKey
from exporter.state.records import JobRecord
from exporter.state.statefile import Access, Connect, Rename, StateFile, StorageError

LOG = logging.getLogger(__name__)
T = TypeVar("T")


class Store(Protocol):
    """What the exporter uses: load once, then report every change without waiting."""

    description: str

    @property
    def flush_task(self) -> asyncio.Task[None] | None:
        """The background writer, for a done-callback (``None`` when there is none)."""

    async def __aenter__(self) -> Store: ...
    async def __aexit__(self, *exc_info: object) -> None: ...
    async def load(self) -> list[JobRecord]:
        """Every record saved by the previous run."""

    def put(self, record: JobRecord) -> None:
        """Save ``record`` soon: non-blocking, the last put of a job wins."""

    def delete(self, source: str, job_id: str) -> None:
        """Forget a job soon: non-blocking."""

    async def flush(self) -> None:
        """Write everything pending now."""

    async def close(self) -> None:
        """Flush, stop and close; safe to call twice."""


class MemoryStore:
    """No persistence: what runs without ``--storage.path``."""

    description = "memory (state is lost on restart)"
    flush_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def load(self) -> list[JobRecord]:
        """Nothing: there was no previous run to remember."""
        return []

    def put(self, record: JobRecord) -> None:
        """Nothing to do."""

    def delete(self, source: str, job_id: str) -> None:
        """Nothing to do."""

    async def flush(self) -> None:
        """Nothing to do."""

    async def close(self) -> None:
        """Nothing to do."""


class SqliteStore:
    """Jobs saved in a SQLite file; every SQLite call runs on the store's one worker thread.

    ``connect``, ``rename`` and ``access`` are handed to the
    :class:`~exporter.state.statefile.StateFile` (the real functions unless a test fakes them).
    """

    def __init__(
        self,
        path: str,
        *,
        flush_interval: float = 1.0,
        clock: Clock | None = None,
        connect: Connect = sqlite3.connect,
        rename: Rename = os.rename,
        access: Access = os.access,
    ):
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, not {flush_interval}")
        self.path = path
        self.description = f"sqlite:{path}"
        self._interval = flush_interval
        self._clock = clock or SystemClock()
        self._pending: dict[JobKey, JobRecord | None] = {}  # None: delete
        # Changes noted, and how many of them are on disk: a flush whose caller's change an
        # earlier write took returns at once, so concurrent awaiters share writes.
        self._changes = 0
        self._written = 0
        # Touched on the worker thread only.
        self._file = StateFile(path, self._clock, connect=connect, rename=rename, access=access)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()  # one batch at a time, so a batch put back is never stale
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        self._failing = False
        self.writes = 0  # batches written
        self.write_errors = 0  # writes that failed; their batch was kept for the next one

    @property
    def pending(self) -> int:
        """Jobs with a change not written yet (at most one entry per job)."""
        return len(self._pending)

    @property
    def failed(self) -> BaseException | None:
        """Why the background writer died, if it did; :meth:`close` raises it too."""
        return self._failed

    @property
    def flush_task(self) -> asyncio.Task[None] | None:
        """The background writer, for a done-callback."""
        return self._task

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open or create the file (setting an unusable one aside); StorageError if impossible."""
        if self._executor is not None or self._closing is not None:
            raise RuntimeError("a store opens once")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage")
        try:
            await self._call(self._file.open)
        except BaseException:
            self._executor.submit(self._file.close)  # after an open that outlived a cancel
            self._executor.shutdown()
            self._executor = None
            raise
        self._task = asyncio.create_task(self._flush_loop(), name="storage-flush")
        self._task.add_done_callback(self._task_done)
        LOG.info("job state is saved in %s every %gs", self.path, self._interval)

    async def load(self) -> list[JobRecord]:
        """Every record in the file; a row that does not decode is skipped with a log line."""
        return await self._call(self._file.load)

    def put(self, record: JobRecord) -> None:
        """Note ``record`` for the next write; the last put or delete of a job wins."""
        self._pending[record.source, record.job_id] = record
        self._changes += 1

    def delete(self, source: str, job_id: str) -> None:
        """Note that the job is gone, for the next write."""
        self._pending[source, job_id] = None
        self._changes += 1

    async def flush(self) -> None:
        """Write every change made before the call; StorageError if that fails (kept pending).

        Returns at once when another write already took them: callers that wait on
        a write in progress share the next one, whatever polls note meanwhile.
        """
        target = self._changes
        async with self._lock:
            if self._written >= target:
                return
            if not self._pending:  # nothing in flight (the lock is ours): all is written
                self._written = self._changes
                return
            batch, self._pending = self._pending, {}
            upto = self._changes
            try:
                await self._call(self._file.write, batch)
            except BaseException as exc:
                batch.update(self._pending)  # what changed meanwhile is newer
                self._pending = batch
                if not isinstance(exc, sqlite3.Error | OSError):
                    raise
                self.write_errors += 1
                if not self._failing:  # one line per outage, not one per try
                    LOG.warning("cannot save job state to %s, retrying: %s", self.path, exc)
                self._failing = True
                raise StorageError(f"cannot write {self.path}: {exc}") from exc
            self.writes += 1
            self._written = upto
            if self._failing:
                LOG.info("saving job state to %s works again", self.path)
                self._failing = False

    async def close(self) -> None:
        """Stop the writer, write what is pending, close the file; raises if the writer died."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._closing)  # a cancelled caller does not leave the file open

    async def _shutdown(self) -> None:
        try:
            if self._task is not None:
                self._stop.set()
                await asyncio.gather(self._task, return_exceptions=True)
            if self._task is not None and self._failed is None:
                try:
                    await self.flush()
                except StorageError:
                    LOG.error("the last changes of %d jobs were not saved", self.pending)
        finally:
            if self._executor is not None:
                await self._call(self._file.close)
                self._executor.shutdown()
                self._executor = None
        if (exc := self._failed) is not None:
            raise StorageError(f"the writer of {self.path} died: {exc!r}") from exc

    async def _flush_loop(self) -> None:
        while True:
            await self._clock.wait(self._stop, self._interval)
            if self._stop.is_set():
                return
            with contextlib.suppress(StorageError):  # logged; the batch is retried next time
                await self.flush()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._failed = exc
            LOG.error("the writer of %s died: %r", self.path, exc)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
