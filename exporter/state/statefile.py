"""The state file: one JSON row per job in a SQLite database of a known schema.

:class:`StateFile` opens the file in WAL mode (creating the schema in a new
one), loads its rows and writes batches of changes.  Every call blocks: the
store makes them on its one worker thread.  A file that is not a readable
database of a known schema is renamed aside to ``<path>.corrupt-<unix time>``
and a new one is started.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from exporter.clock import Clock
from exporter.jobs.keys import JobKey
from exporter.state.records import JobRecord, decode, encode

LOG = logging.getLogger("exporter.state.storage")  # not __name__: its lines keep the store's logger

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


# What a state file calls that tests stand in for: an open, a rename or a mode check cannot
# be made to fail on demand otherwise (root ignores modes).
class Connect(Protocol):
    """Open a SQLite connection as :func:`sqlite3.connect` does, with the arguments used here."""

    def __call__(
        self, database: str, *, timeout: float, isolation_level: None, uri: bool
    ) -> sqlite3.Connection:
        """A connection to ``database`` (a URI), or a :class:`sqlite3.Error`."""
        ...


Rename = Callable[[str, str], None]
Access = Callable[[str, int], bool]


class StateFile:
    """One state file; call it from one thread, which owns the connection once it opens it.

    ``connect``, ``rename`` and ``access`` are :func:`sqlite3.connect`,
    :func:`os.rename` and :func:`os.access` unless a test passes its own.
    """

    def __init__(
        self,
        path: str,
        clock: Clock,
        *,
        connect: Connect = sqlite3.connect,
        rename: Rename = os.rename,
        access: Access = os.access,
    ):
        self.path = path
        self._uri = Path(path).absolute().as_uri()  # a URI, so a path like "file:x" is a path
        self._clock = clock
        self._connect_to = connect
        self._rename = rename
        self._access = access
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open or create the file, setting an unusable one aside; StorageError if impossible."""
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise StorageError(f"storage path {self.path}: directory {parent} does not exist")
        if os.path.isdir(self.path):
            raise StorageError(f"storage path {self.path} is a directory")
        if os.path.exists(self.path):
            # Checked read-only first: a read-write open may fold the -wal into a bad file.
            try:
                if not self._access(self.path, os.R_OK | os.W_OK):
                    raise _Unusable("not readable and writable by this user")  # noqa: TRY301 - one handler for both checks
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
            conn = self._connect_to(target, timeout=5.0, isolation_level=None, uri=True)
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
                    self._rename(self.path + suffix, aside + suffix)
        except OSError as exc:
            raise StorageError(f"{self.path} is unusable and cannot be moved: {exc}") from exc
        return aside

    def load(self) -> list[JobRecord]:
        """Every record in the file; a row that does not decode is skipped with a log line."""
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

    def write(self, batch: dict[JobKey, JobRecord | None]) -> None:
        """Write ``batch`` in one transaction (``None`` deletes); rolled back if it fails."""
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

    def close(self) -> None:
        """Close the connection; safe to call twice."""
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
