"""The job table's series: which exist, their values, escaping, expiry, lint-clean output."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition.jobseries import JobSeries
from exporter.jobs.keys import Origin
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status
from tests.conftest import promtool_lint

NOW = 1_700_000_000.0


def rendered(retention: float) -> tuple[JobTable, JobSeries]:
    """A job table and the series renderer listening to it, as the exporter wires them."""
    table = JobTable(retention=retention)
    return table, JobSeries(table)


def samples(
    series: JobSeries, now: float = NOW
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on the page, keyed by name and label set."""
    text = series.render(now).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def names(series: JobSeries, now: float = NOW) -> set[str]:
    """The metric names present on the page."""
    return {name for name, _ in samples(series, now)}


def test_an_unpolled_job_has_only_its_info_series() -> None:
    """Before its first poll a job shows it is watched, and nothing made up."""
    table, series = rendered(retention=60)
    table.add(("evo", "a"), "evocalize_batch_report", (("team", "growth"),))
    got = samples(series)
    assert names(series) == {"batchjob_info", "batchjob_exporter_watched_jobs"}
    info = frozenset(
        {
            ("source", "evo"),
            ("job_id", "a"),
            ("api", "evocalize_batch_report"),
            ("vendor_status", ""),
            ("origin", "config"),
            ("team", "growth"),
        }
    )
    assert got[("batchjob_info", info)] == 1.0
    assert got[("batchjob_exporter_watched_jobs", frozenset({("source", "evo")}))] == 1.0


def test_values_the_api_did_not_give_have_no_series() -> None:
    """None counts and timestamps produce no series at all, never a zero."""
    table, series = rendered(retention=60)
    key = ("fs", "j1")
    table.add(key, "batch_import_job")
    table.record_success(key, Snapshot(Status.RUNNING, "PROCESSING", successful_items=42), NOW)
    present = names(series)
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
    table, series = rendered(retention=60)
    key = ("td", "r1")
    table.add(key, "report_job")
    table.record_success(key, Snapshot(Status.PENDING, "created"), NOW)
    status = {
        dict(labels)["status"]: value
        for (name, labels), value in samples(series).items()
        if name == "batchjob_status"
    }
    assert status == {s.value: float(s is Status.PENDING) for s in Status}


def test_duration_counts_from_created_while_running_and_freezes_when_finished() -> None:
    """Running: now - created at scrape time; finished: finished - created, forever."""
    table, series = rendered(retention=3600)
    key = ("fs", "j1")
    table.add(key, "batch_import_job")
    snap = Snapshot(Status.RUNNING, "PROCESSING", created=NOW - 100)
    table.record_success(key, snap, NOW)
    dur = ("batchjob_duration_seconds", frozenset({("source", "fs"), ("job_id", "j1")}))
    assert samples(series, NOW)[dur] == 100.0
    assert samples(series, NOW + 50)[dur] == 150.0
    done = Snapshot(Status.FAILED, "FAILED", created=NOW - 100, finished=NOW + 20)
    table.record_success(key, done, NOW + 60)
    assert samples(series, NOW + 500)[dur] == 120.0


def test_duration_without_api_times_uses_what_the_exporter_saw() -> None:
    """No created/finished from the API: from first seen to first seen finished."""
    table, series = rendered(retention=3600)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_success(key, Snapshot(Status.RUNNING, "isCompleted=false"), NOW)
    table.record_success(key, Snapshot(Status.COMPLETED, "isCompleted=true"), NOW + 30)
    table.record_success(key, Snapshot(Status.COMPLETED, "isCompleted=true"), NOW + 90)
    dur = ("batchjob_duration_seconds", frozenset({("source", "evo"), ("job_id", "r")}))
    assert samples(series, NOW + 1000)[dur] == 30.0


def test_a_job_finished_at_first_sight_without_api_times_has_no_duration() -> None:
    """Without a created time, a job first seen finished or not found shows no duration, not 0."""
    table, series = rendered(retention=3600)
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
    got = samples(series, NOW + 100)
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
    table, series = rendered(retention=60)
    table.set_sources(frozenset({"evo", "idle"}))
    table.add(("evo", "a"), "evocalize_batch_report")
    table.add(("old", "b"), "batch_import_job")
    got = samples(series)
    watched = {
        dict(k[1])["source"]: v for k, v in got.items() if k[0] == "batchjob_exporter_watched_jobs"
    }
    assert watched == {"evo": 1.0, "idle": 0.0, "old": 1.0}


