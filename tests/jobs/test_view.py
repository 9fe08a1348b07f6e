"""A job's summary: what the registration API and the jobs page both read of a job."""

from __future__ import annotations

import pytest

from exporter.jobs.keys import Origin
from exporter.jobs.table import JobTable
from exporter.jobs.view import JobSummary, summarize
from exporter.model import Snapshot, Status

NOW = 1_700_000_000.0
KEY = ("fs", "abd123=")
API = "batch_import_job"


def current(table: JobTable) -> JobSummary:
    """The summary of the job at :data:`KEY`, which must be watched."""
    entry = table.get(KEY)
    assert entry is not None
    return summarize(entry)


def test_an_unpolled_job_lists_as_the_api_always_did() -> None:
    """Before any poll: the API's nine fields, the unknown ones null; nothing else known."""
    table = JobTable(retention=60)
    entry = table.add(KEY, API, (("team", "growth"),), Origin.API)
    summary = summarize(entry)
    assert summary.as_json() == {
        "source": "fs",
        "id": "abd123=",
        "api": API,
        "origin": "api",
        "labels": {"team": "growth"},
        "status": None,
        "vendor_status": None,
        "poll_success": None,
        "last_success": None,
    }
    assert (summary.duration(NOW), summary.done_items(), summary.errors_by_code) == (None, None, ())


def test_a_polled_job_has_its_counts_duration_and_errors() -> None:
    """Completed items come from total less remaining; a finished job's duration stops."""
    table = JobTable(retention=60)
    table.add(KEY, API)
    running = Snapshot(Status.RUNNING, "PROCESSING", total_items=100, remaining_items=60)
    table.record_success(KEY, running, NOW)
    summary = current(table)
    assert (summary.status, summary.completed_items, summary.done_items()) == (
        Status.RUNNING,
        40,
        40,
    )
    assert summary.duration(NOW + 30) == 30.0
    done = Snapshot(Status.FAILED, "FAILED", successful_items=90, error_items=10, created=NOW - 20)
    table.record_success(KEY, done, NOW + 50)
    table.record_errors(KEY, (("E1", 4), ("E2", 6)))
    summary = current(table)
    assert (summary.completed_items, summary.done_items()) == (None, 100)
    assert summary.duration(NOW + 1000) == 70.0
    assert summary.errors_by_code == (("E1", 4), ("E2", 6))
    assert summary.as_json()["status"] == "failed"
    assert summary.as_json()["last_success"] == NOW + 50


@pytest.mark.parametrize("reason", ["timeout", None])
def test_the_reason_of_failing_polls_is_kept_until_one_works(reason: str | None) -> None:
    """record_failure's reason shows while polls fail, and goes with the next good poll."""
    table = JobTable(retention=60)
    table.add(KEY, API)
    table.record_failure(KEY, "connection_error")
    table.record_failure(KEY, reason)
    summary = current(table)
    assert (summary.poll_success, summary.last_failure) == (False, reason)
    table.record_success(KEY, Snapshot(Status.RUNNING, "PROCESSING"), NOW)
    summary = current(table)
    assert (summary.poll_success, summary.last_failure) == (True, None)
