"""The job table: which series exist, their values, escaping, expiry, lint-clean output."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status
from tests.conftest import promtool_lint

NOW = 1_700_000_000.0


def samples(
    table: JobTable, now: float = NOW
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on the page, keyed by name and label set."""
    text = table.render(now).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def names(table: JobTable, now: float = NOW) -> set[str]:
    """The metric names present on the page."""
    return {name for name, _ in samples(table, now)}


def test_an_unpolled_job_has_only_its_info_series() -> None:
    """Before its first poll a job shows it is watched, and nothing made up."""
    table = JobTable(retention=60)
    table.add(("evo", "a"), "evocalize_batch_report", (("team", "growth"),))
    got = samples(table)
    assert names(table) == {"batchjob_info", "batchjob_exporter_watched_jobs"}
    info = frozenset(
        {
            ("source", "evo"),
            ("job_id", "a"),
            ("api", "evocalize_batch_report"),
            ("vendor_status", ""),
            ("team", "growth"),
        }
    )
    assert got[("batchjob_info", info)] == 1.0
    assert got[("batchjob_exporter_watched_jobs", frozenset({("source", "evo")}))] == 1.0


def test_values_the_api_did_not_give_have_no_series() -> None:
    """None counts and timestamps produce no series at all, never a zero."""
    table = JobTable(retention=60)
    key = ("fs", "j1")
    table.add(key, "batch_import_job")
    table.record_success(key, Snapshot(Status.RUNNING, "PROCESSING", successful_items=42), NOW)
    present = names(table)
    assert "batchjob_successful_items" in present
    for absent in (
        "batchjob_total_items",
        "batchjob_error_items",
        "batchjob_created_timestamp_seconds",
        "batchjob_finished_timestamp_seconds",
        "batchjob_errors_by_code",
    ):
        assert absent not in present


def test_status_is_a_state_set_with_exactly_one_true() -> None:
    """Every status value has a series and exactly the current one is 1."""
    table = JobTable(retention=60)
    key = ("td", "r1")
    table.add(key, "report_job")
    table.record_success(key, Snapshot(Status.PENDING, "created"), NOW)
    status = {
        dict(labels)["status"]: value
        for (name, labels), value in samples(table).items()
        if name == "batchjob_status"
    }
    assert status == {s.value: float(s is Status.PENDING) for s in Status}


def test_duration_counts_from_created_while_running_and_freezes_when_finished() -> None:
    """Running: now - created at scrape time; finished: finished - created, forever."""
    table = JobTable(retention=3600)
    key = ("fs", "j1")
    table.add(key, "batch_import_job")
    snap = Snapshot(Status.RUNNING, "PROCESSING", created=NOW - 100)
    table.record_success(key, snap, NOW)
    dur = ("batchjob_duration_seconds", frozenset({("source", "fs"), ("job_id", "j1")}))
    assert samples(table, NOW)[dur] == 100.0
    assert samples(table, NOW + 50)[dur] == 150.0
    done = Snapshot(Status.FAILED, "FAILED", created=NOW - 100, finished=NOW + 20)
    table.record_success(key, done, NOW + 60)
    assert samples(table, NOW + 500)[dur] == 120.0


def test_duration_without_api_times_uses_what_the_exporter_saw() -> None:
    """No created/finished from the API: from first seen to first seen finished."""
    table = JobTable(retention=3600)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_success(key, Snapshot(Status.RUNNING, "isCompleted=false"), NOW)
    table.record_success(key, Snapshot(Status.COMPLETED, "isCompleted=true"), NOW + 30)
    table.record_success(key, Snapshot(Status.COMPLETED, "isCompleted=true"), NOW + 90)
    dur = ("batchjob_duration_seconds", frozenset({("source", "evo"), ("job_id", "r")}))
    assert samples(table, NOW + 1000)[dur] == 30.0


def test_a_job_finished_at_first_sight_without_api_times_has_no_duration() -> None:
    """Without a created time, a job first seen finished or not found shows no duration, not 0."""
    table = JobTable(retention=3600)
    for job, snap in (
        ("done", Snapshot(Status.COMPLETED, "isCompleted=true")),
        ("ended", Snapshot(Status.COMPLETED, "done", finished=NOW - 50)),
        ("gone", Snapshot(Status.NOT_FOUND, "")),
    ):
        table.add(("evo", job), "evocalize_batch_report")
        table.record_success(("evo", job), snap, NOW)
    table.add(("evo", "made"), "evocalize_batch_report")
    table.record_success(
        ("evo", "made"),
        Snapshot(Status.COMPLETED, "done", created=NOW - 80, finished=NOW - 50),
        NOW,
    )
    got = samples(table, NOW + 100)
    durations = {
        dict(k[1])["job_id"]: v for k, v in got.items() if k[0] == "batchjob_duration_seconds"
    }
    assert durations == {"made": 30.0}
    assert (
        got[
            (
                "batchjob_status",
                frozenset({("source", "evo"), ("job_id", "gone"), ("status", "not_found")}),
            )
        ]
        == 1.0
    )


