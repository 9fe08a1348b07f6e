"""Static checks of grafana/ and prometheus/: the JSON, the variables, the rules, the docs.

The helpers here (loading dashboards, extracting queries, substituting template
variables) are shared with tests/test_e2e_prometheus.py, which runs every query
through a real Prometheus.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
PROMETHEUS_DIR = ROOT / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yaml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yaml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.example.yml"
DOC = ROOT / "docs" / "dashboards-and-alerts.md"

# File name -> uid. Links, bookmarks and provisioning rely on these: never change them.
UIDS = {
    "batch-jobs-overview.json": "batchjob-overview",
    "batch-job.json": "batchjob-job",
    "batch-job-exporter.json": "batchjob-exporter",
}
PANEL_TYPES = frozenset({"stat", "table", "bargauge", "gauge", "timeseries", "state-timeline"})
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILTIN_DS = {"type": "grafana", "uid": "-- Grafana --"}
SEVERITIES = frozenset({"critical", "warning", "info"})
# What each alert's description must name; a new alert must be added here.
NAMED_IN_DESCRIPTION = {
    "BatchJobFailed": ("job_id", "source"),
    "BatchJobStalled": ("job_id", "source"),
    "BatchJobRunningTooLong": ("job_id", "source"),
    "BatchJobErrorRatioHigh": ("job_id", "source"),
    "BatchJobNotFound": ("job_id", "source"),
    "BatchJobSourceUnreachable": ("source", "instance"),
    "BatchJobSourceRateLimited": ("source", "instance"),
    "BatchJobExporterDown": ("instance", "job"),
    "BatchJobExporterConfigReloadFailed": ("instance",),
    "BatchJobExporterFleetDown": ("instance",),
}

# Grafana's own variables, replaced by values a panel would get for a short time range.
BUILTIN_VALUES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"label_values\((.*),\s*(\w+)\)", re.DOTALL)

Json = dict[str, Any]


# -- helpers shared with the end-to-end test ---------------------------------------------------


def load_dashboards() -> dict[str, Json]:
    """Every committed dashboard by file name."""
    boards: dict[str, Json] = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        boards[path.name] = json.loads(path.read_text(encoding="utf-8"))
    return boards


def walk_panels(board: Json) -> Iterator[Json]:
    """Every panel, including those inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(board: Json) -> list[tuple[str, str]]:
    """``(where, expr)`` of every panel target: where is ``panel title / refId``."""
    return [
        (f"{panel['title']} / {t['refId']}", t["expr"])
        for panel in walk_panels(board)
        for t in panel.get("targets", [])
    ]


def variables(board: Json) -> list[Json]:
    """The dashboard's template variables, in order."""
    listed: list[Json] = board["templating"]["list"]
    return listed


def label_values(definition: str) -> tuple[str, str]:
    """Split ``label_values(selector, label)`` into the selector and the label."""
    match = LABEL_VALUES.fullmatch(definition.strip())
    assert match is not None, f"not label_values(selector, label): {definition!r}"
    return match[1].strip(), match[2]


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace ``$var``, ``${var}``, ``${var:fmt}``, ``[[var]]`` and Grafana's ``$__`` ones."""

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        if name in values:
            return values[name]
        if name in BUILTIN_VALUES:
            return BUILTIN_VALUES[name]
        raise KeyError(f"no value for ${name} in {text!r}")

    return VARIABLE.sub(replace, text)


def grafana_regex_escape(value: str) -> str:
    """Escape a value as Grafana's Prometheus data source does for multi-value variables."""
    return re.sub(r"([\\$^*{}\[\]'+?.()|])", r"\\\\\1", value)


