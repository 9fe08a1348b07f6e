"""The batch jobs overview: every watched job's status, progress, errors and duration."""

from __future__ import annotations

from .board import UID_JOB, UID_OVERVIEW, dashboard, query_variable
from .fields import STATUS_COLORS, Json, by_name, mapping, status_overrides, targets, thresholds
from .panels import Graph, bargauge, graphs, row, stat, table
from .promql import (
    FINISHED,
    JOBS,
    KEY,
    TEAM,
    TEAM_INFO,
    TEAM_LABEL,
    per_job,
    processed,
    running,
    successful_plus_error,
)

LABEL = "{{source}} / {{job_id}}"
BLUE_PURPLE = {"mode": "continuous-BlPu"}
GREEN_RED = {"mode": "continuous-GrYlRd"}
RED = {"mode": "fixed", "fixedColor": "red"}

# The jobs table's value columns B, C, ... (query A brings the labels): title, query.
VALUE_COLUMNS = (
    ("Progress", f"{processed(JOBS)} / on ({KEY}) batchjob_total_items{{{JOBS}}} {TEAM}"),
    *(
        (title, per_job(f"batchjob_{metric}{{{JOBS}}} {TEAM}"))
        for title, metric in (
            ("Remaining", "remaining_items"),
            ("Successful", "successful_items"),
            ("Errors", "error_items"),
            ("Duration", "duration_seconds"),
        )
    ),
)
# Grafana names the value column of a table query "Value #<refId>".
VALUE_FIELDS = [f"Value #{chr(ord('B') + i)}" for i in range(len(VALUE_COLUMNS))]
# Headers of the jobs table's label columns.
LABEL_COLUMNS = {
    "vendor_status": "Vendor status",
    "job_id": "Job ID",
    "source": "Source",
    "status": "Status",
    "api": "API",
    TEAM_LABEL: TEAM_LABEL.capitalize(),
}
COLUMN_ORDER = ["source", "job_id", "status", *VALUE_FIELDS, "vendor_status", "api", TEAM_LABEL]

ERROR_GRAPHS = (
    Graph(
        "Error items",
        "Items that failed, per job.",
        ((f"batchjob_error_items{{{JOBS}}} {TEAM}", LABEL),),
    ),
    Graph(
        "New error items per minute",
        "How fast error items grow (slope over the rate interval).",
        ((f"60 * deriv(batchjob_error_items{{{JOBS}}}[$__rate_interval]) {TEAM}", LABEL),),
    ),
    Graph(
        "Error ratio",
        "Error items / (successful + error items), per job.",
        (
            (
                f"batchjob_error_items{{{JOBS}}} / on ({KEY}) "
                f"({successful_plus_error(JOBS)} > 0) {TEAM}",
                LABEL,
            ),
        ),
        unit="percentunit",
        max_value=1,
    ),
)


def job_link() -> list[Json]:
    """The drill-down from a row of the jobs table to the single-job dashboard."""
    url = (
        f"/d/{UID_JOB}/batch-job?${{__url_time_range}}&var-datasource=${{datasource}}"
        "&var-source=${__data.fields.source}&var-job_id=${__data.fields.job_id}"
    )
    return [{"title": "Open job ${__data.fields.job_id}", "url": url, "targetBlank": False}]


def _column_overrides() -> list[Json]:
    """Job ID links to the job; status, progress, duration and errors are formatted."""
    status_text = {s: (s, c) for s, c in STATUS_COLORS.items()}
    color_text = {"id": "custom.cellOptions", "value": {"type": "color-text"}}
    gauge = {"type": "gauge", "mode": "basic", "valueDisplayMode": "text"}
    return [
        by_name("Job ID", {"id": "links", "value": job_link()}),
        by_name("Status", {"id": "mappings", "value": mapping(status_text)}, color_text),
        by_name(
            "Progress",
            {"id": "unit", "value": "percentunit"},
            {"id": "min", "value": 0},
            {"id": "max", "value": 1},
            {"id": "custom.cellOptions", "value": gauge},
        ),
        by_name("Duration", {"id": "unit", "value": "s"}),
        by_name(
            "Errors",
            {"id": "thresholds", "value": thresholds((None, "text"), (1, "red"))},
            color_text,
        ),
    ]


def _jobs_table() -> Json:
    """One row per job: the queries' rows merged on the job's labels, then tidied."""
    labels = (
        f"(batchjob_status{{{JOBS}}} == 1) * on ({KEY}) "
        f"group_left (api, vendor_status, {TEAM_LABEL}) {TEAM_INFO}"
    )
    hidden = ["Time", "Value #A", "__name__", "job", "instance"]
    renamed = dict(zip(VALUE_FIELDS, (title for title, _ in VALUE_COLUMNS), strict=True))
    organize = {
        "excludeByName": dict.fromkeys(hidden, True),
        "indexByName": {name: i for i, name in enumerate(COLUMN_ORDER)},
        "renameByName": {**renamed, **LABEL_COLUMNS},
    }
    return table(
        "Jobs",
        "One row per job with a known status. Click a job ID to open the single-job "
        "dashboard. Progress is completed / total (or successful + error / total).",
        targets((labels, ""), *((query, "") for _, query in VALUE_COLUMNS), table=True),
        size=(24, 10),
        transformations=[{"id": "merge", "options": {}}, {"id": "organize", "options": organize}],
        overrides=_column_overrides(),
    )


