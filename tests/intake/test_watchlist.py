"""Jobs from the config, the API and the watch dir side by side, through the running exporter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from exporter.jobs.keys import Origin
from exporter.model import Snapshot, Status
from exporter.simulator import Fault
from exporter.state.records import JobRecord
from exporter.state.storage import MemoryStore
from tests.harness import EVO, FS, Harness, source_yaml, until

MakeHarness = Callable[..., Awaitable[Harness]]


def origins(h: Harness) -> dict[tuple[str, str], str]:
    """Each watched job's origin, from ``GET /api/v1/jobs``' view."""
    assert h.exporter is not None
    return {(str(j["source"]), str(j["id"])): str(j["origin"]) for j in h.exporter.watchlist.jobs()}


async def scans_until(h: Harness, check: Callable[[], bool], what: str) -> None:
    """Move the clock a second at a time, letting each directory scan's thread finish.

    A scan reads files in a worker thread, so a fake-clock step alone does not wait
    for it; bounded at two minutes of fake time.
    """
    for _ in range(120):
        if check():
            return
        await h.advance(1)
        await asyncio.sleep(0.02)
    await until(check, what, within=1.0)


async def test_dir_jobs_are_watched_beside_config_and_api_jobs(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """Each origin shows in batchjob_info; the config wins a key it shares with the dir."""
    h = await make_harness()
    for job_id in ("conf", "api", "dir1", "dir2"):
        h.sim.add_job(FS, job_id, total=10_000, rate=1)
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "a.txt").write_text("fs dir1\nfs conf\n", encoding="utf-8")
    (watch / "b.yaml").write_text("fs: [{id: dir2, labels: {team: data}}]\n", encoding="utf-8")
    exporter = await h.start(
        source_yaml(h.sim, FS, "fs", ["conf"]), global_=f"  watch_dir: '{watch}'\n"
    )
    assert exporter.watchlist.watch("fs", "api", ())
    assert origins(h) == {
        ("fs", "conf"): "config",
        ("fs", "api"): "api",
        ("fs", "dir1"): "dir",
        ("fs", "dir2"): "dir",
    }
    await h.advance(10)
    assert h.status("fs", "dir2") == "running"
    info = [k for k in h.samples() if k[0] == "batchjob_info" and ("job_id", "dir2") in k[1]]
    assert {("origin", "dir"), ("team", "data")} <= info[0][1]


async def test_a_deleted_file_unwatches_only_its_dir_jobs(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """Removing a job file drops its jobs but never a config or API job of the same key."""
    h = await make_harness()
    watch = tmp_path / "watch"
    watch.mkdir()
    jobs = watch / "jobs.txt"
    jobs.write_text("fs d1\nfs conf\nfs api\n", encoding="utf-8")
    exporter = await h.start(
        source_yaml(h.sim, FS, "fs", ["conf"]), global_=f"  watch_dir: '{watch}'\n"
    )
    assert not exporter.watchlist.watch("fs", "api", ())  # the dir got it first
    assert exporter.watchlist.unwatch("fs", "api")
    assert exporter.watchlist.watch("fs", "api", ())
    jobs.unlink()
    await scans_until(h, lambda: ("fs", "d1") not in origins(h), "the dir job to go")
    assert origins(h) == {("fs", "conf"): "config", ("fs", "api"): "api"}


async def test_reload_moves_the_watch_dir(make_harness: MakeHarness, tmp_path: Path) -> None:
    """A reload naming another watch_dir drops the old dir's jobs and takes the new one's."""
    h = await make_harness()
    old, new = tmp_path / "old", tmp_path / "new"
    for d, job_id in ((old, "o1"), (new, "n1")):
        d.mkdir()
        (d / "jobs.txt").write_text(f"fs {job_id}\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    sources = source_yaml(h.sim, FS, "fs", [])
    exporter = await h.start(sources, global_=f"  watch_dir: '{old}'\n", path=path)
    assert origins(h) == {("fs", "o1"): "dir"}
    path.write_text(h.config_text(sources, f"  watch_dir: '{new}'\n"), encoding="utf-8")
    assert await exporter.reload("test") is None
    assert origins(h) == {("fs", "n1"): "dir"}
    path.write_text(h.config_text(sources), encoding="utf-8")
    assert await exporter.reload("test") is None
    assert origins(h) == {}


async def test_dir_takes_back_a_job_the_config_dropped(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A key both configured and listed in the dir stays watched when the config drops it."""
    h = await make_harness()
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "jobs.txt").write_text("fs both\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    global_ = f"  watch_dir: '{watch}'\n"
    exporter = await h.start(source_yaml(h.sim, FS, "fs", ["both"]), global_=global_, path=path)
    assert origins(h) == {("fs", "both"): "config"}
    path.write_text(h.config_text(source_yaml(h.sim, FS, "fs", []), global_), encoding="utf-8")
    assert await exporter.reload("test") is None
    await scans_until(h, lambda: origins(h) == {("fs", "both"): "dir"}, "the dir to take it back")


def record(source: str, job_id: str, api: str, origin: str, **state: object) -> JobRecord:
    """A saved job as a previous run would have left it."""
    fields: dict[str, object] = {
        "labels": (),
        "first_seen": None,
        "seen_finished": None,
        "snapshot": None,
        "errors_by_code": None,
        "poll_success": None,
        "last_success": None,
        "expires_at": None,
    }
    fields.update(state)
    return JobRecord(source, job_id, api, Origin(origin), **fields)  # type: ignore[arg-type]


class SavedStore(MemoryStore):
    """A store that hands back fixed records and remembers deletions."""

    def __init__(self, records: list[JobRecord]) -> None:
        super().__init__()
        self.records = records
        self.deleted: list[tuple[str, str]] = []

    async def load(self) -> list[JobRecord]:
        """The fixed records."""
        return self.records

    def delete(self, source: str, job_id: str) -> None:
        """Remember a deletion."""
        self.deleted.append((source, job_id))


async def test_restore_drops_stale_records_and_keeps_finished_jobs_unpolled(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """Records of gone sources, changed APIs, unlisted config jobs and gone dir files go."""
    h = await make_harness()
    h.sim.add_job(FS, "run", total=10_000, rate=1)
    h.sim.add_job(EVO, "run", total=10_000, rate=1)
    watch = tmp_path / "watch"
    watch.mkdir()
    now = h.clock.time()
    done = Snapshot(Status.COMPLETED, "COMPLETED", successful_items=5, error_items=1)
    store = SavedStore(
        [
            record("fs", "run", FS, "config", first_seen=now - 100),
            record("evo", "run", EVO, "config", first_seen=now - 100),
            record("fs", "done", FS, "api", snapshot=done, last_success=now - 5,
                   poll_success=True, expires_at=now + 30),
            record("fs", "unlisted", FS, "config"),
            record("gone", "x", FS, "api"),
            record("fs", "other-api", EVO, "api"),
            record("fs", "dir-gone", FS, "dir"),
        ]
    )  # fmt: skip
    sources = source_yaml(h.sim, FS, "fs", ["run"]) + source_yaml(h.sim, EVO, "evo", ["run"])
    await h.start(sources, global_=f"  watch_dir: '{watch}'\n", store=store)
    assert origins(h) == {
        ("fs", "run"): "config",
        ("evo", "run"): "config",
        ("fs", "done"): "api",
    }
    # The stale records in the order saved, then the dir job pruned because its file is gone.
    assert store.deleted == [
        ("fs", "unlisted"),
        ("gone", "x"),
        ("fs", "other-api"),
        ("fs", "dir-gone"),
    ]
    await h.advance(10)
    assert h.value("batchjob_successful_items", source="fs", job_id="done") == 5
    assert not [r for r in h.sim.requests if r.job_id == "done"]
    # Evocalize gives no times: a running job's duration counts from the restored first
    # sighting, 100 s before the restart, to now, 10 s after it.
    assert h.value("batchjob_duration_seconds", source="evo", job_id="run") == 110
    await h.advance(30)
    assert ("fs", "done") not in origins(h)
    assert store.deleted[-1] == ("fs", "done")


async def test_restored_dir_jobs_wait_for_a_file_that_reads_well(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A broken job file at start-up keeps restored dir jobs until the directory reads whole."""
    h = await make_harness()
    watch = tmp_path / "watch"
    watch.mkdir()
    jobs = watch / "a.yaml"
    jobs.write_text("fs: [\n", encoding="utf-8")
    done = Snapshot(Status.COMPLETED, "COMPLETED", successful_items=5)
    now = h.clock.time()
    saved = record("fs", "done", FS, "dir", snapshot=done, last_success=now, expires_at=now + 600)
    store = SavedStore([saved])
    await h.start(
        source_yaml(h.sim, FS, "fs", []), global_=f"  watch_dir: '{watch}'\n", store=store
    )
    await h.advance(5)
    assert origins(h) == {("fs", "done"): "dir"}
    jobs.write_text("fs: [other]\n", encoding="utf-8")
    await scans_until(h, lambda: origins(h) == {("fs", "other"): "dir"}, "the restored job to go")
    assert not [r for r in h.sim.requests if r.job_id == "done"]


async def test_an_answer_for_the_old_api_is_not_recorded_after_a_reload(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """A poll in flight when its source changes API does not write into the fresh job."""
    h = await make_harness()
    h.sim.add_job(FS, "j1", total=1, rate=100)
    path = tmp_path / "config.yaml"
    exporter = await h.start(source_yaml(h.sim, FS, "s", []), path=path)
    assert exporter.watchlist.watch("s", "j1", ())
    h.sim.set_fault(FS, Fault("slow", delay=0.3, count=1))
    h.clock.advance(10)
    await until(lambda: not exporter.idle(), "the slow poll to start")
    path.write_text(h.config_text(source_yaml(h.sim, EVO, "s", [])), encoding="utf-8")
    assert await exporter.reload("test") is None
    await until(exporter.idle, "the slow poll to finish")
    (job,) = exporter.watchlist.jobs()
    assert job["api"] == EVO
    assert job["status"] is None
