"""The watched directory: the union of its job files turned into add/remove calls."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest

from exporter.clock import FakeClock
from exporter.intake.dirscan import MAX_FILE_BYTES, Listing
from exporter.intake.watchdir import DirWatcher, Offload
from exporter.jobs.keys import Labels
from tests.conftest import settle

SOURCES = frozenset({"fs", "evo", "td"})
LOGGER = "exporter.intake.watchdir"

# --- the watcher -------------------------------------------------------------------


class Recorder:
    """The add/remove callbacks, keeping the resulting job set and every call."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], Labels] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: type[Exception] | None = None

    def add(self, source: str, job_id: str, labels: Labels) -> None:
        """Record an add, or refuse it when told to."""
        if self.refuse is not None:
            raise self.refuse(f"source {source!r} is full")
        self.calls.append(("add", source, job_id, labels))
        self.jobs[(source, job_id)] = labels

    def remove(self, source: str, job_id: str) -> None:
        """Record a remove."""
        self.calls.append(("remove", source, job_id))
        del self.jobs[(source, job_id)]

    def take(self) -> list[tuple[Any, ...]]:
        """The calls since the last take."""
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def rec() -> Recorder:
    """Fresh callbacks."""
    return Recorder()


@pytest.fixture
def make(tmp_path: Path, clock: FakeClock, rec: Recorder) -> Callable[..., DirWatcher]:
    """Build a watcher on tmp_path/jobs (created) with the recorder's callbacks."""
    (tmp_path / "jobs").mkdir()

    def build(
        sources: Callable[[], Collection[str]] = lambda: SOURCES,
        offload: Offload = asyncio.to_thread,
        spy: ScanSpy | None = None,
    ) -> DirWatcher:
        kind = DirWatcher if spy is None else functools.partial(SpiedWatcher, spy)
        return kind(
            str(tmp_path / "jobs"),
            sources=sources,
            add=rec.add,
            remove=rec.remove,
            clock=clock,
            offload=offload,
        )

    return build


_WRITES = itertools.count(1)


def write(path: Path, text: str | bytes) -> None:
    """Write a file with an mtime no earlier write had (two quick writes may share a tick)."""
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    ns = path.stat().st_mtime_ns + next(_WRITES) * 1_000_000_000
    os.utime(path, ns=(ns, ns))


async def twice(watcher: DirWatcher) -> None:
    """Two scans: a changed file is read once it has held still for one."""
    await watcher.scan()
    await watcher.scan()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The watcher's warning lines so far."""
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


