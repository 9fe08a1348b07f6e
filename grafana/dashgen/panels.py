"""The panel kinds (stat, time series, bar gauge, state timeline, table, row) and their layout."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .fields import DS, FIXED_BLUE, GREEN, Json, targets


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


def _last_value() -> Json:
    """Reduce each series to its last value."""
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


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
    options: Json = {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": _last_value(),
        "showPercentChange": False,
        "textMode": text_mode,
        "wideLayout": True,
    }
    return panel(
        "stat",
        title,
        description,
        tgts,
        size=size,
        unit=unit,
        defaults=base,
        overrides=overrides,
        options=options,
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
    """A time series graph; ``table_legend`` adds each series' last and max value."""
    custom = {
        "drawStyle": "line",
        "fillOpacity": 10,
        "lineWidth": 1,
        "pointSize": 4,
        "showPoints": "never",
        "spanNulls": False,
    }
    base: Json = {"custom": custom, "min": 0}
    base.update(defaults or {})
    legend = {
        "calcs": ["lastNotNull", "max"] if table_legend else [],
        "displayMode": "table" if table_legend else "list",
        "placement": "bottom",
        "showLegend": True,
    }
    options: Json = {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel(
        "timeseries",
        title,
        description,
        tgts,
        size=size,
        unit=unit,
        defaults=base,
        overrides=overrides,
        options=options,
    )


class Graph(NamedTuple):
    """A time series panel as data, for rows of similar graphs (see :func:`graphs`)."""

    title: str
    description: str
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    max_value: float | None = None


def graphs(
    specs: Iterable[Graph], *, size: tuple[int, int] = (8, 8), table_legend: bool = False
) -> list[Json]:
    """One time series panel per spec, all of one size."""
    return [
        timeseries(
            g.title,
            g.description,
            targets(*g.queries),
            size=size,
            unit=g.unit,
            table_legend=table_legend,
            defaults=None if g.max_value is None else {"max": g.max_value},
        )
        for g in specs
    ]


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
    options: Json = {
        "displayMode": "gradient",
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": _last_value(),
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }
    return panel(
        "bargauge",
        title,
        description,
        tgts,
        size=size,
        unit=unit,
        defaults=base,
        options=options,
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
    options: Json = {
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": show_value,
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel(
        "state-timeline",
        title,
        description,
        tgts,
        size=size,
        defaults=base,
        overrides=overrides,
        options=options,
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
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True},
        "thresholds": GREEN,
    }
    options: Json = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
    }
    return panel(
        "table",
        title,
        description,
        tgts,
        size=size,
        defaults=defaults,
        overrides=overrides,
        options=options,
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