def _ranked(
    title: str,
    description: str,
    expr: str,
    *,
    color: Json,
    size: tuple[int, int] = (8, 8),
    unit: str = "short",
    max_value: float | None = None,
) -> Json:
    """Bars of one value per job, largest first."""
    defaults: Json = {"color": color}
    if max_value is not None:
        defaults["max"] = max_value
    return bargauge(
        title,
        description,
        targets((f"sort_desc({expr})", LABEL), instant=True),
        size=size,
        unit=unit,
        defaults=defaults,
    )


def _status() -> list[Json]:
    """How many jobs in which status, the jobs table, and how far the running ones are."""
    return [
        row("Status"),
        stat(
            "Watched jobs",
            "Jobs the exporter watches for the selected sources, teams and jobs.",
            targets((f"count({TEAM_INFO})", "jobs"), instant=True),
            color_mode="none",
        ),
        stat(
            "Jobs by status",
            "How many jobs are in each status, across the selected sources. A job the "
            "vendor has not answered for yet has no status.",
            targets((f"sum by (status) (batchjob_status{{{JOBS}}} {TEAM})", "{{status}}")),
            size=(20, 4),
            overrides=status_overrides(),
        ),
        _jobs_table(),
        table(
            "Jobs per source and status",
            "Count of jobs in each status, one row per source.",
            targets(
                (f"sum by (source, status) (batchjob_status{{{JOBS}}} {TEAM})", ""), table=True
            ),
            size=(8, 8),
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {
                        "columnField": "status",
                        "rowField": "source",
                        "valueField": "Value",
                        "emptyValue": "zero",
                    },
                }
            ],
        ),
        _ranked(
            "Active jobs: progress",
            "Running jobs whose API reports a total: completed / total.",
            f"{processed(JOBS)} / on ({KEY}) batchjob_total_items{{{JOBS}}} {running(JOBS)} {TEAM}",
            color=BLUE_PURPLE,
            unit="percentunit",
            max_value=1,
        ),
        _ranked(
            "Active jobs without a total: items processed",
            "Running jobs whose API reports no total (Fullstory): successful + error items.",
            f"{successful_plus_error(JOBS)} unless on ({KEY}) batchjob_total_items "
            f"{running(JOBS)} {TEAM}",
            color=BLUE_PURPLE,
        ),
    ]


def _errors() -> list[Json]:
    """Error items per job over time, and failed items by the vendor's error code."""
    return [
        row("Errors"),
        *graphs(ERROR_GRAPHS, size=(6, 8)),
        bargauge(
            "Failed items by code",
            "Failed items by the vendor's error code, summed over the selected jobs "
            "(Evocalize's errors endpoint, read once a job finishes; code=unknown when absent).",
            targets(
                (
                    f"sort_desc(sum by (code) (batchjob_errors_by_code{{{JOBS}}} {TEAM}))",
                    "{{code}}",
                ),
                instant=True,
            ),
            size=(6, 8),
            defaults={"color": RED},
        ),
    ]


def _durations() -> list[Json]:
    """How long finished jobs took, and the running jobs that take longest."""
    return [
        row("Durations"),
        _ranked(
            "Durations of finished jobs",
            "Finished minus created for completed, failed, canceled and deleted jobs "
            "(kept for finished_job_retention).",
            f"batchjob_duration_seconds{{{JOBS}}} and on ({KEY}) "
            f'(batchjob_status{{{JOBS}, status=~"{FINISHED}"}} == 1) {TEAM}',
            color=GREEN_RED,
            size=(12, 8),
            unit="s",
        ),
        _ranked(
            "Slowest running jobs",
            "The ten running jobs that have been running longest.",
            f"topk(10, batchjob_duration_seconds{{{JOBS}}} {running(JOBS)} {TEAM})",
            color=GREEN_RED,
            size=(12, 8),
            unit="s",
        ),
    ]


def _variables() -> list[Json]:
    """Source, then the team and job ID of that source's jobs."""
    return [
        query_variable("source", "Source", "label_values(batchjob_info, source)", multi=True),
        query_variable(
            TEAM_LABEL,
            TEAM_LABEL.capitalize(),
            f'label_values(batchjob_info{{source=~"$source"}}, {TEAM_LABEL})',
            multi=True,
        ),
        query_variable(
            "job_id",
            "Job",
            f'label_values(batchjob_info{{source=~"$source", {TEAM_LABEL}=~"${TEAM_LABEL}"}}, '
            "job_id)",
            multi=True,
        ),
    ]


def overview() -> Json:
    """Every watched job: status, progress, errors, durations."""
    return dashboard(
        UID_OVERVIEW,
        "Batch jobs overview",
        "Vendor batch jobs watched by batch-job-exporter: status, progress, errors, durations.",
        [*_status(), *_errors(), *_durations()],
        _variables(),
    )