def alert_rules() -> list[Json]:
    """Every alerting rule of prometheus/alerts.yaml."""
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def sample_values(board: Json) -> dict[str, str]:
    """Plausible values for every variable, for checks that need no real data."""
    values: dict[str, str] = {}
    for var in variables(board):
        if var["type"] == "custom":
            values[var["name"]] = var["current"]["value"]
        elif var["type"] == "query":
            values[var["name"]] = ".*" if var.get("includeAll") else "x"
        else:
            values[var["name"]] = "prometheus"
    return values


def _datasource_refs(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every ``datasource`` value anywhere in a dashboard, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield f"{path}.{key}", value
            yield from _datasource_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _datasource_refs(value, f"{path}[{i}]")


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text."""
    return subprocess.run(  # noqa: S603 - fixed programs, our own files
        args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# -- the dashboards ----------------------------------------------------------------------------


def test_committed_json_is_what_the_generator_writes() -> None:
    """grafana/generate.py --check passes: the committed JSON is up to date."""
    done = _run(sys.executable, str(GRAFANA / "generate.py"), "--check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_have_stable_unique_uids() -> None:
    """Every dashboard file is valid JSON with its fixed uid, and no uid repeats."""
    boards = load_dashboards()
    assert set(boards) == set(UIDS)
    for name, board in boards.items():
        assert board["uid"] == UIDS[name], name
        assert len(board["uid"]) <= 40
        assert board["id"] is None, f"{name}: an exported id would clash on import"
    assert len({b["uid"] for b in boards.values()}) == len(boards)


def test_dashboards_target_a_current_grafana_and_ask_for_a_datasource() -> None:
    """The schemaVersion is 39 or later and __inputs asks for one Prometheus data source."""
    for name, board in load_dashboards().items():
        assert board["schemaVersion"] >= 39, name
        inputs = board["__inputs"]
        assert [(i["name"], i["type"], i["pluginId"]) for i in inputs] == [
            ("DS_PROMETHEUS", "datasource", "prometheus")
        ], name


def test_every_datasource_reference_is_the_variable() -> None:
    """Panels, targets and variables use ${datasource}; no data source uid is hard-coded."""
    for name, board in load_dashboards().items():
        for where, ref in _datasource_refs(board):
            if where.startswith(".annotations"):
                assert ref == GRAFANA_BUILTIN_DS, f"{name}{where}"
            else:
                assert ref == DS_REF, f"{name}{where}: {ref!r}"
        text = json.dumps(board)
        # The import placeholder appears only as the data source variable's starting value.
        assert text.count("${DS_PROMETHEUS}") == 1, name
        ds_var = variables(board)[0]
        assert ds_var["name"] == "datasource"
        assert ds_var["type"] == "datasource"
        assert ds_var["query"] == "prometheus"
        assert ds_var["current"]["value"] == "${DS_PROMETHEUS}"
        for panel in walk_panels(board):
            if panel["type"] != "row":
                assert panel["datasource"] == DS_REF, f"{name}: {panel['title']}"


def test_every_variable_is_used() -> None:
    """Each template variable is referenced by a query, a link or another variable."""
    for name, board in load_dashboards().items():
        for var in variables(board):
            rest = {
                "panels": board["panels"],
                "links": board["links"],
                "others": [v for v in variables(board) if v is not var],
            }
            text = json.dumps(rest)
            var_name = re.escape(var["name"])
            used = re.search(rf"\$\{{{var_name}[}}:]|\${var_name}\b|\[\[{var_name}\]\]", text)
            assert used, f"{name}: variable {var['name']} is never used"


def test_panels_are_well_formed() -> None:
    """Known panel types, unique ids and refIds, every query non-empty, no overlapping panels."""
    for name, board in load_dashboards().items():
        panels = list(walk_panels(board))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']}"
            mine = {
                (pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])
            }
            assert not mine & cells, f"{name}: {panel['title']} overlaps another panel"
            cells |= mine
            if panel["type"] == "row":
                continue
            assert panel["type"] in PANEL_TYPES, f"{name}: {panel['type']}"
            assert panel["title"], name
            assert panel["description"], f"{name}: {panel['title']}"
            refs = [t["refId"] for t in panel["targets"]]
            assert refs, f"{name}: {panel['title']} has no query"
            assert len(refs) == len(set(refs)), f"{name}: {panel['title']}"
            assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_overview_jobs_table_links_to_the_single_job_dashboard() -> None:
    """The overview's jobs table opens the single-job dashboard by uid with source and job."""
    boards = load_dashboards()
    overview = boards["batch-jobs-overview.json"]
    job_uid = UIDS["batch-job.json"]
    urls = re.findall(r'"url": "([^"]*)"', json.dumps(overview))
    drill = [u for u in urls if f"/d/{job_uid}/" in u]
    assert drill, "no link to the single-job dashboard"
    for url in drill:
        assert "var-source=${__data.fields.source}" in url
        assert "var-job_id=${__data.fields.job_id}" in url
        assert "var-datasource=${datasource}" in url
    single = {v["name"] for v in variables(boards["batch-job.json"])}
    assert {"source", "job_id", "datasource"} <= single


def test_overview_has_a_team_variable_from_batchjob_info() -> None:
    """The team-style variable lists the team label of batchjob_info."""
    overview = load_dashboards()["batch-jobs-overview.json"]
    team = next(v for v in variables(overview) if v["name"] == "team")
    selector, label = label_values(team["definition"])
    assert selector.startswith("batchjob_info")
    assert label == "team"
    assert team["includeAll"]
    assert team["allValue"] == ".*"  # also matches jobs without the label


def test_every_panel_query_parses(promtool: str, tmp_path: Path) -> None:
    """Every panel and variable query, variables substituted, parses as PromQL in promtool."""
    rules = []
    for name, board in load_dashboards().items():
        values = sample_values(board)
        exprs = [expr for _, expr in panel_queries(board)]
        exprs += [
            label_values(v["definition"])[0] for v in variables(board) if v["type"] == "query"
        ]
        rules += [
            {"record": f"dashboard:{Path(name).stem.replace('-', '_')}:{i}", "expr": e}
            for i, e in enumerate(substitute(expr, values) for expr in exprs)
        ]
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = _run(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_time_under_retry_after_is_the_share_of_time_closed(promtool: str, tmp_path: Path) -> None:
    """The Time under Retry-After query is each source's share of time closed, at most 1."""
    board = load_dashboards()["batch-job-exporter.json"]
    panel = next(p for p in walk_panels(board) if p["title"] == "Time under Retry-After")
    (target,) = panel["targets"]
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
    expr = substitute(target["expr"], sample_values(board))
    seconds = "batchjob_exporter_rate_limited_seconds_total"

    def series(source: str, values: str, instance: str = "a:1") -> Json:
        labels = f'job="e", instance="{instance}", source="{source}"'
        return {"series": f"{seconds}{{{labels}}}", "values": values}

    def expect(at: str, shares: dict[str, float]) -> Json:
        samples = [{"labels": f'{{source="{s}"}}', "value": v} for s, v in shares.items()]
        return {"expr": expr, "eval_time": at, "exp_samples": samples}

    case = {
        "interval": "15s",
        "input_series": [
            series("steady", "0+7.5x40"),  # closed 30 s of every minute
            series("shared", "0+3.75x40"),  # two exporters: a quarter and half of the time
            series("shared", "0+7.5x40", instance="b:1"),
            series("long", "0x10 600x30"),  # one 600 s window, counted when it opens
            series("idle", "4x40"),
        ],
        "promql_expr_test": [
            expect("3m", {"steady": 0.5, "shared": 0.5, "long": 1, "idle": 0}),
            expect("5m", {"steady": 0.5, "shared": 0.5, "long": 0, "idle": 0}),
        ],
    }
    path = tmp_path / "panel_test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": [case]}))
    done = _run(promtool, "test", "rules", path.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_per_job_joins_match_on_the_whole_job_key() -> None:
    """Every ``on (...)`` that names job_id also names job, instance and source.

    Two exporters may watch jobs with the same source name and ID; a join on fewer
    labels would let one hide (or borrow the values of) the other.
    """
    exprs = [expr for board in load_dashboards().values() for _, expr in panel_queries(board)]
    exprs += [rule["expr"] for rule in alert_rules()]
    joins = [m for e in exprs for m in re.findall(r"\bon\s*\(([^)]*)\)", e)]
    assert joins
    for join in joins:
        labels = {label.strip() for label in join.split(",")}
        if "job_id" in labels:
            assert labels == {"job", "instance", "source", "job_id"}, join


def test_substitute_knows_every_variable_form() -> None:
    """$var, ${var}, ${var:fmt}, [[var]] and Grafana's $__ variables are all replaced."""
    text = 'a{x=~"$src"}[$__rate_interval] ${src} ${src:regex} [[src]] $srcx'
    assert substitute(text, {"src": "s", "srcx": "t"}) == 'a{x=~"s"}[1m] s s s t'
    with pytest.raises(KeyError, match="nope"):
        substitute("$nope", {})
    assert grafana_regex_escape("127.0.0.1:80") == "127\\\\.0\\\\.0\\\\.1:80"


# -- the alert rules ---------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    """The rules in prometheus/alerts.yaml pass promtool check rules without a warning."""
    done = _run(promtool, "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert "WARNING" not in (done.stdout + done.stderr).upper()


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    """The unit tests in prometheus/alerts_test.yaml pass promtool test rules."""
    done = _run(promtool, "test", "rules", ALERTS_TEST.name, cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    """Each alert has a promtool case where it fires and one where it stays silent."""
    doc = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    fires: set[str] = set()
    silent: set[str] = set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "never seen firing"
    assert names - silent == set(), "never seen silent"


def test_every_alert_has_severity_summary_and_description() -> None:
    """Each alert has a severity label, a summary and a description naming what it is about."""
    rules = alert_rules()
    assert {r["alert"] for r in rules} == set(NAMED_IN_DESCRIPTION)
    assert len(rules) == len(NAMED_IN_DESCRIPTION)
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"], name
        for label in NAMED_IN_DESCRIPTION[name]:
            assert f"$labels.{label}" in rule["annotations"]["description"], (name, label)
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name


def test_example_prometheus_config_is_valid(promtool: str) -> None:
    """The example prometheus.example.yml and its rule file pass promtool check config."""
    done = _run(promtool, "check", "config", EXAMPLE_CONFIG.name, cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == [ALERTS.name]
    down = next(r for r in alert_rules() if r["alert"] == "BatchJobExporterDown")
    job = config["scrape_configs"][0]["job_name"]
    assert f'up{{job="{job}"}}' in down["expr"]


# -- provisioning and docs ---------------------------------------------------------------------


def test_provisioning_examples_are_valid() -> None:
    """The provisioning examples load a file provider and a Prometheus data source."""
    dashboards = yaml.safe_load((GRAFANA / "provisioning" / "dashboards.yaml").read_text())
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources.yaml").read_text())
    assert sources["apiVersion"] == 1
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    assert "uid" not in sources["datasources"][0], "the dashboards must not need a fixed uid"


def test_docs_cover_every_dashboard_alert_and_file() -> None:
    """docs/dashboards-and-alerts.md names every dashboard, alert and example file."""
    text = DOC.read_text(encoding="utf-8")
    for name, board in load_dashboards().items():
        assert name in text
        assert board["title"] in text
        assert board["uid"] in text
    for rule in alert_rules():
        assert rule["alert"] in text
    for provisioning in ("provisioning/dashboards.yaml", "provisioning/datasources.yaml"):
        assert provisioning in text
    for path in (ALERTS, ALERTS_TEST, EXAMPLE_CONFIG):
        assert path.name in text