def test_a_failed_poll_keeps_the_last_good_values() -> None:
    """poll_success drops to 0 while every other value stays as last read."""
    table, series = rendered(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_success(key, Snapshot(Status.RUNNING, "x", remaining_items=5), NOW)
    table.record_failure(key)
    got = samples(series)
    labels = frozenset({("source", "evo"), ("job_id", "r")})
    assert got[("batchjob_poll_success", labels)] == 0.0
    assert got[("batchjob_remaining_items", labels)] == 5.0
    assert got[("batchjob_last_poll_success_timestamp_seconds", labels)] == NOW


def test_finished_jobs_expire_after_retention_and_leave_no_series() -> None:
    """A finished job's series stay for the retention, then vanish entirely."""
    table, series = rendered(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_success(key, Snapshot(Status.COMPLETED, "x", total_items=3), NOW)
    assert table.expire(NOW + 59) == []
    assert "batchjob_total_items" in names(series)
    assert table.expire(NOW + 60) == [key]
    assert series.render(NOW + 60) == b""
    assert key not in table


def test_errors_by_code_series() -> None:
    """Each error code gets a series with its count."""
    table, series = rendered(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report")
    table.record_errors(key, (("EV_DUP", 2), ("unknown", 1)))
    got = samples(series)
    base = {("source", "evo"), ("job_id", "r")}
    assert got[("batchjob_errors_by_code", frozenset({*base, ("code", "EV_DUP")}))] == 2.0
    assert got[("batchjob_errors_by_code", frozenset({*base, ("code", "unknown")}))] == 1.0


def test_hostile_ids_and_labels_are_escaped() -> None:
    """Quotes, backslashes and newlines in IDs and values survive a parse round trip."""
    table, series = rendered(retention=60)
    job_id = 'a"b\\c\nd/../e'
    key = ("evo", job_id)
    table.add(key, "evocalize_batch_report", (("team", 'x"y'),))
    table.record_success(key, Snapshot(Status.UNKNOWN, 'weird "status"\n'), NOW)
    infos = [
        dict(labels) for (name, labels), _ in samples(series).items() if name == "batchjob_info"
    ]
    assert infos == [
        {
            "source": "evo",
            "job_id": job_id,
            "api": "evocalize_batch_report",
            "vendor_status": 'weird "status"\n',
            "origin": "config",
            "team": 'x"y',
        }
    ]


def test_removed_job_leaves_no_series_and_counts_drop() -> None:
    """remove() takes every series of the job and its watched count away."""
    table, series = rendered(retention=60)
    table.add(("evo", "a"), "evocalize_batch_report")
    table.add(("evo", "b"), "evocalize_batch_report")
    table.remove(("evo", "a"))
    table.remove(("evo", "a"))
    assert len(table) == 1
    assert b'job_id="a"' not in series.render(NOW)
    table.remove(("evo", "b"))
    assert series.render(NOW) == b""


def test_exposition_is_promtool_clean(promtool: str) -> None:
    """A page with every family present passes `promtool check metrics` with no warning."""
    table, series = rendered(retention=60)
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
    assert promtool_lint(promtool, series.render(NOW)) == ""


def test_a_running_job_created_in_the_future_has_a_zero_duration() -> None:
    """Clock skew never shows a negative duration; jobs beside it are unaffected."""
    table, series = rendered(retention=60)
    for job_id, created in (("ahead", NOW + 30), ("behind", NOW - 30)):
        table.add(("fs", job_id), "batch_import_job")
        snap = Snapshot(Status.RUNNING, "PROCESSING", created=created)
        table.record_success(("fs", job_id), snap, NOW)
    got = samples(series, NOW)
    dur = "batchjob_duration_seconds"
    assert got[(dur, frozenset({("source", "fs"), ("job_id", "ahead")}))] == 0.0
    assert got[(dur, frozenset({("source", "fs"), ("job_id", "behind")}))] == 30.0


def test_origin_is_the_info_label_after_vendor_status() -> None:
    """batchjob_info reads api, vendor_status, origin, own labels, then the vendor's."""
    table, series = rendered(retention=60)
    key = ("td", "r")
    table.add(key, "report_job", (("team", "growth"),), Origin.DIR)
    table.record_success(key, Snapshot(Status.PENDING, "created", info=(("name", "n"),)), NOW)
    (line,) = [x for x in series.render(NOW).splitlines() if x.startswith(b"batchjob_info{")]
    assert line == (
        b'batchjob_info{source="td",job_id="r",api="report_job",vendor_status="created",'
        b'origin="dir",team="growth",name="n"} 1'
    )


def test_relabelling_renders_the_new_labels_and_origin() -> None:
    """A relabelled job's info series changes at once; its other series stay."""
    table, series = rendered(retention=60)
    key = ("evo", "r")
    table.add(key, "evocalize_batch_report", (("team", "a"),), Origin.API)
    table.record_success(key, Snapshot(Status.RUNNING, "x", total_items=4), NOW)
    table.relabel(key, (("team", "b"),), Origin.CONFIG)
    infos = [dict(k[1]) for k in samples(series) if k[0] == "batchjob_info"]
    assert [(i["origin"], i["team"]) for i in infos] == [("config", "b")]
    ids = frozenset({("source", "evo"), ("job_id", "r")})
    assert samples(series)[("batchjob_total_items", ids)] == 4.0


def test_a_renderer_subscribed_late_shows_the_jobs_already_watched() -> None:
    """JobSeries made for a table with jobs renders them as if it had watched all along."""
    early, series = rendered(retention=60)
    late = JobTable(retention=60)
    for table in (early, late):
        table.add(("evo", "a"), "evocalize_batch_report", (("team", "t"),))
        table.record_success(("evo", "a"), Snapshot(Status.RUNNING, "x", created=NOW - 5), NOW)
    assert JobSeries(late).render(NOW + 1) == series.render(NOW + 1)
