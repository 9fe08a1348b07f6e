"""The dashboard around the panels: template variables, links, and what an import needs."""

from __future__ import annotations

from .fields import DS, Json
from .panels import layout

SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x
MIN_GRAFANA = "10.4.0"
TAG = "batch-jobs"

# Links, bookmarks and provisioning rely on the uids: never change them.
UID_OVERVIEW = "batchjob-overview"
UID_JOB = "batchjob-job"
UID_EXPORTER = "batchjob-exporter"

PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "stat": "Stat",
    "state-timeline": "State timeline",
    "table": "Table",
    "timeseries": "Time series",
}


# -- template variables ------------------------------------------------------------------------


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


# -- the dashboard -----------------------------------------------------------------------------


def _import_header(panels: list[Json]) -> Json:
    """``__inputs``, ``__elements`` and ``__requires``: what the UI import asks and checks."""
    kinds = sorted({p["type"] for p in panels if p["type"] != "row"})
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
            *({"type": "panel", "id": k, "name": PANEL_NAMES[k], "version": ""} for k in kinds),
        ],
    }


def _annotations() -> Json:
    """Grafana's built-in annotations and alerts, hidden from the toolbar."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {"list": [builtin]}


def _links() -> list[Json]:
    """A menu of every dashboard with the tag, keeping the time range."""
    return [
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
    ]


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], variables: list[Json]
) -> Json:
    """A whole dashboard, ready for the UI import and for file provisioning."""
    return {
        **_import_header(panels),
        "annotations": _annotations(),
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": _links(),
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
