"""What panels are made of: queries, thresholds, value mappings, field overrides."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
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


def by_name(field: str, *properties: Json) -> Json:
    """A field override: ``properties`` for the field (or series) called ``field``."""
    return {"matcher": {"id": "byName", "options": field}, "properties": list(properties)}


def fixed_colors(colors: dict[str, str]) -> list[Json]:
    """One fixed color per series name."""
    return [
        by_name(name, {"id": "color", "value": {"mode": "fixed", "fixedColor": color}})
        for name, color in colors.items()
    ]


def status_overrides() -> list[Json]:
    """One color per job status, for panels whose series are named after the status."""
    return fixed_colors(STATUS_COLORS)