def test_a_configured_source_without_jobs_shows_zero_watched_jobs() -> None:
    """Every configured source has a watched-jobs series, 0 when empty; a job of another counts."""
    table = JobTable(retention=60)
    table.set_sources(frozenset({"evo", "idle"}))
    table.add(("evo", "a"), "evocalize_batch_report")
    table.add(("old", "b"), "batch_import_job")
    got = samples(table)
    watched = {
        dict(k[1])["source"]: v for k, v in got.items() if k[0] == "batchjob_exporter_watched_jobs"
    }
    assert watched == {"evo": 1.0, "idle": 0.0, "old": 1.0}


def test_a_failed_poll_keeps_the_last_good_values() -> None:
    """poll_success drops to 0 while every other value stays as last read."""
    table = JobTable(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_success(key, Snapshot(Status.RUNNING, "x", remaining_items=5), NOW)
    table.record_failure(key)
    got = samples(table)
    labels = frozenset({("source", "evo"), ("job_id", "r")})
    assert got[("batchjob_poll_success", labels)] == 0.0
    assert got[("batchjob_remaining_items", labels)] == 5.0
    assert got[("batchjob_last_poll_success_timestamp_seconds", labels)] == NOW


def test_finished_jobs_expire_after_retention_and_leave_no_series() -> None:
    """A finished job's series stay for the retention, then vanish entirely."""
    table = JobTable(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_success(key, Snapshot(Status.COMPLETED, "x", total_items=3), NOW)
    assert table.expire(NOW + 59) == []
    assert "batchjob_total_items" in names(table)
    assert table.expire(NOW + 60) == [key]
    assert table.render(NOW + 60) == b""
    assert key not in table


def test_errors_by_code_series() -> None:
    """Each error code gets a series with its count."""
    table = JobTable(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_errors(key, (("EV_DUP", 2), ("unknown", 1)))
    got = samples(table)
    base = {("source", "evo"), ("job_id", "r")}
    assert got[("batchjob_errors_by_code", frozenset({*base, ("code", "EV_DUP")}))] == 2.0
    assert got[("batchjob_errors_by_code", frozenset({*base, ("code", "unknown")}))] == 1.0


def test_hostile_ids_and_labels_are_escaped() -> None:
    """Quotes, backslashes and newlines in IDs and values survive a parse round trip."""
    table = JobTable(retention=60)
    job_id = 'a"b\\c\nd/../e'
    key = ("evo", job_id)
    table.add(key, "evocalize_batch_report", (("team", 'x"y'),))
    table.record_success(key, Snapshot(Status.UNKNOWN, 'weird "status"\n'), NOW)
    infos = [
        dict(labels) for (name, labels), _ in samples(table).items() if name == "batchjob_info"
    ]
    assert infos == [
        {
            "source": "evo",
            "job_id": job_id,
            "api": "evocalize_batch_report",
            "vendor_status": 'weird "status"\n',
            "team": 'x"y',
        }
    ]


def test_removed_job_leaves_no_series_and_counts_drop() -> None:
    """remove() takes every series of the job and its watched count away."""
    table = JobTable(retention=60)
    table.add(("evo", "a"), "evocalize_batch_report")
    table.add(("evo", "b"), "evocalize_batch_report")
    table.remove(("evo", "a"))
    table.remove(("evo", "a"))
    assert len(table) == 1
    assert b'job_id="a"' not in table.render(NOW)
    table.remove(("evo", "b"))
    assert table.render(NOW) == b""


def test_exposition_is_promtool_clean(promtool: str) -> None:
    """A page with every family present passes `promtool check metrics` with no warning."""
    table = JobTable(retention=60)
    table.add(("evo", "r"), "evocalize_batch_report", (("team", "t"),))
    table.record_success(
        ("evo", "r"),
        Snapshot(
            Status.COMPLETED,
            "isCompleted=true",
            total_items=3,
            remaining_items=0,
            completed_items=3,
            successful_items=2,
            error_items=1,
        ),
        NOW,
    )
    table.record_errors(("evo", "r"), (("EV", 1),))
    table.add(("fs", "j"), "batch_import_job")
    table.record_success(
        ("fs", "j"), Snapshot(Status.RUNNING, "PROCESSING", created=NOW - 5, finished=None), NOW
    )
    table.record_failure(("fs", "j"))
    assert promtool_lint(promtool, table.render(NOW)) == ""


def test_a_running_job_created_in_the_future_has_a_zero_duration() -> None:
    """Clock skew never shows a negative duration; jobs beside it are unaffected."""
    table = JobTable(retention=60)
    for job_id, created in (("ahead", NOW + 30), ("behind", NOW - 30)):
        table.add(("fs", job_id), "batch_import_job")
        snap = Snapshot(Status.RUNNING, "PROCESSING", created=created)
        table.record_success(("fs", job_id), snap, NOW)
    got = samples(table, NOW)
    dur = "batchjob_duration_seconds"
    assert got[(dur, frozenset({("source", "fs"), ("job_id", "ahead")}))] == 0.0
    assert got[(dur, frozenset({("source", "fs"), ("job_id", "behind")}))] == 30.0
