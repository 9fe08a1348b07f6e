"""Generate the Grafana dashboards in ``grafana/dashboards/`` (dashboards as code).

    python grafana/generate.py           # rewrite the JSON files
    python grafana/generate.py --check   # exit 1 and show a diff if a committed file is stale

Edit this file, never the JSON: ``tests/test_dashboards.py`` fails when the committed
JSON differs from what this script writes.  Only the standard library is used.

Every query goes through the ``datasource`` template variable (``${datasource}``), so
the same files work imported through the Grafana UI (``__inputs`` asks for a
Prometheus data source) and provisioned from files (the variable falls back to a
Prometheus data source of the instance).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x
MIN_GRAFANA = "10.4.0"
TAG = "batch-jobs"

UID_OVERVIEW = "batchjob-overview"
UID_JOB = "batchjob-job"
UID_EXPORTER = "batchjob-exporter"

# The job label used for the "team" variable; rename it here if your config uses another.
TEAM_LABEL = "team"

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
Json = dict[str, Any]

FINISHED = "completed|failed|canceled|deleted"
STATUS_COLORS = {
    "pending": "yellow",
    "running": "blue",
    "completed": "green",
    "failed": "red",
    "canceled": "purple",
    "deleted": "text",
    "not_found": "orange",
    "unknown": "text",
}
# A job's identity across scrape targets: join on it so two exporters never collide.
KEY = "job, instance, source, job_id"


# -- building blocks ------------------------------------------------------------------------


def target(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, table: bool = False
) -> Json:
    """One PromQL query of a panel."""
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant or table,
        "legendFormat": legend or "__auto",
        "range": not (instant or table),
        "refId": ref,
    }


def targets(*exprs: tuple[str, str], instant: bool = False, table: bool = False) -> list[Json]:
    """Several queries, lettered A, B, C, ..."""
    return [
        target(expr, legend, ref=chr(ord("A") + i), instant=instant, table=table)
        for i, (expr, legend) in enumerate(exprs)
    ]


def reduce_options() -> Json:
    """Show the last value of each series."""
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def legend(*, table: bool = False) -> Json:
    """A legend below the graph."""
    return {
        "calcs": ["lastNotNull", "max"] if table else [],
        "displayMode": "table" if table else "list",
        "placement": "bottom",
        "showLegend": True,
    }


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Absolute thresholds; the first step's value is ``None`` (the base)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))
FIXED_BLUE = {"mode": "fixed", "fixedColor": "blue"}


def mapping(values: dict[str, tuple[str, str]]) -> list[Json]:
    """Value mappings: raw value -> (display text, color)."""
    return [
        {
            "type": "value",
            "options": {
                raw: {"text": text, "color": color, "index": i}
                for i, (raw, (text, color)) in enumerate(values.items())
            },
        }
    ]


def two_state(ok: str, bad: str) -> Json:
    """Field defaults for a 0/1 series: 1 shows ``ok`` in green, 0 shows ``bad`` in red."""
    return {
        "mappings": mapping({"1": (ok, "green"), "0": (bad, "red")}),
        "thresholds": thresholds((None, "red"), (1, "green")),
    }


def status_overrides() -> list[Json]:
    """One color per job status, for panels whose series are named after the status."""
    return [
        {
            "matcher": {"id": "byName", "options": status},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
        }
        for status, color in STATUS_COLORS.items()
    ]


def panel(
    kind: str,
    title: str,
    description: str,
    tgts: list[Json],
    *,
    size: tuple[int, int],
    unit: str = "short",
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
    options: Json | None = None,
    transformations: list[Json] | None = None,
) -> Json:
    """A panel; ``gridPos`` and ``id`` are filled in by :func:`layout`."""
    field_defaults: Json = {"unit": unit, "color": {"mode": "palette-classic"}}
    field_defaults.update(defaults or {})
    built: Json = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": size[1], "w": size[0], "x": 0, "y": 0},
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": tgts,
    }
    if transformations:
        built["transformations"] = transformations
    return built


def stat(
    title: str,
    description: str,
    tgts: list[Json],
    *,
    size: tuple[int, int] = (4, 4),
    unit: str = "short",
    text_mode: str = "auto",
    color_mode: str = "value",
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    """A stat panel showing each series' last value."""
    base: Json = {"color": {"mode": "thresholds"}, "thresholds": GREEN}
    base.update(defaults or {})
    return panel(
        "stat",
        title,
        description,
        tgts,
        size=size,
        unit=unit,
        defaults=base,
        overrides=overrides,
        options={
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce_options(),
            "showPercentChange": False,
            "textMode": text_mode,
            "wideLayout": True,
        },
    )