async def test_first_scan_reads_every_file_at_once(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """Files present at start are read at the first scan, both formats together."""
    write(tmp_path / "jobs/a.yaml", "fs: [{id: a, labels: {team: x}}]\n")
    write(tmp_path / "jobs/b.txt", "evo b\n")
    watcher = make()
    await watcher.scan()
    assert rec.jobs == {("fs", "a"): (("team", "x"),), ("evo", "b"): ()}
    assert dict(watcher.jobs) == rec.jobs


async def test_new_and_changed_files_are_read_once_they_hold_still(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """A change is picked up at the second scan that sees it; labels change as an upsert."""
    watcher = make()
    await watcher.scan()
    write(tmp_path / "jobs/a.yaml", "fs: [a, b]\n")
    await watcher.scan()
    assert rec.take() == []
    await watcher.scan()
    assert rec.take() == [("add", "fs", "a", ()), ("add", "fs", "b", ())]
    write(tmp_path / "jobs/a.yaml", "fs: [a, {id: b, labels: {team: y}}]\n")
    await twice(watcher)
    assert rec.take() == [("add", "fs", "b", (("team", "y"),))]
    await twice(watcher)
    assert rec.take() == []


async def test_a_file_still_changing_is_not_read(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """A file whose fingerprint moves between scans waits until it stops moving."""
    watcher = make()
    await watcher.scan()
    write(tmp_path / "jobs/a.txt", "")
    await watcher.scan()
    write(tmp_path / "jobs/a.txt", "fs a\n")
    await watcher.scan()
    assert rec.take() == []
    await watcher.scan()
    assert rec.take() == [("add", "fs", "a", ())]


async def test_deleting_a_file_removes_only_the_jobs_no_other_file_lists(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """The union counts: a job listed in two files stays while one still lists it."""
    write(tmp_path / "jobs/a.txt", "fs a\nfs both\n")
    write(tmp_path / "jobs/b.txt", "fs both\n")
    watcher = make()
    await watcher.scan()
    rec.take()
    (tmp_path / "jobs/a.txt").unlink()
    await watcher.scan()
    assert rec.take() == [("remove", "fs", "a")]
    (tmp_path / "jobs/b.txt").unlink()
    await watcher.scan()
    assert rec.take() == [("remove", "fs", "both")]
    assert rec.jobs == {}


async def test_conflicting_labels_keep_the_first_file_and_warn(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Files are taken in name order; a later file's other labels are reported once."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    write(tmp_path / "jobs/a.yaml", "fs: [{id: j, labels: {team: a}}]\n")
    write(tmp_path / "jobs/b.yaml", "fs: [{id: j, labels: {team: b}}]\n")
    watcher = make()
    await watcher.scan()
    await twice(watcher)
    assert rec.jobs == {("fs", "j"): (("team", "a"),)}
    assert warnings(caplog) == [
        f'watch_dir {tmp_path}/jobs: b.yaml: fs "j": other labels than in a.yaml, kept'
    ]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            "fs: [a\n",
            "a.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence)",
        ),
        (b"fs: [a, \xff]\n", "a.yaml:1: not valid UTF-8"),
        (
            b"#" * (MAX_FILE_BYTES + 1),
            f"a.yaml: {MAX_FILE_BYTES + 1} bytes, over the {MAX_FILE_BYTES} limit",
        ),
        ("[fs, a]\n", "a.yaml:1: expected a mapping of sources to jobs, got a list"),
    ],
)
async def test_an_unusable_file_keeps_its_last_good_jobs_and_warns_once(  # noqa: PLR0917 - pytest hands fixtures over as parameters
    tmp_path: Path,
    make: Callable[..., DirWatcher],
    rec: Recorder,
    caplog: pytest.LogCaptureFixture,
    bad: str | bytes,
    problem: str,
) -> None:
    """Half-written, not UTF-8, too big or not a mapping: one warning, no job dropped."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    write(tmp_path / "jobs/a.yaml", "fs: [a, b]\n")
    watcher = make()
    await watcher.scan()
    write(tmp_path / "jobs/a.yaml", bad)
    for _ in range(4):
        await watcher.scan()
    assert rec.jobs == {("fs", "a"): (), ("fs", "b"): ()}
    assert warnings(caplog) == [f"watch_dir {tmp_path}/jobs: {problem}; keeping its 2 jobs"]
    write(tmp_path / "jobs/a.yaml", "fs: [b]\n")
    await twice(watcher)
    assert rec.jobs == {("fs", "b"): ()}


async def test_entry_problems_are_logged_once_per_change_and_capped(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Each problem of a changed file is logged once, at most ten, then a count."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    write(tmp_path / "jobs/a.txt", "fs ok\n" + "nope x\n" * 12)
    watcher = make()
    for _ in range(3):
        await watcher.scan()
    prefix = f"watch_dir {tmp_path}/jobs: "
    unknown = 'unknown source "nope" (known: evo, fs, td)'
    assert warnings(caplog) == [
        *(f"{prefix}a.txt:{line}: {unknown}" for line in range(2, 12)),
        f"{prefix}... and 2 more",
    ]
    assert rec.jobs == {("fs", "ok"): ()}


async def test_hidden_entries_and_the_kubernetes_layout(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """Dot entries are skipped, links are followed, and a ..data swap is a change."""
    watcher = make()
    root = tmp_path / "jobs"
    (root / "..2024_01").mkdir()
    write(root / "..2024_01/a.txt", "fs one\n")
    (root / "..data").symlink_to("..2024_01")
    (root / "a.txt").symlink_to("..data/a.txt")
    write(root / ".hidden.txt", "fs hidden\n")
    (root / "dir.txt").mkdir()
    os.mkfifo(root / "fifo.txt")
    (root / "dangling.txt").symlink_to("nowhere.txt")
    write(root / "notes.md", "fs md\n")
    await twice(watcher)
    assert rec.take() == [("add", "fs", "one", ())]
    (root / "..2024_02").mkdir()
    write(root / "..2024_02/a.txt", "fs two\n")
    (root / "..data_tmp").symlink_to("..2024_02")
    (root / "..data_tmp").rename(root / "..data")
    await twice(watcher)
    assert rec.take() == [("remove", "fs", "one"), ("add", "fs", "two", ())]


async def test_sources_follow_the_provider(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """An unknown source's entry counts once the source exists, and goes when it goes."""
    sources = {"fs"}
    write(tmp_path / "jobs/a.txt", "fs a\nevo b\n")
    watcher = make(lambda: sources)
    await watcher.scan()
    assert rec.take() == [("add", "fs", "a", ())]
    sources.add("evo")
    await watcher.scan()
    assert rec.take() == [("add", "evo", "b", ())]
    sources.discard("fs")
    await watcher.scan()
    assert rec.take() == [("remove", "fs", "a")]


async def test_a_missing_directory_warns_once_and_keeps_the_jobs(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """No directory, no listing: nothing is removed, and one warning says so."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    write(tmp_path / "jobs/a.txt", "fs a\n")
    watcher = make()
    await watcher.scan()
    (tmp_path / "jobs").rename(tmp_path / "away")
    for _ in range(3):
        await watcher.scan()
    assert rec.jobs == {("fs", "a"): ()}
    assert warnings(caplog) == [
        f"watch_dir {tmp_path}/jobs: cannot list: No such file or directory; its jobs stay"
    ]
    (tmp_path / "away").rename(tmp_path / "jobs")
    (tmp_path / "jobs/a.txt").unlink()
    await watcher.scan()
    assert rec.jobs == {}


async def test_a_refused_add_is_logged_once_and_retried_every_scan(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A full source refuses: one warning, and the job is watched once the source takes it."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    write(tmp_path / "jobs/a.txt", "fs a\nfs b\n")
    rec.refuse = OverflowError
    watcher = make()
    for _ in range(3):
        await watcher.scan()
    assert rec.jobs == {}
    assert warnings(caplog) == [
        f"watch_dir {tmp_path}/jobs: 2 jobs failed: add: OverflowError: source 'fs' is full"
    ]
    rec.refuse = None
    await watcher.scan()
    assert rec.jobs == {("fs", "a"): (), ("fs", "b"): ()}
    assert caplog.records[-1].getMessage() == (
        f"watch_dir {tmp_path}/jobs: every listed job is watched now"
    )


async def test_a_failing_remove_is_logged_and_the_others_still_go(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A remove callback that raises is counted in one warning; the job is dropped anyway."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    write(tmp_path / "jobs/a.txt", "fs a\nfs b\n")
    watcher = make()
    await watcher.scan()
    del rec.jobs[("fs", "a")]  # the owner dropped it behind the watcher's back
    (tmp_path / "jobs/a.txt").unlink()
    await watcher.scan()
    assert rec.jobs == {}
    assert dict(watcher.jobs) == {}
    assert warnings(caplog) == [
        f"watch_dir {tmp_path}/jobs: 1 jobs failed: remove: KeyError: ('fs', 'a')"
    ]


async def test_resync_adds_every_job_again(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """After resync() the next scan calls add for every listed job, once."""
    write(tmp_path / "jobs/a.txt", "fs a\n")
    watcher = make()
    await watcher.scan()
    rec.take()
    watcher.resync()
    await twice(watcher)
    assert rec.take() == [("add", "fs", "a", ())]


async def test_thousands_of_ids_in_one_thread_hop(
    tmp_path: Path, make: Callable[..., DirWatcher], rec: Recorder
) -> None:
    """5,000 IDs over two files, one thread hop per scan, and one call for one changed label."""
    hops: list[int] = []

    async def counting(work: Callable[[], Listing]) -> Listing:
        listing = await asyncio.to_thread(work)
        hops.append(len(listing.present))
        return listing

    write(tmp_path / "jobs/a.txt", "".join(f"fs id-{n}\n" for n in range(2500)))
    ids = "".join(f"  - {{id: y-{n}, labels: {{n: '{n}'}}}}\n" for n in range(2500))
    write(tmp_path / "jobs/b.yaml", "evo:\n" + ids)
    watcher = make(offload=counting)
    await watcher.scan()
    assert len(rec.take()) == 5000
    write(tmp_path / "jobs/b.yaml", "evo:\n" + ids.replace("n: '7'", "n: seven"))
    await twice(watcher)
    assert rec.take() == [("add", "evo", "y-7", (("n", "seven"),))]
    assert hops == [2, 2, 2]  # one hop a scan, each listing both files


class ScanSpy:
    """Counts the scans a watcher starts and lets a test await each one's end."""

    def __init__(self) -> None:
        self.started = 0
        self.done: asyncio.Queue[None] = asyncio.Queue()

    async def next(self) -> None:
        """Wait for the next scan to end, then let the loop get back to its wait."""
        await asyncio.wait_for(self.done.get(), 5)
        await settle()


class SpiedWatcher(DirWatcher):
    """A watcher telling its spy when each scan starts and ends."""

    def __init__(self, spy: ScanSpy, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._spy = spy

    async def scan(self) -> None:
        """Scan as a watcher does, counted."""
        self._spy.started += 1
        try:
            await super().scan()
        finally:
            self._spy.done.put_nowait(None)


@pytest.fixture
def scans() -> ScanSpy:
    """A spy for the watchers built with ``make(spy=...)``."""
    return ScanSpy()


async def test_the_clock_drives_the_rescans(
    tmp_path: Path,
    make: Callable[..., DirWatcher],
    rec: Recorder,
    clock: FakeClock,
    scans: ScanSpy,
) -> None:
    """Entering scans once; then one scan per interval of the fake clock, none in between."""
    async with make(spy=scans):
        await scans.next()
        write(tmp_path / "jobs/a.txt", "fs a\n")
        clock.advance(1.9)
        await settle()
        assert scans.started == 1
        clock.advance(0.1)
        await scans.next()
        assert rec.jobs == {}
        clock.advance(2.0)
        await scans.next()
        assert rec.jobs == {("fs", "a"): ()}
        assert scans.started == 3


async def test_a_failing_scan_is_logged_once_and_the_loop_lives_on(  # noqa: PLR0917 - pytest hands fixtures over as parameters
    tmp_path: Path,
    make: Callable[..., DirWatcher],
    rec: Recorder,
    clock: FakeClock,
    scans: ScanSpy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A scan that raises is one error line; later scans still run and recover."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    broken = [False]

    def sources() -> Collection[str]:
        if broken[0]:
            raise RuntimeError("provider broke")
        return SOURCES

    write(tmp_path / "jobs/a.txt", "fs a\n")
    async with make(sources, spy=scans) as watcher:
        await scans.next()
        broken[0] = True
        for _ in range(3):
            clock.advance(2.0)
            await scans.next()
        broken[0] = False
        (tmp_path / "jobs/a.txt").unlink()
        clock.advance(2.0)
        await scans.next()
        assert watcher.task is not None
        assert watcher.task.done() is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"watch_dir {tmp_path}/jobs: scan failed: RuntimeError: provider broke"
    ]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos.count(f"watch_dir {tmp_path}/jobs: scans work again") == 1
    assert rec.jobs == {}


async def test_close_is_idempotent_and_stops_the_loop(make: Callable[..., DirWatcher]) -> None:
    """close() twice is fine; the task is gone and no later scan runs."""
    watcher = make()
    async with watcher:
        task = watcher.task
        assert task is not None
        await watcher.close()
        await watcher.close()
        assert task.done() is True
        assert watcher.task is None
    await watcher.close()


async def test_an_outside_cancel_ends_the_loop(
    make: Callable[..., DirWatcher], clock: FakeClock
) -> None:
    """Cancelling the task is not swallowed as a scan failure."""
    async with make() as watcher:
        task = watcher.task
        assert task is not None
        await settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() is True
