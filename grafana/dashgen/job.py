"""The single-job dashboard: the drill-down target of the overview's jobs table."""

from __future__ import annotations

from .board import UID_JOB, custom_variable, dashboard, query_variable
from .fields import Json, fixed_colors, status_overrides, targets, thresholds, two_state
from .panels import bargauge, stat, state_timeline, table, timeseries
from .promql import KEY, processed, running

JOB = 'source="$source", job_id="$job_id"'
# The item counts of the Items graph (each API reports some of them), with their colors.
ITEMS = {"remaining": "blue", "successful": "green", "error": "red", "total": "text"}


def _stats() -> list[Json]:
    """The top line: status, vendor status, progress, ETA, duration, last poll."""
    return [
        stat(
            "Status",
            "The exporter's status for the job (pending, running, completed, failed, ...).",
            targets((f"batchjob_status{{{JOB}}} == 1", "{{status}}")),
            text_mode="name",
            color_mode="background",
            overrides=status_overrides(),
        ),
        stat(
            "Vendor status",
            "The vendor's own status word (batchjob_info{vendor_status}).",
            targets((f"batchjob_info{{{JOB}}}", "{{vendor_status}}")),
            text_mode="name",
            color_mode="none",
        ),
        stat(
            "Progress",
            "Completed / total; no value for APIs that report no total.",
            targets((f"{processed(JOB)} / on ({KEY}) batchjob_total_items{{{JOB}}}", "progress")),
            unit="percentunit",
            defaults={"min": 0, "max": 1, "thresholds": thresholds((None, "blue"), (1, "green"))},
        ),
        stat(
            "ETA",
            "Remaining items / the rate remaining items went down over the rate window "
            "(only while the job runs and moves).",
            targets(
                (
                    f"batchjob_remaining_items{{{JOB}}} / "
                    f"(-deriv(batchjob_remaining_items{{{JOB}}}[$window]) > 0) {running(JOB)}",
                    "ETA",
                )
            ),
            unit="s",
            color_mode="none",
        ),
        stat(
            "Duration",
            "Finished minus created; while running, now minus created.",
            targets((f"batchjob_duration_seconds{{{JOB}}}", "duration")),
            unit="s",
            color_mode="none",
        ),
        stat(
            "Last poll",
            "Whether the exporter's last poll of this job succeeded.",
            targets((f"batchjob_poll_success{{{JOB}}}", "last poll")),
            color_mode="background",
            defaults=two_state("OK", "failing"),
        ),
    ]


def _history() -> list[Json]:
    """Items and completion rate over time, then the status and vendor status timelines."""
    return [
        timeseries(
            "Items",
            "Remaining, successful and error items over time (whichever the API reports).",
            targets(*((f"batchjob_{name}_items{{{JOB}}}", name) for name in ITEMS)),
            size=(16, 9),
            table_legend=True,
            overrides=fixed_colors(ITEMS),
        ),
        timeseries(
            "Completion rate",
            "Items processed per second (slope of completed, or of successful, items "
            "over the rate window).",
            targets(
                (
                    f"deriv(batchjob_completed_items{{{JOB}}}[$window]) "
                    f"or deriv(batchjob_successful_items{{{JOB}}}[$window])",
                    "items/s",
                )
            ),
            size=(8, 9),
        ),
        state_timeline(
            "Status timeline",
            "The job's status over time.",
            targets((f"batchjob_status{{{JOB}}} == 1", "{{status}}")),
            overrides=status_overrides(),
        ),
        state_timeline(
            "Vendor status timeline",
            "The vendor's raw status over time.",
            targets((f"batchjob_info{{{JOB}}}", "{{vendor_status}}")),
        ),
    ]


def _details() -> list[Json]:
    """Errors by code and every label of the job's info series."""
    hide_values = {"Time": True, "Value": True, "__name__": True}
    return [
        bargauge(
            "Errors by code",
            "Failed items by the vendor's error code (Evocalize, read once the job finishes).",
            targets((f"sort_desc(batchjob_errors_by_code{{{JOB}}})", "{{code}}"), instant=True),
            defaults={"color": {"mode": "fixed", "fixedColor": "red"}},
        ),
        table(
            "Info labels",
            "Every label of batchjob_info: API, vendor status, the job's configured labels, "
            "and the report's name, format and timezone where the API has them.",
            targets((f"batchjob_info{{{JOB}}}", ""), table=True),
            size=(16, 8),
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": hide_values,
                        "indexByName": {},
                        "renameByName": {},
                    },
                }
            ],
        ),
    ]


def single_job() -> Json:
    """One job in detail: the drill-down target of the overview's jobs table."""
    variables = [
        query_variable("source", "Source", "label_values(batchjob_info, source)", multi=False),
        query_variable(
            "job_id",
            "Job",
            'label_values(batchjob_info{source="$source"}, job_id)',
            multi=False,
        ),
        custom_variable("window", "Rate window", ["5m", "10m", "30m", "1h"], "10m"),
    ]
    return dashboard(
        UID_JOB,
        "Batch job",
        "One vendor batch job: items over time, status, ETA, vendor status, errors by code.",
        [*_stats(), *_history(), *_details()],
        variables,
    )