def timeseries(
    title: str,
    description: str,
    tgts: list[Json],
    *,
    size: tuple[int, int] = (8, 8),
    unit: str = "short",
    table_legend: bool = False,
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
) -> Json:
    """A time series graph."""
    base: Json = {
        "custom": {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "never",
            "spanNulls": False,
        },
        "min": 0,
    }
    base.update(defaults or {})
    return panel(
        "timeseries",
        title,
        description,
        tgts,
        size=size,
        unit=unit,
        defaults=base,
        overrides=overrides,
        options={
            "legend": legend(table=table_legend),
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def bargauge(
    title: str,
    description: str,
    tgts: list[Json],
    *,
    size: tuple[int, int] = (8, 8),
    unit: str = "short",
    defaults: Json | None = None,
) -> Json:
    """Horizontal bars, one per series (instant queries)."""
    base: Json = {"color": {"mode": "thresholds"}, "thresholds": GREEN, "min": 0}
    base.update(defaults or {})
    return panel(
        "bargauge",
        title,
        description,
        tgts,
        size=size,
        unit=unit,
        defaults=base,
        options={
            "displayMode": "gradient",
            "maxVizHeight": 300,
            "minVizHeight": 16,
            "minVizWidth": 8,
            "namePlacement": "auto",
            "orientation": "horizontal",
            "reduceOptions": reduce_options(),
            "showUnfilled": True,
            "sizing": "auto",
            "valueMode": "color",
        },
    )


def state_timeline(
    title: str,
    description: str,
    tgts: list[Json],
    *,
    size: tuple[int, int] = (12, 6),
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
    show_value: str = "never",
) -> Json:
    """A state timeline: one row per series."""
    base: Json = {
        "color": FIXED_BLUE,
        "custom": {"fillOpacity": 80, "lineWidth": 0},
        "thresholds": GREEN,
    }
    base.update(defaults or {})
    return panel(
        "state-timeline",
        title,
        description,
        tgts,
        size=size,
        defaults=base,
        overrides=overrides,
        options={
            "alignValue": "left",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": show_value,
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def table(
    title: str,
    description: str,
    tgts: list[Json],
    *,
    size: tuple[int, int] = (24, 10),
    overrides: list[Json] | None = None,
    transformations: list[Json] | None = None,
) -> Json:
    """A table of instant query results."""
    return panel(
        "table",
        title,
        description,
        tgts,
        size=size,
        defaults={
            "color": {"mode": "thresholds"},
            "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True},
            "thresholds": GREEN,
        },
        overrides=overrides,
        options={
            "cellHeight": "sm",
            "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
            "showHeader": True,
        },
        transformations=transformations,
    )


def row(title: str) -> Json:
    """A full-width row header."""
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
        "panels": [],
    }


def layout(panels: list[Json]) -> list[Json]:
    """Place panels left to right, wrapping at 24 columns; number them from 1."""
    x = y = line = 0
    for number, p in enumerate(panels, start=1):
        pos = p["gridPos"]
        if x + pos["w"] > 24 or p["type"] == "row":
            x, y, line = 0, y + line, 0
        pos["x"], pos["y"] = x, y
        p["id"] = number
        x += pos["w"]
        line = max(line, pos["h"])
    return panels


def ds_variable() -> Json:
    """The data source picker every query goes through.

    ``${DS_PROMETHEUS}`` is replaced by the data source chosen in the UI import; a
    provisioned dashboard, where nothing replaces it, falls back to a Prometheus
    data source of the instance.
    """
    return {
        "current": {"selected": False, "text": "Prometheus", "value": "${DS_PROMETHEUS}"},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(
    name: str, label: str, definition: str, *, multi: bool, all_value: str | None = ".*"
) -> Json:
    """A variable filled from ``label_values(...)``; multi-select ones have "All"."""
    variable: Json = {
        "current": {},
        "datasource": DS,
        "definition": definition,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {"query": definition, "refId": "StandardVariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if multi and all_value is not None:
        variable["allValue"] = all_value
    return variable


def custom_variable(name: str, label: str, values: list[str], default: str) -> Json:
    """A fixed list of choices."""
    return {
        "current": {"selected": True, "text": default, "value": default},
        "hide": 0,
        "includeAll": False,
        "label": label,
        "multi": False,
        "name": name,
        "options": [{"selected": v == default, "text": v, "value": v} for v in values],
        "query": ",".join(values),
        "skipUrlSync": False,
        "type": "custom",
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], variables: list[Json]
) -> Json:
    """A whole dashboard, ready for the UI import and for file provisioning."""
    kinds = sorted({p["type"] for p in panels if p["type"] != "row"})
    names = {
        "bargauge": "Bar gauge",
        "stat": "Stat",
        "state-timeline": "State timeline",
        "table": "Table",
        "timeseries": "Time series",
    }
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes batch-job-exporter",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__elements": {},
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": MIN_GRAFANA},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": k, "name": names[k], "version": ""} for k in kinds),
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "Batch job dashboards",
                "type": "dashboards",
            }
        ],
        "panels": layout(panels),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG, "prometheus"],
        "templating": {"list": [ds_variable(), *variables]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# -- PromQL shared by the dashboards -----------------------------------------------------------

JOBS = 'source=~"$source", job_id=~"$job_id"'
# Appended to a per-job expression: keep only jobs of the selected team(s).  "All" is
# ".*", which also matches jobs without the label.
TEAM = f'and on ({KEY}) batchjob_info{{{JOBS}, {TEAM_LABEL}=~"${TEAM_LABEL}"}}'


def running(sel: str) -> str:
    """Appended to a per-job expression: keep only jobs that are running."""
    return f'and on ({KEY}) (batchjob_status{{{sel}, status="running"}} == 1)'


def per_job(expr: str) -> str:
    """``expr`` with only the job's identity as labels: no ``__name__``.

    Grafana's merge transformation puts two tables' rows together only where every
    column they share agrees; a metric name left in each would split a job's row.
    """
    return f"max by ({KEY}) ({expr})"


def processed(sel: str) -> str:
    """Items processed: ``completed`` where the API sends it, else successful + error."""
    return (
        f"(batchjob_completed_items{{{sel}}} or on ({KEY}) "
        f'sum by ({KEY}) ({{__name__=~"batchjob_(successful|error)_items", {sel}}}))'
    )


def successful_plus_error(sel: str) -> str:
    """Successful + error items, whichever of the two the API sends."""
    return f'sum by ({KEY}) ({{__name__=~"batchjob_(successful|error)_items", {sel}}})'


# -- Batch jobs overview -----------------------------------------------------------------------


def job_link() -> list[Json]:
    """The drill-down from a row of the jobs table to the single-job dashboard."""
    url = (
        f"/d/{UID_JOB}/batch-job?${{__url_time_range}}&var-datasource=${{datasource}}"
        "&var-source=${__data.fields.source}&var-job_id=${__data.fields.job_id}"
    )
    return [{"title": "Open job ${__data.fields.job_id}", "url": url, "targetBlank": False}]


def overview() -> Json:
    """Every watched job: status, progress, errors, durations."""
    label = "{{source}} / {{job_id}}"
    status_text = {s: (s, c) for s, c in STATUS_COLORS.items()}
    jobs_table = table(
        "Jobs",
        "One row per job with a known status. Click a job ID to open the single-job "
        "dashboard. Progress is completed / total (or successful + error / total).",
        targets(
            (
                f"(batchjob_status{{{JOBS}}} == 1) * on ({KEY}) "
                f"group_left (api, vendor_status, {TEAM_LABEL}) "
                f'batchjob_info{{{JOBS}, {TEAM_LABEL}=~"${TEAM_LABEL}"}}',
                "",
            ),
            (f"{processed(JOBS)} / on ({KEY}) batchjob_total_items{{{JOBS}}} {TEAM}", ""),
            (per_job(f"batchjob_remaining_items{{{JOBS}}} {TEAM}"), ""),
            (per_job(f"batchjob_successful_items{{{JOBS}}} {TEAM}"), ""),
            (per_job(f"batchjob_error_items{{{JOBS}}} {TEAM}"), ""),
            (per_job(f"batchjob_duration_seconds{{{JOBS}}} {TEAM}"), ""),
            table=True,
        ),
        size=(24, 10),
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {
                        "Time": True,
                        "Value #A": True,
                        "__name__": True,
                        "job": True,
                        "instance": True,
                    },
                    "indexByName": {
                        "source": 0,
                        "job_id": 1,
                        "status": 2,
                        "Value #B": 3,
                        "Value #C": 4,
                        "Value #D": 5,
                        "Value #E": 6,
                        "Value #F": 7,
                        "vendor_status": 8,
                        "api": 9,
                        TEAM_LABEL: 10,
                    },
                    "renameByName": {
                        "Value #B": "Progress",
                        "Value #C": "Remaining",
                        "Value #D": "Successful",
                        "Value #E": "Errors",
                        "Value #F": "Duration",
                        "vendor_status": "Vendor status",
                        "job_id": "Job ID",
                        "source": "Source",
                        "status": "Status",
                        "api": "API",
                        TEAM_LABEL: TEAM_LABEL.capitalize(),
                    },
                },
            },
        ],
        overrides=[
            {
                "matcher": {"id": "byName", "options": "Job ID"},
                "properties": [{"id": "links", "value": job_link()}],
            },
            {
                "matcher": {"id": "byName", "options": "Status"},
                "properties": [
                    {"id": "mappings", "value": mapping(status_text)},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            },
            {
                "matcher": {"id": "byName", "options": "Progress"},
                "properties": [
                    {"id": "unit", "value": "percentunit"},
                    {"id": "min", "value": 0},
                    {"id": "max", "value": 1},
                    {
                        "id": "custom.cellOptions",
                        "value": {"type": "gauge", "mode": "basic", "valueDisplayMode": "text"},
                    },
                ],
            },
            {
                "matcher": {"id": "byName", "options": "Duration"},
                "properties": [{"id": "unit", "value": "s"}],
            },
            {
                "matcher": {"id": "byName", "options": "Errors"},
                "properties": [
                    {"id": "thresholds", "value": thresholds((None, "text"), (1, "red"))},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            },
        ],
    )
    panels = [
        row("Status"),
        stat(
            "Watched jobs",
            "Jobs the exporter watches for the selected sources, teams and jobs.",
            targets(
                (f'count(batchjob_info{{{JOBS}, {TEAM_LABEL}=~"${TEAM_LABEL}"}})', "jobs"),
                instant=True,
            ),
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
        jobs_table,
        table(
            "Jobs per source and status",
            "Count of jobs in each status, one row per source.",
            targets(
                (f"sum by (source, status) (batchjob_status{{{JOBS}}} {TEAM})", ""),
                table=True,
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
        bargauge(
            "Active jobs: progress",
            "Running jobs whose API reports a total: completed / total.",
            targets(
                (
                    f"sort_desc({processed(JOBS)} / on ({KEY}) batchjob_total_items{{{JOBS}}} "
                    f"{running(JOBS)} {TEAM})",
                    label,
                ),
                instant=True,
            ),
            unit="percentunit",
            defaults={"max": 1, "color": {"mode": "continuous-BlPu"}},
        ),
        bargauge(
            "Active jobs without a total: items processed",
            "Running jobs whose API reports no total (Fullstory): successful + error items.",
            targets(
                (
                    f"sort_desc({successful_plus_error(JOBS)} "
                    f"unless on ({KEY}) batchjob_total_items "
                    f"{running(JOBS)} {TEAM})",
                    label,
                ),
                instant=True,
            ),
            defaults={"color": {"mode": "continuous-BlPu"}},
        ),
        row("Errors"),
        timeseries(
            "Error items",
            "Items that failed, per job.",
            targets((f"batchjob_error_items{{{JOBS}}} {TEAM}", label)),
            size=(6, 8),
        ),
        timeseries(
            "New error items per minute",
            "How fast error items grow (slope over the rate interval).",
            targets(
                (f"60 * deriv(batchjob_error_items{{{JOBS}}}[$__rate_interval]) {TEAM}", label)
            ),
            size=(6, 8),
        ),
        timeseries(
            "Error ratio",
            "Error items / (successful + error items), per job.",
            targets(
                (
                    f"batchjob_error_items{{{JOBS}}} / on ({KEY}) "
                    f"({successful_plus_error(JOBS)} > 0) {TEAM}",
                    label,
                )
            ),
            size=(6, 8),
            unit="percentunit",
            defaults={"max": 1},
        ),
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
            defaults={"color": {"mode": "fixed", "fixedColor": "red"}},
        ),
        row("Durations"),
        bargauge(
            "Durations of finished jobs",
            "Finished minus created for completed, failed, canceled and deleted jobs "
            "(kept for finished_job_retention).",
            targets(
                (
                    f"sort_desc(batchjob_duration_seconds{{{JOBS}}} and on ({KEY}) "
                    f'(batchjob_status{{{JOBS}, status=~"{FINISHED}"}} == 1) {TEAM})',
                    label,
                ),
                instant=True,
            ),
            size=(12, 8),
            unit="s",
            defaults={"color": {"mode": "continuous-GrYlRd"}},
        ),
        bargauge(
            "Slowest running jobs",
            "The ten running jobs that have been running longest.",
            targets(
                (
                    f"sort_desc(topk(10, batchjob_duration_seconds{{{JOBS}}} "
                    f"{running(JOBS)} {TEAM}))",
                    label,
                ),
                instant=True,
            ),
            size=(12, 8),
            unit="s",
            defaults={"color": {"mode": "continuous-GrYlRd"}},
        ),
    ]
    variables = [
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
    return dashboard(
        UID_OVERVIEW,
        "Batch jobs overview",
        "Vendor batch jobs watched by batch-job-exporter: status, progress, errors, durations.",
        panels,
        variables,
    )


# -- Single job --------------------------------------------------------------------------------


def single_job() -> Json:
    """One job in detail: the drill-down target of the overview's jobs table."""
    job = 'source="$source", job_id="$job_id"'
    only_running = running(job)
    panels = [
        stat(
            "Status",
            "The exporter's status for the job (pending, running, completed, failed, ...).",
            targets((f"batchjob_status{{{job}}} == 1", "{{status}}")),
            text_mode="name",
            color_mode="background",
            overrides=status_overrides(),
        ),
        stat(
            "Vendor status",
            "The vendor's own status word (batchjob_info{vendor_status}).",
            targets((f"batchjob_info{{{job}}}", "{{vendor_status}}")),
            text_mode="name",
            color_mode="none",
        ),
        stat(
            "Progress",
            "Completed / total; no value for APIs that report no total.",
            targets((f"{processed(job)} / on ({KEY}) batchjob_total_items{{{job}}}", "progress")),
            unit="percentunit",
            defaults={"min": 0, "max": 1, "thresholds": thresholds((None, "blue"), (1, "green"))},
        ),
        stat(
            "ETA",
            "Remaining items / the rate remaining items went down over the rate window "
            "(only while the job runs and moves).",
            targets(
                (
                    f"batchjob_remaining_items{{{job}}} / "
                    f"(-deriv(batchjob_remaining_items{{{job}}}[$window]) > 0) {only_running}",
                    "ETA",
                )
            ),
            unit="s",
            color_mode="none",
        ),
        stat(
            "Duration",
            "Finished minus created; while running, now minus created.",
            targets((f"batchjob_duration_seconds{{{job}}}", "duration")),
            unit="s",
            color_mode="none",
        ),
        stat(
            "Last poll",
            "Whether the exporter's last poll of this job succeeded.",
            targets((f"batchjob_poll_success{{{job}}}", "last poll")),
            color_mode="background",
            defaults=two_state("OK", "failing"),
        ),
        timeseries(
            "Items",
            "Remaining, successful and error items over time (whichever the API reports).",
            targets(
                (f"batchjob_remaining_items{{{job}}}", "remaining"),
                (f"batchjob_successful_items{{{job}}}", "successful"),
                (f"batchjob_error_items{{{job}}}", "error"),
                (f"batchjob_total_items{{{job}}}", "total"),
            ),
            size=(16, 9),
            table_legend=True,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": name},
                    "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": c}}],
                }
                for name, c in (
                    ("remaining", "blue"),
                    ("successful", "green"),
                    ("error", "red"),
                    ("total", "text"),
                )
            ],
        ),
        timeseries(
            "Completion rate",
            "Items processed per second (slope of completed, or of successful, items "
            "over the rate window).",
            targets(
                (
                    f"deriv(batchjob_completed_items{{{job}}}[$window]) "
                    f"or deriv(batchjob_successful_items{{{job}}}[$window])",
                    "items/s",
                )
            ),
            size=(8, 9),
            unit="short",
        ),
        state_timeline(
            "Status timeline",
            "The job's status over time.",
            targets((f"batchjob_status{{{job}}} == 1", "{{status}}")),
            overrides=status_overrides(),
        ),
        state_timeline(
            "Vendor status timeline",
            "The vendor's raw status over time.",
            targets((f"batchjob_info{{{job}}}", "{{vendor_status}}")),
        ),
        bargauge(
            "Errors by code",
            "Failed items by the vendor's error code (Evocalize, read once the job finishes).",
            targets((f"sort_desc(batchjob_errors_by_code{{{job}}})", "{{code}}"), instant=True),
            defaults={"color": {"mode": "fixed", "fixedColor": "red"}},
        ),
        table(
            "Info labels",
            "Every label of batchjob_info: API, vendor status, the job's configured labels, "
            "and the report's name, format and timezone where the API has them.",
            targets((f"batchjob_info{{{job}}}", ""), table=True),
            size=(16, 8),
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value": True, "__name__": True},
                        "indexByName": {},
                        "renameByName": {},
                    },
                }
            ],
        ),
    ]
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
        panels,
        variables,
    )


