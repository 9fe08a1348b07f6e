"""State that survives a restart: the watched jobs and what their last polls said.

:class:`SqliteStore` keeps one JSON row per job in a SQLite file (WAL mode).
:meth:`~SqliteStore.put` and :meth:`~SqliteStore.delete` only note the latest
change of a job in a dict; a background task writes that batch every
``flush_interval`` seconds in one transaction, on the store's own worker
thread, so the event loop never waits on the disk.  A SIGKILL loses at most
one interval of updates.  A failed write (disk full, read-only) logs a line
and keeps the batch for the next try; the batch never holds more than one
entry per job.  A file that is not a readable database of a known schema is
renamed aside to ``<path>.corrupt-<unix time>`` and the store starts empty.
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
from pathlib import Path
from typing import Protocol, TypeVar

from exporter.clock import Clock, SystemClock
from exporter.records import JobRecord, decode, encode

LOG = logging.getLogger(__name__)
T = TypeVar("T")
JobKey = tuple[str, str]  # (source, job_id)

SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE jobs (source TEXT NOT NULL, job_id TEXT NOT NULL, data TEXT NOT NULL,"
    " PRIMARY KEY (source, job_id)) WITHOUT ROWID"
)
_UPSERT = (
    "INSERT INTO jobs (source, job_id, data) VALUES (?, ?, ?)"
    " ON CONFLICT (source, job_id) DO UPDATE SET data = excluded.data"
)
_DELETE = "DELETE FROM jobs WHERE source = ? AND job_id = ?"


class StorageError(Exception):
    """The state file cannot be used or written; the message names the path."""


class _Unusable(Exception):
    """The file is there but is not a state database we can read: set it aside."""


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
    """Jobs saved in a SQLite file; every SQLite call runs on the store's one worker thread."""

    def __init__(self, path: str, *, flush_interval: float = 1.0, clock: Clock | None = None):
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be positive, not {flush_interval}")
        self.path = path
        self.description = f"sqlite:{path}"
        self._uri = Path(path).absolute().as_uri()  # a URI, so a path like "file:x" is a path
        self._interval = flush_interval
        self._clock = clock or SystemClock()
        self._pending: dict[JobKey, JobRecord | None] = {}  # None: delete
        self._conn: sqlite3.Connection | None = None  # touched on the worker thread only
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
            await self._call(self._open_sync)
        except BaseException:
            self._executor.submit(self._close_sync)  # after an open that outlived a cancel
            self._executor.shutdown()
            self._executor = None
            raise
        self._task = asyncio.create_task(self._flush_loop(), name="storage-flush")
        self._task.add_done_callback(self._task_done)
        LOG.info("job state is saved in %s every %gs", self.path, self._interval)

    async def load(self) -> list[JobRecord]:
        """Every record in the file; a row that does not decode is skipped with a log line."""
        return await self._call(self._load_sync)

    def put(self, record: JobRecord) -> None:
        """Note ``record`` for the next write; the last put or delete of a job wins."""
        self._pending[record.source, record.job_id] = record

    def delete(self, source: str, job_id: str) -> None:
        """Note that the job is gone, for the next write."""
        self._pending[source, job_id] = None

    async def flush(self) -> None:
        """Write everything pending now; StorageError if that fails (the batch stays pending)."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                await self._call(self._write_sync, batch)
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
                await self._call(self._close_sync)
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

    # Everything below runs on the worker thread.

    def _open_sync(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise StorageError(f"storage path {self.path}: directory {parent} does not exist")
        if os.path.isdir(self.path):
            raise StorageError(f"storage path {self.path} is a directory")
        if os.path.exists(self.path):
            # Checked read-only first: a read-write open may fold the -wal into a bad file.
            try:
                if not os.access(self.path, os.R_OK | os.W_OK):
                    raise _Unusable("not readable and writable by this user")  # noqa: TRY301
                self._connect(self._uri + "?mode=ro", _healthy).close()
            except _Unusable as why:
                aside = self._set_aside()
                LOG.warning(
                    "%s is unusable (%s): moved to %s, starting empty", self.path, why, aside
                )
        self._conn = self._connect(self._uri, _prepare)

    def _connect(
        self, target: str, prepare: Callable[[sqlite3.Connection], object]
    ) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(target, timeout=5.0, isolation_level=None, uri=True)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        try:
            prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise _Unusable(str(exc)) from exc
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self) -> str:
        now = int(self._clock.time())
        aside, n = f"{self.path}.corrupt-{now}", 0
        while os.path.lexists(aside):
            n += 1
            aside = f"{self.path}.corrupt-{now}.{n}"
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.lexists(self.path + suffix):
                    os.rename(self.path + suffix, aside + suffix)
        except OSError as exc:
            raise StorageError(f"{self.path} is unusable and cannot be moved: {exc}") from exc
        return aside

    def _load_sync(self) -> list[JobRecord]:
        assert self._conn is not None  # noqa: S101 - open() ran first
        out = []
        for source, job_id, data in self._conn.execute("SELECT source, job_id, data FROM jobs"):
            try:
                record = decode(_text(data))
            except (ValueError, TypeError) as exc:
                LOG.warning("%s: skipped the saved job %r/%r: %s", self.path, source, job_id, exc)
                continue
            if (record.source, record.job_id) == (source, job_id):
                out.append(record)
            else:
                LOG.warning(
                    "%s: skipped the saved job %r/%r: key mismatch", self.path, source, job_id
                )
        return out

    def _write_sync(self, batch: dict[JobKey, JobRecord | None]) -> None:
        conn = self._conn
        assert conn is not None  # noqa: S101 - open() ran first
        upserts: list[tuple[str, str, str]] = []
        deletes: list[JobKey] = []
        for key, record in batch.items():
            try:
                key[0].encode(), key[1].encode()  # a lone surrogate cannot be bound
            except UnicodeEncodeError:
                LOG.warning("cannot save job %r/%r: its ID is not valid Unicode", *key)
                continue
            if record is None:
                deletes.append(key)
            else:
                upserts.append((*key, encode(record)))
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, upserts)
            conn.executemany(_DELETE, deletes)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _text(value: object) -> str:
    """A row's data, which must be a string (a BLOB is not a record)."""
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _healthy(conn: sqlite3.Connection) -> None:
    """Raise _Unusable unless ``conn`` holds a healthy, empty or state database we know."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _Unusable(f"schema version {version}, this exporter knows {SCHEMA_VERSION}")
    check = conn.execute("PRAGMA quick_check").fetchall()
    if check != [("ok",)]:
        raise _Unusable(f"quick_check: {check[0][0]}")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    if tables != ({"jobs"} if version else set()):
        raise _Unusable(f"not an exporter state file (tables {sorted(tables)})")


def _prepare(conn: sqlite3.Connection) -> None:
    """Set WAL mode, and create the schema in a new file."""
    if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":  # e.g. on NFS
        LOG.warning("SQLite cannot use WAL mode here: writes are slower and block readers")
    conn.execute("PRAGMA synchronous=NORMAL")
    if not conn.execute("PRAGMA user_version").fetchone()[0]:
        conn.execute(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
