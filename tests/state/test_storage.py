"""The state store: SQLite persistence, corrupt files, failed writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import TypeVar

import pytest

from exporter.clock import FakeClock
from exporter.jobs.keys import Origin
from exporter.state import statefile
from exporter.state.records import JobRecord, encode
from exporter.state.statefile import Access, StorageError
from exporter.state.storage import MemoryStore, SqliteStore, Store
from tests.conftest import settle
from tests.state.test_records import record

T = TypeVar("T")


def rows(path: str) -> list[tuple[str, str, str]]:
    """The rows of the jobs table, read with a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return list(conn.execute("SELECT source, job_id, data FROM jobs ORDER BY job_id"))


def read(path: str) -> bytes:
    """The bytes of a small file."""
    return Path(path).read_bytes()


def write(path: str, data: bytes) -> None:
    """Replace a small file's bytes."""
    Path(path).write_bytes(data)


def make_db(path: str, *statements: str) -> None:
    """A SQLite file made by running ``statements``."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


async def on_worker(store: SqliteStore, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with the store's connection on its worker thread."""

    def call() -> T:
        assert store._file._conn is not None
        return fn(store._file._conn)

    return await store._call(call)


async def reload(path: str) -> list[JobRecord]:
    """What a new store on ``path`` loads, as a restarted exporter would."""
    async with SqliteStore(path) as store:
        return sorted(await store.load(), key=lambda r: r.job_id)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A path for the state file in a fresh directory."""
    return str(tmp_path / "state.db")


# The SQLite store


async def test_records_put_and_flushed_are_loaded_by_the_next_store(db: str) -> None:
    """What one store wrote, a new store on the same file loads, and the file is in WAL mode."""
    recs = [record("a"), record("b", snapshot=None, origin=Origin.CONFIG), record("c", labels=())]
    async with SqliteStore(db) as store:
        assert store.description == f"sqlite:{db}"
        assert await store.load() == []
        as_store: Store = store  # SqliteStore is a Store
        for rec in recs:
            as_store.put(rec)
        await as_store.flush()
        assert store.pending == 0
    assert await reload(db) == recs
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (statefile.SCHEMA_VERSION,)


async def test_many_puts_of_one_job_are_one_row_with_the_last_value(db: str) -> None:
    """Puts coalesce by job: 1000 updates are one pending entry, one write, one row."""
    async with SqliteStore(db) as store:
        for i in range(1000):
            store.put(record(last_success=float(i)))
        assert store.pending == 1
        await store.flush()
        await store.flush()  # nothing pending: no write
        assert store.writes == 1
        assert len(rows(db)) == 1
    assert [r.last_success for r in await reload(db)] == [999.0]


async def test_delete_removes_the_row_and_wins_over_an_earlier_put(db: str) -> None:
    """A delete removes a saved job; put then delete in one batch writes nothing for it."""
    async with SqliteStore(db) as store:
        store.put(record("a"))
        store.put(record("b"))
        await store.flush()
        store.delete("fs", "a")
        store.put(record("c"))
        store.delete("fs", "c")
        store.delete("fs", "never-saved")
        await store.flush()
    assert [r.job_id for r in await reload(db)] == ["b"]


async def until_nothing_pending(store: SqliteStore) -> None:
    """Wait (at most 5 s) until a flush has taken the pending batch to write it."""
    for _ in range(500):
        if store.pending == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batch was never taken")


async def test_flushes_waiting_on_a_write_share_the_next_one(db: str) -> None:
    """A flush whose changes an earlier write took returns at once, new changes or not.

    A: writes {a}; B and C wait for it (b before both); B writes {b}; e comes meanwhile;
    C then has nothing of its own to write: two writes, and e stays for the next one.
    """
    first, second = threading.Event(), threading.Event()
    async with SqliteStore(db) as store:
        held = asyncio.ensure_future(on_worker(store, lambda _: first.wait(5)))
        store.put(record("a"))
        a = asyncio.ensure_future(store.flush())
        await settle()
        # Queued behind A's write, so that B's write, when it comes, waits on the test.
        held_again = asyncio.ensure_future(on_worker(store, lambda _: second.wait(5)))
        store.put(record("b"))
        b = asyncio.ensure_future(store.flush())
        c = asyncio.ensure_future(store.flush())
        await settle()
        first.set()
        await a
        await until_nothing_pending(store)  # B has taken {b}
        store.put(record("e"))
        second.set()
        await asyncio.gather(b, c, held, held_again)
        assert (store.writes, store.pending) == (2, 1)
        assert [job for _, job, _ in rows(db)] == ["a", "b"]


async def test_close_writes_what_is_pending_and_is_safe_twice(db: str) -> None:
    """Closing flushes pending changes; a second close does nothing and raises nothing."""
    store = SqliteStore(db)
    await store.open()
    store.put(record())
    await store.close()
    await store.close()
    assert store.flush_task is not None
    assert store.flush_task.done()
    assert await reload(db) == [record()]
    with pytest.raises(RuntimeError, match="not open"):
        await store.load()
    with pytest.raises(RuntimeError, match="opens once"):
        await store.open()


async def test_a_cancelled_close_still_closes(db: str) -> None:
    """Cancelling the caller of close() does not stop the store from flushing and closing."""
    store = SqliteStore(db)
    await store.open()
    store.put(record())
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await store.close()
    assert store._file._conn is None
    assert await reload(db) == [record()]


async def test_the_flush_interval_runs_on_the_clock(db: str, clock: FakeClock) -> None:
    """Nothing is written before flush_interval has passed on the clock; then the batch is."""
    async with SqliteStore(db, flush_interval=2.0, clock=clock) as store:
        await settle()  # the writer starts waiting
        store.put(record())
        clock.advance(1.9)
        await settle()
        assert (store.pending, store.writes) == (1, 0)
        clock.advance(0.1)
        await settle()
        assert store.pending == 0  # taken by the background writer
        await store.flush()  # waits for the write in flight
        assert store.writes == 1
        assert len(rows(db)) == 1
        store.put(record("b"))
        clock.advance(2.0)
        await settle()
        await store.flush()
        assert store.writes == 2


async def test_sqlite_runs_on_one_worker_thread_never_the_loop(db: str) -> None:
    """Every statement of a flush and a load runs on the store's one thread, not the loop's."""
    threads: set[int] = set()
    async with SqliteStore(db) as store:

        def trace(conn: sqlite3.Connection) -> None:
            conn.set_trace_callback(lambda _: threads.add(threading.get_ident()))

        await on_worker(store, trace)
        store.put(record())
        await store.flush()
        await store.load()
    assert len(threads) == 1
    assert threading.get_ident() not in threads


async def test_a_failed_flush_keeps_the_batch_for_the_next_one(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Disk full: flush raises StorageError, one warning per outage, the newest value is kept."""
    caplog.set_level(logging.INFO, logger="exporter.state.storage")
    async with SqliteStore(db) as store:
        store.put(record("a"))
        await store.flush()
        pages = await on_worker(store, lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await on_worker(store, lambda c: c.execute(f"PRAGMA max_page_count={pages}"))
        store.put(record("b", labels=(("big", "x" * 20_000),)))
        with pytest.raises(StorageError, match="full"):
            await store.flush()
        store.put(record("b", labels=(("big", "y" * 20_000),)))  # newer than the failed batch
        store.put(record("c", labels=(("big", "z" * 20_000),)))
        with pytest.raises(StorageError):
            await store.flush()
        assert (store.pending, store.write_errors) == (2, 2)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "cannot save job state" in warnings[0].getMessage()
        await on_worker(store, lambda c: c.execute("PRAGMA max_page_count=1073741823"))
        await store.flush()
        assert store.pending == 0
        assert any("works again" in r.getMessage() for r in caplog.records)
    got = await reload(db)
    assert [(r.job_id, r.labels[0][1][:1]) for r in got] == [("a", "g"), ("b", "y"), ("c", "z")]


async def test_the_background_writer_survives_failed_writes(db: str, clock: FakeClock) -> None:
    """A write failing in the background is retried at the next interval, not fatal."""
    async with SqliteStore(db, clock=clock) as store:
        await settle()
        pages = await on_worker(store, lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await on_worker(store, lambda c: c.execute(f"PRAGMA max_page_count={pages}"))
        store.put(record(labels=(("big", "x" * 20_000),)))
        clock.advance(1.0)
        await settle()
        await on_worker(store, lambda c: c.execute("PRAGMA max_page_count=1073741823"))
        assert (store.pending, store.write_errors) == (1, 1)
        clock.advance(1.0)
        await settle()
        await store.flush()
        assert (store.pending, store.writes, store.failed) == (0, 1, None)
        assert store.flush_task is not None
        assert not store.flush_task.done()


async def test_a_batch_is_written_whole_or_not_at_all(db: str) -> None:
    """A statement failing mid-batch rolls back the batch's other rows; the retry writes all."""
    async with SqliteStore(db) as store:
        store.put(record("a"))
        await store.flush()
        make_db(
            db, "CREATE TRIGGER keep BEFORE DELETE ON jobs BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        store.put(record("b"))
        store.delete("fs", "a")
        with pytest.raises(StorageError, match="no"):
            await store.flush()
        assert not await on_worker(store, lambda c: c.in_transaction)
        assert [r[1] for r in rows(db)] == ["a"]
        make_db(db, "DROP TRIGGER keep")
        await store.flush()
    assert [r.job_id for r in await reload(db)] == ["b"]


async def test_close_on_a_full_disk_says_what_was_lost(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the last write fails, close logs how many jobs' changes were lost and returns."""
    async with SqliteStore(db) as store:
        pages = await on_worker(store, lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await on_worker(store, lambda c: c.execute(f"PRAGMA max_page_count={pages}"))
        store.put(record(labels=(("big", "x" * 20_000),)))
    assert store.pending == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["the last changes of 1 jobs were not saved"]
    assert await reload(db) == []


async def test_an_id_sqlite_cannot_store_is_skipped_not_fatal(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A job ID with a lone surrogate is logged and skipped; the rest of the batch is saved."""
    async with SqliteStore(db) as store:
        store.put(record("bad\ud800"))
        store.put(record("good"))
        await store.flush()
    assert [r.job_id for r in await reload(db)] == ["good"]
    assert any("not valid Unicode" in r.getMessage() for r in caplog.records)


async def test_a_dead_writer_is_reported_not_swallowed(db: str, clock: FakeClock) -> None:
    """A bug in the writer ends its task; failed says why and close() raises StorageError."""

    def boom(batch: object) -> None:
        raise RuntimeError("bug")

    store = SqliteStore(db, clock=clock)
    await store.open()
    await settle()
    store._file.write = boom  # type: ignore[method-assign]
    store.put(record())
    clock.advance(1.0)
    assert store.flush_task is not None
    await asyncio.wait([store.flush_task], timeout=10)
    assert isinstance(store.failed, RuntimeError)
    assert store.pending == 1  # the batch was put back
    with pytest.raises(StorageError, match="died") as raised:
        await store.close()
    assert raised.value.__cause__ is store.failed


async def test_a_cancelled_writer_is_not_an_error(db: str) -> None:
    """Cancelling the writer task is not a failure, and close still writes what is pending."""
    async with SqliteStore(db) as store:
        assert store.flush_task is not None
        store.flush_task.cancel()
        await settle()
        assert store.failed is None
        store.put(record())
    assert await reload(db) == [record()]


KILLED_WRITER = """
import asyncio, os, signal, sys
from exporter.state.records import decode
from exporter.state.storage import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    store.put(decode(sys.argv[2]))
    await store.flush()
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def run_killed_writer(path: str, rec: JobRecord) -> tuple[int, bool]:
    """Save ``rec`` in a process that is then SIGKILLed: its exit status, whether a -wal is left."""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", KILLED_WRITER, path, encode(rec)], timeout=60, check=False
    )
    return done.returncode, os.path.exists(path + "-wal")


async def test_what_a_killed_process_flushed_is_loaded(db: str) -> None:
    """A file left with its -wal by a SIGKILLed writer is healthy: the flushed record loads."""
    assert run_killed_writer(db, record()) == (-signal.SIGKILL, True)
    assert await reload(db) == [record()]
    assert aside_files(db) == []


# Files that cannot be used


def aside_files(db: str) -> list[str]:
    """Names of the files set aside next to ``db``."""
    return sorted(p.name for p in Path(db).parent.iterdir() if ".corrupt-" in p.name)


async def expect_set_aside(
    db: str, clock: FakeClock, caplog: pytest.LogCaptureFixture, *, access: Access = os.access
) -> None:
    """Opening ``db`` sets it aside with one warning and starts with an empty, working store."""
    original = read(db)
    async with SqliteStore(db, clock=clock, access=access) as store:
        assert await store.load() == []
        store.put(record())
    aside = f"{db}.corrupt-{int(clock.time())}"
    assert read(aside) == original
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unusable" in warnings[0]
    assert aside in warnings[0]
    assert await reload(db) == [record()]


async def test_a_file_of_garbage_is_set_aside(
    db: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that is not a database is kept as <path>.corrupt-<time>; the store starts empty."""
    write(db, b"\0garbage" * 1000)
    write(db + "-wal", b"its wal")
    await expect_set_aside(db, clock, caplog)
    now = int(clock.time())
    assert {f"state.db.corrupt-{now}", f"state.db.corrupt-{now}-wal"} <= set(aside_files(db))
    assert read(f"{db}.corrupt-{now}-wal") == b"its wal"


async def test_a_truncated_database_is_set_aside(
    db: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A database cut in half is corrupt and goes aside."""
    async with SqliteStore(db) as store:
        for i in range(300):
            store.put(record(f"j{i}"))
    data = read(db)
    write(db, data[: len(data) // 2])
    await expect_set_aside(db, clock, caplog)


@pytest.mark.parametrize(
    "statements",
    [
        ["CREATE TABLE jobs (x)", "PRAGMA user_version=99"],
        ["CREATE TABLE other (x)"],
        ["CREATE TABLE other (x)", "PRAGMA user_version=1"],
        [
            "CREATE TABLE jobs (x)",
            "INSERT INTO jobs VALUES (NULL)",
            "PRAGMA writable_schema=ON",
            "UPDATE sqlite_schema SET sql='CREATE TABLE jobs (x NOT NULL)'",
        ],
    ],
    ids=["future-schema", "foreign-database", "version-without-jobs", "fails-quick-check"],
)
async def test_a_database_not_of_our_schema_is_set_aside(
    db: str, clock: FakeClock, caplog: pytest.LogCaptureFixture, statements: list[str]
) -> None:
    """A newer schema, a database not ours, or one failing quick_check is kept aside."""
    make_db(db, *statements)
    await expect_set_aside(db, clock, caplog)


async def test_an_unreadable_file_is_set_aside(
    db: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A file this user may not read and write is set aside (root ignores modes, so faked)."""
    make_db(db, "CREATE TABLE x (y)")
    asked: list[tuple[str, int]] = []

    def access(path: str, mode: int) -> bool:
        asked.append((path, mode))
        return False

    await expect_set_aside(db, clock, caplog, access=access)
    assert asked == [(db, os.R_OK | os.W_OK)]  # only an existing file is checked


async def test_two_corrupt_files_in_one_second_both_stay(db: str, clock: FakeClock) -> None:
    """A second set-aside in the same second gets a numbered name; nothing is overwritten."""
    for _ in range(2):
        write(db, b"garbage" * 100)
        async with SqliteStore(db, clock=clock):
            pass
    now = int(clock.time())
    assert aside_files(db) == [f"state.db.corrupt-{now}", f"state.db.corrupt-{now}.1"]


async def test_a_file_that_cannot_be_set_aside_is_a_storage_error(
    db: str, clock: FakeClock
) -> None:
    """When the corrupt file cannot be renamed, open raises StorageError naming the path."""
    write(db, b"garbage" * 100)
    tried: list[tuple[str, str]] = []

    def refuse(src: str, dst: str) -> None:
        tried.append((src, dst))
        raise PermissionError(13, "Permission denied")

    store = SqliteStore(db, clock=clock, rename=refuse)
    with pytest.raises(StorageError, match="cannot be moved") as raised:
        await store.open()
    assert db in str(raised.value)
    assert tried == [(db, f"{db}.corrupt-{int(clock.time())}")]
    assert read(db) == b"garbage" * 100  # left where it was
    assert store._executor is None
    await store.close()


async def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    """No directory is created: a missing one is a StorageError naming the path."""
    path = str(tmp_path / "nope" / "state.db")
    with pytest.raises(StorageError, match="does not exist") as raised:
        async with SqliteStore(path):
            pass
    assert path in str(raised.value)
    assert not (tmp_path / "nope").exists()


async def test_a_directory_as_the_path_is_a_clear_error(tmp_path: Path) -> None:
    """A path that is a directory is a StorageError, and nothing is set aside."""
    with pytest.raises(StorageError, match="is a directory"):
        await SqliteStore(str(tmp_path)).open()


def test_the_flush_interval_must_be_positive(db: str) -> None:
    """A zero interval would spin the writer: it is refused."""
    with pytest.raises(ValueError, match="positive"):
        SqliteStore(db, flush_interval=0)


async def test_a_path_that_looks_like_a_uri_is_a_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path such as "file:x?mode=ro" names a file in the working directory."""
    monkeypatch.chdir(tmp_path)
    async with SqliteStore("file:x?mode=ro") as store:
        store.put(record())
    assert await reload(str(tmp_path / "file:x?mode=ro")) == [record()]


async def test_a_locked_database_is_an_error_not_corruption(db: str) -> None:
    """A file another process holds locked is a StorageError; it is not set aside."""
    make_db(db)
    async with SqliteStore(db):
        pass

    def impatient(
        database: str, *, timeout: float, isolation_level: None, uri: bool
    ) -> sqlite3.Connection:
        del timeout  # the store's 5 s would make the test wait: give up at once
        return sqlite3.connect(database, timeout=0, isolation_level=isolation_level, uri=uri)

    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StorageError, match="locked"):
            await SqliteStore(db, connect=impatient).open()
        holder.execute("ROLLBACK")
    assert aside_files(db) == []


async def test_a_file_sqlite_cannot_open_is_a_clear_error(db: str) -> None:
    """An error from sqlite3.connect itself becomes a StorageError naming the path."""
    asked: list[str] = []

    def refuse(
        database: str, *, timeout: float, isolation_level: None, uri: bool
    ) -> sqlite3.Connection:
        asked.append(database)
        raise sqlite3.OperationalError("unable to open database file")

    store = SqliteStore(db, connect=refuse)
    with pytest.raises(StorageError, match="unable to open") as raised:
        await store.open()
    assert str(raised.value) == f"cannot open {db}: unable to open database file"
    assert asked == [PurePath(db).as_uri()]  # a new file: straight to the read-write open
    await store.close()


async def test_rows_that_do_not_decode_are_skipped(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad row costs one log line and only itself: the other jobs load."""
    async with SqliteStore(db) as store:
        store.put(record("good"))
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("INSERT INTO jobs VALUES ('fs', 'garbled', '{not json')")
        conn.execute("INSERT INTO jobs VALUES ('fs', 'blob', x'00')")
        conn.execute("INSERT INTO jobs VALUES ('fs', 'moved', ?)", (encode(record("other")),))
    assert await reload(db) == [record("good")]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3


# Without --storage.path


async def test_the_memory_store_keeps_nothing() -> None:
    """MemoryStore loads nothing, accepts changes, and says state is lost on restart."""
    store: Store = MemoryStore()
    async with store:
        store.put(record())
        store.delete("fs", "j1")
        await store.flush()
        assert await store.load() == []
    await store.close()
    assert store.flush_task is None
    assert "lost on restart" in store.description


def test_a_file_system_without_wal_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Where SQLite cannot use WAL (here an in-memory database), a warning says so."""
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        statefile._prepare(conn)
    assert any("cannot use WAL" in r.getMessage() for r in caplog.records)