# -- Exporter health ---------------------------------------------------------------------------


def exporter_health() -> Json:
    """The exporter itself: requests, latency, rate limiting, polls, config, process."""
    exp = 'job=~"$job", instance=~"$instance"'
    src = f'{exp}, source=~"$source"'
    by_source = "{{source}}"

    def quantile(q: str) -> tuple[str, str]:
        return (
            f"histogram_quantile({q}, sum by (source, le) "
            f"(rate(batchjob_exporter_api_request_duration_seconds_bucket{{{src}}}"
            "[$__rate_interval])))",
            f"p{q[2:].ljust(2, '0')} {by_source}",
        )

    panels = [
        stat(
            "Exporter up",
            "Whether Prometheus' last scrape of the exporter succeeded (per instance).",
            targets((f"up{{{exp}}}", "{{instance}}")),
            color_mode="background",
            defaults=two_state("up", "down"),
        ),
        stat(
            "Version",
            "batchjob_exporter_build_info.",
            targets(
                (
                    f"batchjob_exporter_build_info{{{exp}}}",
                    "{{version}} (Python {{python_version}})",
                )
            ),
            text_mode="name",
            color_mode="none",
        ),
        stat(
            "Config load",
            "Whether the last configuration load succeeded.",
            targets((f"batchjob_exporter_config_last_reload_successful{{{exp}}}", "{{instance}}")),
            color_mode="background",
            defaults=two_state("OK", "failed"),
        ),
        stat(
            "Config loaded",
            "When the configuration was last loaded successfully.",
            targets(
                (
                    f"batchjob_exporter_config_last_reload_success_timestamp_seconds{{{exp}}} "
                    "* 1000",
                    "{{instance}}",
                )
            ),
            unit="dateTimeFromNow",
            color_mode="none",
        ),
        stat(
            "Watched jobs",
            "Jobs with series on the exporter's page.",
            targets((f"sum(batchjob_exporter_watched_jobs{{{src}}})", "jobs")),
            color_mode="none",
        ),
        stat(
            "Jobs whose last poll succeeded",
            "Share of watched jobs whose last poll succeeded.",
            targets((f"avg(batchjob_poll_success{{{src}}})", "polls OK")),
            unit="percentunit",
            defaults={
                "min": 0,
                "max": 1,
                "thresholds": thresholds((None, "red"), (0.5, "orange"), (0.95, "green")),
            },
        ),
        row("Vendor requests"),
        timeseries(
            "Requests by source and code",
            "Requests per second to each vendor, by HTTP status or failure "
            "(timeout, connection_error, tls_error, invalid_response, body_too_large).",
            targets(
                (
                    "sum by (source, code) (rate(batchjob_exporter_api_requests_total"
                    f"{{{src}}}[$__rate_interval]))",
                    "{{source}} {{code}}",
                )
            ),
            size=(12, 8),
            unit="reqps",
            table_legend=True,
        ),
        timeseries(
            "Request latency",
            "Latency quantiles per source, to the last byte, from the histogram.",
            targets(quantile("0.5"), quantile("0.9"), quantile("0.99")),
            size=(12, 8),
            unit="s",
            table_legend=True,
        ),
        row("Rate limiting"),
        timeseries(
            "Rate-limit answers per minute",
            "429s, and 503s with Retry-After, per minute. After each one the exporter sends "
            "nothing to that source until Retry-After has passed.",
            targets(
                (
                    "60 * sum by (source) (rate(batchjob_exporter_rate_limited_total"
                    f"{{{src}}}[$__rate_interval]))",
                    by_source,
                ),
                (
                    "60 * sum by (source) (rate(batchjob_exporter_poll_failures_total"
                    f'{{{src}, reason="rate_limited"}}[$__rate_interval]))',
                    "polls lost {{source}}",
                ),
            ),
            unit="short",
        ),
        timeseries(
            "Time under Retry-After",
            "Share of the time each source was closed to requests by rate-limit answers "
            "(their Retry-After, or the exporter's backoff without one); overlapping windows "
            "count once. With several exporters, the one closed longest. A window is counted "
            "when it opens: one longer than the rate interval shows as 100% where it begins "
            "and 0 for the rest of it.",
            targets(
                (
                    "clamp_max(max by (source) (rate(batchjob_exporter_rate_limited_seconds_total"
                    f"{{{src}}}[$__rate_interval])), 1)",
                    by_source,
                )
            ),
            unit="percentunit",
            defaults={"max": 1},
        ),
        timeseries(
            "Share of requests rate-limited",
            "Rate-limit answers / all requests, per source.",
            targets(
                (
                    "sum by (source) (rate(batchjob_exporter_rate_limited_total"
                    f"{{{src}}}[$__rate_interval])) / sum by (source) "
                    f"(rate(batchjob_exporter_api_requests_total{{{src}}}[$__rate_interval]))",
                    by_source,
                )
            ),
            unit="percentunit",
            defaults={"max": 1},
        ),
        row("Polls"),
        timeseries(
            "Jobs whose last poll succeeded",
            "Share of each source's jobs whose last poll succeeded.",
            targets((f"avg by (source) (batchjob_poll_success{{{src}}})", by_source)),
            unit="percentunit",
            defaults={"max": 1},
        ),
        timeseries(
            "Failed polls by reason",
            "Failed polls per second by source and reason.",
            targets(
                (
                    "sum by (source, reason) (rate(batchjob_exporter_poll_failures_total"
                    f"{{{src}}}[$__rate_interval]))",
                    "{{source}} {{reason}}",
                )
            ),
            unit="short",
        ),
        timeseries(
            "Watched jobs by source",
            "Jobs with series on the page, per source.",
            targets((f"sum by (source) (batchjob_exporter_watched_jobs{{{src}}})", by_source)),
        ),
        row("Process"),
        state_timeline(
            "Config load status",
            "Whether the last configuration load succeeded, over time.",
            targets((f"batchjob_exporter_config_last_reload_successful{{{exp}}}", "{{instance}}")),
            size=(6, 8),
            defaults={"color": {"mode": "thresholds"}, **two_state("OK", "failed")},
            show_value="auto",
        ),
        timeseries(
            "CPU",
            "CPU seconds per second (1 = one full core).",
            targets(
                (f"rate(process_cpu_seconds_total{{{exp}}}[$__rate_interval])", "{{instance}}")
            ),
            size=(6, 8),
            unit="percentunit",
        ),
        timeseries(
            "Memory",
            "Resident and virtual memory of the exporter process.",
            targets(
                (f"process_resident_memory_bytes{{{exp}}}", "resident {{instance}}"),
                (f"process_virtual_memory_bytes{{{exp}}}", "virtual {{instance}}"),
            ),
            size=(6, 8),
            unit="bytes",
        ),
        timeseries(
            "Open file descriptors",
            "Open file descriptors and the limit.",
            targets(
                (f"process_open_fds{{{exp}}}", "open {{instance}}"),
                (f"process_max_fds{{{exp}}}", "limit {{instance}}"),
            ),
            size=(6, 8),
        ),
    ]
    variables = [
        query_variable(
            "job",
            "Scrape job",
            "label_values(batchjob_exporter_build_info, job)",
            multi=True,
            all_value=None,
        ),
        query_variable(
            "instance",
            "Instance",
            'label_values(up{job=~"$job"}, instance)',
            multi=True,
            all_value=None,
        ),
        query_variable(
            "source",
            "Source",
            'label_values(batchjob_exporter_watched_jobs{job=~"$job", instance=~"$instance"}, '
            "source)",
            multi=True,
        ),
    ]
    return dashboard(
        UID_EXPORTER,
        "Batch job exporter health",
        "batch-job-exporter itself: vendor requests, latency, rate limiting, polls, config, "
        "CPU and memory.",
        panels,
        variables,
    )


# -- output ------------------------------------------------------------------------------------


def build() -> dict[str, Json]:
    """Every dashboard by file name."""
    return {
        "batch-jobs-overview.json": overview(),
        "batch-job.json": single_job(),
        "batch-job-exporter.json": exporter_health(),
    }


def render(board: Json) -> str:
    """The committed text of a dashboard."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` compare them with the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = 0
    for name, board in build().items():
        path: Path = args.out / name
        text = render(board)
        if args.check:
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            if old != text:
                stale += 1
                diff = difflib.unified_diff(
                    old.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"{path} (committed)",
                    f"{path} (generated)",
                    n=2,
                )
                sys.stdout.writelines(diff)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"{stale} dashboard(s) out of date: run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
