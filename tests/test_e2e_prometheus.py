"""End to end: simulators, the exporter and a real Prometheus, all on 127.0.0.1.

One module-scoped stack serves every test here:

- two simulators (``python -m exporter.simulator``): the main one with running,
  finished, failed, stalled and error-heavy jobs of all three APIs; a second one
  that answers every request with 429 (``Retry-After: 2``);
- the exporter (``python -m exporter``) polling both every second, plus a source on a
  closed port (unreachable) and job IDs that do not exist (``not_found``); once it
  runs, its config file is broken and ``POST /-/reload`` refused, so the config
  reload gauge reads 0;
- Prometheus (Debian's ``prometheus``) scraping the exporter, and the same closed
  port as a down target, every second, and evaluating a copy of
  ``prometheus/alerts.yaml`` whose ``for:`` durations, and the one threshold on a
  job's duration, are cut to seconds.

Then every panel query of every dashboard, with its template variables filled in
from the variables' own ``label_values`` queries, runs through Prometheus' query
API: each must be valid, and each must return data.  Every alert must fire for
exactly the jobs, sources and targets of the scenario that it is about, and for
nothing else; a job failed through the simulator makes BatchJobFailed pending,
then firing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml

from exporter.simulator.vendors import evocalize, fullstory, source_config, talkdesk, vendor_url
from tests.conftest import promtool_lint
from tests.test_dashboards import (
    ALERTS,
    ROOT,
    Json,
    alert_rules,
    grafana_regex_escape,
    label_values,
    load_dashboards,
    substitute,
    variables,
    walk_panels,
)

pytestmark = pytest.mark.e2e

SCRAPE_JOB = "batch-job-exporter"  # the job name alerts.yaml's BatchJobExporterDown selects
START_TIMEOUT = 20.0  # each process, until it answers
SCENARIO_TIMEOUT = 40.0  # until every job state the queries need is on /metrics
DATA_TIMEOUT = 30.0  # until every query returns data (rates need a few scrapes)
ALERT_TIMEOUT = 30.0  # until the alerts of the scenario fire
RANGE_SECONDS = 120  # range queries (time series panels) cover the last two minutes
# Every rule's `for:` in the copy Prometheus evaluates, so alerts fire in seconds.
# BatchJobFailed waits long enough to be seen pending first (alerts are read every 0.2 s).
SHORT_FOR = "1s"
FOR_IN_TEST = {"BatchJobFailed": "2s"}
# A threshold on the job's age, not a `for:`: `batchjob_duration_seconds > N` in these rules
# becomes `> seconds` in the copy. td-running has run for longer by the time the alerts are
# read (the scenario alone takes three polls of a missing job), so the rule fires for it.
DURATION_THRESHOLD = re.compile(r"batchjob_duration_seconds > \d+(?:\.\d+)?\b")
DURATION_IN_TEST = {"BatchJobRunningTooLong": 1}
WORKERS = 8  # queries sent to Prometheus at once

EVO, FS, TD = evocalize.API, fullstory.API, talkdesk.API
BIG = 1_000_000  # items: a job that runs for the whole test
# (api, id, add_job arguments, labels): created on the main simulator before the exporter starts.
JOBS: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    (EVO, "evo-running", {"total": BIG, "rate": 20}, {"team": "growth"}),
    (EVO, "evo-errors", {"total": BIG, "rate": 50, "error_every": 4}, {"team": "growth"}),
    (EVO, "evo-finished", {"total": 30, "rate": 1000, "error_every": 3}, {"team": "growth"}),
    (EVO, "evo-stalled", {"total": 500, "rate": 0}, {"team": "growth"}),
    (FS, "fs-running", {"total": BIG, "rate": 20}, {"team": "support"}),
    (FS, "fs-to-fail", {"total": BIG, "rate": 10}, {"team": "support"}),
    (FS, "fs-failed", {"total": 20, "rate": 1000, "error_every": 2, "outcome": "failed"}, {}),
    (TD, "td-running", {"total": BIG, "rate": 1, "name": "Daily calls"}, {}),
    (TD, "td-done", {"total": 1, "rate": 100, "name": "Weekly calls"}, {}),
]
SOURCES = {EVO: "evocalize", FS: "fullstory", TD: "talkdesk"}
# Never created: the vendor answers 404, on every API.
MISSING = {EVO: "evo-missing", FS: "fs-missing", TD: "td-missing"}
RATE_LIMITED_JOB = "rl-job"  # on the second simulator, which answers 429 to everything
# The second simulator's Retry-After, in seconds.  Its one job is asked again only once
# the window has passed, so every 429 closes the source for exactly this long.
RETRY_AFTER = 2
UNREACHABLE_JOB = "down-job"  # on a closed port
JOB_TO_FAIL = (FS, "fullstory", "fs-to-fail")  # (api, source, id)

# Lines of the exporter's /metrics that show the scenario has reached every state.
SCENARIO_READY = (
    *(
        f'batchjob_status{{source="{SOURCES[api_]}",job_id="{job_id}",status="not_found"}} 1'
        for api_, job_id in MISSING.items()
    ),
    'batchjob_status{source="fullstory",job_id="fs-failed",status="failed"} 1',
    'batchjob_status{source="talkdesk",job_id="td-done",status="completed"} 1',
    'batchjob_errors_by_code{source="evocalize",job_id="evo-finished"',
    'batchjob_exporter_rate_limited_total{source="ratelimited"}',
    'batchjob_exporter_rate_limited_seconds_total{source="ratelimited"}',
    'batchjob_exporter_api_requests_total{code="connection_error",source="unreachable"}',
    "batchjob_exporter_config_last_reload_successful 0.0",
)
# What identifies a job across scrape targets: the rows of the jobs table, the alerts.
JOB_KEY = ("job", "instance", "source", "job_id")


# -- HTTP and processes ------------------------------------------------------------------------


def request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One HTTP request on loopback; the status and the body."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", url
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def send_json(method: str, url: str, payload: object) -> None:
    """Send a JSON body to a simulator control endpoint; it must succeed."""
    body = json.dumps(payload).encode()
    status, answer = request(method, url, body, {"Content-Type": "application/json"})
    assert 200 <= status < 300, f"{method} {url}: {status} {answer!r}"


def free_port() -> int:
    """A loopback port nothing listens on (bound and released).

    Only for what cannot report a port it chose itself: Prometheus, and the closed
    port that stands for an unreachable vendor and a down target.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Processes:
    """The processes a test started, their logs, and their teardown."""

    log_dir: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    files: list[IO[bytes]] = field(default_factory=list)

    def log(self, name: str) -> Path:
        """The file ``name``'s stderr goes to."""
        return self.log_dir / f"{name}.log"

    def start(
        self, name: str, args: list[str], *, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` with stderr (and stdout unless piped) to :meth:`log`."""
        log = self.log(name).open("wb")
        self.files.append(log)
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and Debian's prometheus
            args,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else log,
            stderr=log,
        )
        self.procs.append((name, proc))
        return proc

    def tails(self) -> str:
        """The end of every log, for failure messages."""
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            out.append(f"--- {path.name} (last 1500 characters)\n{text[-1500:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        """Fail if a process has exited."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}\n{self.tails()}")

    def stop(self) -> None:
        """Terminate every process (kill after 5 s), close pipes and logs."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        for log in self.files:
            log.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float, procs: Processes) -> None:
    """Poll ``check`` every 0.2 s until it is true; fail with the logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        procs.check_alive()
        with contextlib.suppress(OSError):
            if check():
                return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{procs.tails()}")
        time.sleep(0.2)


def answers_200(url: str) -> Callable[[], bool]:
    """A check that ``GET url`` answers 200."""
    return lambda: request("GET", url)[0] == 200


def start_simulators(procs: Processes, *names: str) -> list[str]:
    """Start simulators on port 0, all at once; their root URLs, read from the line each prints."""
    started = [
        (
            name,
            procs.start(
                name,
                [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0"],
                stdout_pipe=True,
            ),
        )
        for name in names
    ]
    urls = []
    deadline = time.monotonic() + START_TIMEOUT
    for name, proc in started:
        assert proc.stdout is not None
        left = max(deadline - time.monotonic(), 0.0)
        ready, _, _ = select.select([proc.stdout], [], [], left)
        line = proc.stdout.readline().decode() if ready else ""
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:\d+/)\n", line)
        if match is None:
            procs.check_alive()
            pytest.fail(f"{name} did not start: {line!r}\n{procs.tails()}")
        urls.append(match[1])
    return urls


def start_exporter(procs: Processes, config: Path) -> str:
    """Start the exporter on port 0; its root URL, read from its log."""
    procs.start(
        "exporter",
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={config}",
            "--web.listen-address=127.0.0.1:0",
        ],
    )
    found: list[str] = []

    def serving() -> bool:
        match = re.search(r"serving /metrics on port (\d+)", procs.log("exporter").read_text())
        if match:
            found.append(match[1])
        return match is not None

    wait_for("the exporter to listen", serving, START_TIMEOUT, procs)
    return f"http://127.0.0.1:{found[0]}/"


# -- Prometheus' API ---------------------------------------------------------------------------


def api(prometheus: str, path: str, params: dict[str, str] | None = None) -> Json:
    """GET (or POST, with ``params``) one Prometheus API endpoint; its JSON answer."""
    if params is None:
        status, body = request("GET", prometheus + path)
    else:
        form = urlencode(params).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status, body = request("POST", prometheus + path, form, headers)
    answer: Json = json.loads(body)
    answer["http_status"] = status
    return answer


def query(prometheus: str, expr: str, *, at: float | None = None) -> list[Json]:
    """Run an instant query (now, or at ``at``); its result. A rejected query fails the test."""
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    answer = api(prometheus, "api/v1/query", params)
    assert answer["status"] == "success", f"{answer.get('error')}\n  in: {expr}"
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return [{"value": data["result"]}]
    result: list[Json] = data["result"]
    return result


def query_range(prometheus: str, expr: str) -> list[Json]:
    """Run a range query over the last :data:`RANGE_SECONDS`, as a time series panel does."""
    end = time.time()
    params = {
        "query": expr,
        "start": f"{end - RANGE_SECONDS:.3f}",
        "end": f"{end:.3f}",
        "step": "2",
    }
    answer = api(prometheus, "api/v1/query_range", params)
    assert answer["status"] == "success", f"{answer.get('error')}\n  in: {expr}"
    result: list[Json] = answer["data"]["result"]
    return result


def alerts(prometheus: str) -> list[Json]:
    """Prometheus' pending and firing alerts."""
    found: list[Json] = api(prometheus, "api/v1/alerts")["data"]["alerts"]
    return found


# -- the stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """URLs of the running stack (all end with a slash) and the scrape targets' instances."""

    sim: str
    exporter: str
    prometheus: str
    procs: Processes
    exporter_instance: str  # the exporter's `instance` label
    dead_instance: str  # the target on a closed port
    failed_by_test: set[str] = field(default_factory=set)  # job IDs failed through the sim


def exporter_config(sim: str, sim2: str, dead_port: int) -> Json:
    """The exporter's config: the scenario's jobs on both simulators and a closed port."""

    def jobs(api_name: str) -> list[Json]:
        listed: list[Json] = [
            {"id": job_id, "labels": labels} if labels else {"id": job_id}
            for api_, job_id, _, labels in JOBS
            if api_ == api_name
        ]
        if api_name in MISSING:
            listed.append({"id": MISSING[api_name]})
        return listed

    scenario = [
        source_config(api, name=name, base_url=vendor_url(sim, api), jobs=jobs(api))
        for api, name in SOURCES.items()
    ]
    unreachable = source_config(
        FS,
        name="unreachable",
        base_url=vendor_url(f"http://127.0.0.1:{dead_port}/", FS),
        jobs=[UNREACHABLE_JOB],
    )
    return {
        "global": {
            "poll_interval": "1s",
            "request_timeout": "2s",
            "finished_job_retention": "1h",
            # A fleet whose Redis never answers: BatchJobExporterFleetDown, the fleet panels.
            "fleet": {"redis_url": f"redis://127.0.0.1:{dead_port}/0", "name": "e2e"},
        },
        "sources": [
            *scenario,
            source_config(
                EVO, name="ratelimited", base_url=vendor_url(sim2, EVO), jobs=[RATE_LIMITED_JOB]
            ),
            # Rate-capped, for the budget panel: its one job fails to connect, at most 5/s.
            {**unreachable, "max_requests_per_second": 5},
        ],
    }


def rules_for_test(text: str) -> str:
    """alerts.yaml with every ``for:`` cut to seconds (:data:`FOR_IN_TEST`, :data:`SHORT_FOR`).

    The rules of :data:`DURATION_IN_TEST` also get their one ``batchjob_duration_seconds > N``
    threshold cut to that many seconds; no other rule may have such a threshold.
    """
    doc = yaml.safe_load(text)
    changed = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = FOR_IN_TEST.get(rule["alert"], SHORT_FOR)
                changed += 1
                seconds = DURATION_IN_TEST.get(rule["alert"])
                replacement = f"batchjob_duration_seconds > {seconds}"
                rule["expr"], cut = DURATION_THRESHOLD.subn(replacement, rule["expr"])
                assert cut == (0 if seconds is None else 1), (rule["alert"], cut)
    assert changed == len(alert_rules())
    assert set(FOR_IN_TEST) <= {rule["alert"] for rule in alert_rules()}
    assert set(DURATION_IN_TEST) <= {rule["alert"] for rule in alert_rules()}
    return yaml.safe_dump(doc, sort_keys=False)


def alert_rules_in_test() -> list[Json]:
    """Every alerting rule as Prometheus evaluates it here (:func:`rules_for_test`)."""
    doc = yaml.safe_load(rules_for_test(ALERTS.read_text(encoding="utf-8")))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Simulators, exporter and Prometheus, running until the module's tests are done."""
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.fail("prometheus not found: run `make test`, which installs Debian's prometheus")
    tmp = tmp_path_factory.mktemp("e2e")
    procs = Processes(tmp)
    try:
        sim, sim2 = start_simulators(procs, "simulator", "simulator-ratelimited")
        for api_name, job_id, kwargs, _ in JOBS:
            send_json("POST", sim + "_sim/jobs", {"api": api_name, "id": job_id, **kwargs})
        send_json("POST", sim2 + "_sim/jobs", {"api": EVO, "id": RATE_LIMITED_JOB})
        send_json(
            "PUT",
            sim2 + f"_sim/faults/{EVO}",
            {"kind": "rate_limit", "retry_after": str(RETRY_AFTER)},
        )

        dead_port = free_port()
        config = tmp / "exporter.yaml"
        config.write_text(yaml.safe_dump(exporter_config(sim, sim2, dead_port)))
        exporter = start_exporter(procs, config)
        exporter_instance = urlsplit(exporter).netloc

        rules = tmp / "alerts.yaml"
        rules.write_text(rules_for_test(ALERTS.read_text(encoding="utf-8")))
        prom_config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": SCRAPE_JOB,
                    "static_configs": [{"targets": [exporter_instance, f"127.0.0.1:{dead_port}"]}],
                }
            ],
        }
        prom_file = tmp / "prometheus.yml"
        prom_file.write_text(yaml.safe_dump(prom_config))
        prom_port = free_port()
        prometheus = f"http://127.0.0.1:{prom_port}/"
        procs.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={prom_file}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
        )

        # A config that does not validate: the exporter refuses it and keeps running.
        wait_for("the exporter's /readyz", answers_200(exporter + "readyz"), START_TIMEOUT, procs)
        config.write_text("global:\n  poll_interval: 3x\nsources: []\n")
        status, answer = request("POST", exporter + "-/reload")
        assert status == 500, answer

        wait_for("Prometheus' /-/ready", answers_200(prometheus + "-/ready"), START_TIMEOUT, procs)

        def scenario_ready() -> bool:
            status, page = request("GET", exporter + "metrics")
            text = page.decode()
            return status == 200 and all(line in text for line in SCENARIO_READY)

        wait_for("every job state on /metrics", scenario_ready, SCENARIO_TIMEOUT, procs)
        # Two scrapes of the last states to arrive (a not_found takes three polls) in
        # Prometheus: the variables' label_values find every job, rate() has two samples.
        missing = "|".join(MISSING.values())
        scraped = (
            f'count_over_time(batchjob_status{{job="{SCRAPE_JOB}", job_id=~"{missing}", '
            'status="not_found"}[1m]) >= 2'
        )
        wait_for(
            "Prometheus to scrape the scenario",
            lambda: len(query(prometheus, scraped)) == len(MISSING),
            SCENARIO_TIMEOUT,
            procs,
        )
        yield Stack(sim, exporter, prometheus, procs, exporter_instance, f"127.0.0.1:{dead_port}")
    finally:
        procs.stop()


# -- filling in template variables -------------------------------------------------------------


def options(prometheus: str, var: Json, values: dict[str, str], *, required: bool) -> list[str]:
    """The values a query variable offers, from its ``label_values`` run as Grafana runs it.

    With ``required``, it must offer at least one (a team filter on a source whose
    jobs have no team label legitimately offers none).
    """
    selector, label = label_values(substitute(var["definition"], values))
    answer = api(prometheus, f"api/v1/label/{label}/values?{urlencode({'match[]': selector})}")
    assert answer["status"] == "success", f"{var['name']}: {answer}"
    found: list[str] = sorted(answer["data"])
    assert found or not required, f"variable {var['name']} lists nothing: {selector}"
    return found


def assignments(prometheus: str, board: Json, pick: str | None = None) -> list[dict[str, str]]:
    """Values Grafana could give the dashboard's variables, as it writes them into a query.

    Multi-value variables take "All" (their ``allValue``, or every value as a regex as
    Grafana builds it), except ``pick``, which takes each of its values alone
    (regex-escaped, as Grafana does for multi-value variables); single-value variables
    take each value in turn.  Later variables are listed with the earlier ones filled in.
    """
    done: list[dict[str, str]] = [{}]
    for var in variables(board):
        name = var["name"]
        grown: list[dict[str, str]] = []
        for values in done:
            if var["type"] == "datasource":
                grown.append({**values, name: "prometheus"})
            elif var["type"] == "custom":
                grown.append({**values, name: var["current"]["value"]})
            elif not var.get("multi"):
                found = options(prometheus, var, values, required=True)
                grown += [{**values, name: v} for v in found]
            elif name == pick:
                found = options(prometheus, var, values, required=True)
                grown += [{**values, name: grafana_regex_escape(v)} for v in found]
            else:
                found = options(prometheus, var, values, required=pick is None)
                everything = "(" + "|".join(grafana_regex_escape(v) for v in found) + ")"
                grown.append({**values, name: var.get("allValue") or everything})
        done = grown
    return done


@dataclass
class PanelQuery:
    """One panel target and the expressions it becomes once its variables are filled in.

    With every multi-value variable at All it must return data (for at least one value
    of each single-value variable); with each value of each multi-value variable alone
    it must be valid.
    """

    where: str
    kind: str  # "range" or "instant", as the panel asks Prometheus
    must_have_data: list[str]
    must_be_valid: list[str]


def panel_query_checks(prometheus: str) -> list[PanelQuery]:
    """Every target of every dashboard, with its variables filled in."""
    checks: list[PanelQuery] = []
    for file_name, board in load_dashboards().items():
        baseline = assignments(prometheus, board)
        alone = [
            values
            for var in variables(board)
            if var["type"] == "query" and var.get("multi")
            for values in assignments(prometheus, board, pick=var["name"])
        ]
        for panel in walk_panels(board):
            for target in panel.get("targets", []):
                expr = target["expr"]
                checks.append(
                    PanelQuery(
                        where=f"{file_name}: {panel['title']} / {target['refId']}",
                        kind="range" if target.get("range") else "instant",
                        must_have_data=sorted({substitute(expr, v) for v in baseline}),
                        must_be_valid=sorted({substitute(expr, v) for v in alone}),
                    )
                )
    return checks


def run(prometheus: str, kind: str, expr: str) -> list[Json]:
    """Run a panel query the way its panel does: a range or an instant query."""
    return query_range(prometheus, expr) if kind == "range" else query(prometheus, expr)


# -- Grafana's table merge ---------------------------------------------------------------------


def table_rows(result: list[Json], ref: str, at: float) -> list[dict[str, object]]:
    """An instant query's result as Grafana's table format, one dict per row.

    The columns are Time, one per label (empty where a series lacks it), and
    ``Value #<refId>``.
    """
    labels = sorted({name for series in result for name in series["metric"]})
    return [
        {
            "Time": at,
            **{name: series["metric"].get(name, "") for name in labels},
            f"Value #{ref}": float(series["value"][1]),
        }
        for series in result
    ]


def grafana_merge(frames: list[list[dict[str, object]]]) -> list[dict[str, object]]:
    """Grafana's "merge" transformation (grafana-data transformers/merge.ts), on row dicts.

    The key is the fields every non-empty frame has.  A row joins each earlier row of the
    same key with which it agrees on every field both have; if there is none, it is a new
    row.
    """
    frames = [frame for frame in frames if frame]
    if len(frames) <= 1:
        return [row for frame in frames for row in frame]
    columns = [{name for row in frame for name in row} for frame in frames]
    key_fields = sorted(set.intersection(*columns))
    by_key: dict[tuple[object, ...], list[dict[str, object]]] = {}
    order: list[tuple[tuple[object, ...], int]] = []
    for frame in frames:
        for row in frame:
            key = tuple(row.get(name) for name in key_fields)
            rows = by_key.setdefault(key, [])
            merged = False
            for i, existing in enumerate(rows):
                if all(existing.get(k) in (None, v) for k, v in row.items()):
                    rows[i] = {**existing, **row}
                    merged = True
            if not merged:
                rows.append(dict(row))
                order.append((key, len(rows) - 1))
    return [by_key[key][i] for key, i in order]


def test_grafana_merge_joins_rows_that_agree() -> None:
    """The merge emulation joins rows on shared fields and keeps conflicting ones apart."""
    a = [{"Time": 1, "job_id": "x", "status": "running", "Value #A": 1.0}]
    b = [{"Time": 1, "job_id": "x", "Value #B": 0.5}, {"Time": 1, "job_id": "y", "Value #B": 1.0}]
    c = [{"Time": 1, "job_id": "x", "__name__": "m1", "Value #C": 3.0}]
    d = [{"Time": 1, "job_id": "x", "__name__": "m2", "Value #D": 4.0}]
    assert grafana_merge([a, b, []]) == [
        {"Time": 1, "job_id": "x", "status": "running", "Value #A": 1.0, "Value #B": 0.5},
        {"Time": 1, "job_id": "y", "Value #B": 1.0},
    ]
    # Two frames that still carry different metric names cannot share a row.
    assert len(grafana_merge([a, c, d])) == 2


# -- the tests ---------------------------------------------------------------------------------


def test_live_exposition_passes_promtool_check_metrics(stack: Stack, promtool: str) -> None:
    """The live /metrics page passes promtool check metrics without a complaint."""
    status, page = request("GET", stack.exporter + "metrics")
    assert status == 200
    assert promtool_lint(promtool, page) == ""


def test_every_dashboard_query_is_valid_and_returns_data(stack: Stack) -> None:
    """Every panel query is valid for every variable value and returns data with All."""
    checks = panel_query_checks(stack.prometheus)
    targets = sum(
        len(p.get("targets", [])) for b in load_dashboards().values() for p in walk_panels(b)
    )
    assert len(checks) == targets
    assert all(check.must_have_data for check in checks)

    def run_all(jobs: list[tuple[str, str]]) -> list[bool]:
        with ThreadPoolExecutor(WORKERS) as pool:
            results = pool.map(lambda job: bool(run(stack.prometheus, *job)), jobs)
            return list(results)

    # Valid: Prometheus accepts every expression (run() fails the test on an error).
    run_all(sorted({(c.kind, e) for c in checks for e in c.must_be_valid + c.must_have_data}))

    def without_data() -> list[str]:
        jobs = [(c.kind, e) for c in checks for e in c.must_have_data]
        has = dict(zip(jobs, run_all(jobs), strict=True))
        return [
            f"{c.where}\n    {c.must_have_data[0]}"
            for c in checks
            if not any(has[c.kind, e] for e in c.must_have_data)
        ]

    deadline = time.monotonic() + DATA_TIMEOUT
    missing = without_data()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = without_data()
    assert not missing, "panel queries without data:\n" + "\n".join(missing)


def test_jobs_table_has_one_row_per_job(stack: Stack) -> None:
    """The overview's jobs table, merged as Grafana merges it, has exactly one row per job."""
    board = load_dashboards()["batch-jobs-overview.json"]
    (values,) = assignments(stack.prometheus, board)
    tables = [
        p
        for p in walk_panels(board)
        if any(t["id"] == "merge" for t in p.get("transformations", []))
    ]
    assert [p["title"] for p in tables] == ["Jobs"]
    (panel,) = tables
    at = time.time()
    frames = [
        table_rows(query(stack.prometheus, substitute(t["expr"], values), at=at), t["refId"], at)
        for t in panel["targets"]
    ]
    rows = grafana_merge(frames)
    jobs = {tuple(row[k] for k in JOB_KEY) for row in frames[0]}
    assert len(jobs) >= len(JOBS) + len(MISSING)  # every job with a status
    assert sorted(tuple(row.get(k) for k in JOB_KEY) for row in rows) == sorted(jobs)
    running = next(r for r in rows if r["job_id"] == "evo-running")
    # Status, progress, remaining, successful, errors and duration all in the one row.
    assert {f"Value #{t['refId']}" for t in panel["targets"]} <= set(running)
    assert running["team"] == "growth"


def test_exporter_health_shows_a_down_target(stack: Stack) -> None:
    """The health dashboard's Instance variable lists a down target and Exporter up shows 0."""
    board = load_dashboards()["batch-job-exporter.json"]
    (values,) = assignments(stack.prometheus, board)
    panel = next(p for p in walk_panels(board) if p["title"] == "Exporter up")
    (target,) = panel["targets"]
    up = {
        s["metric"]["instance"]: s["value"][1]
        for s in query(stack.prometheus, substitute(target["expr"], values))
    }
    assert up == {stack.exporter_instance: "1", stack.dead_instance: "0"}


def test_time_under_retry_after_is_retry_after_per_429(stack: Stack) -> None:
    """Time under Retry-After shows the 429 source closed Retry-After seconds per 429, no other."""
    board = load_dashboards()["batch-job-exporter.json"]
    (values,) = assignments(stack.prometheus, board)
    panel = next(p for p in walk_panels(board) if p["title"] == "Time under Retry-After")
    (target,) = panel["targets"]
    shown_expr = substitute(target["expr"], values)
    # Independent of the seconds counter: the 429s, each closing the source RETRY_AFTER s.
    expected_expr = (
        f"{RETRY_AFTER} * sum by (source) (rate(batchjob_exporter_rate_limited_total"
        f'{{job="{SCRAPE_JOB}", instance="{stack.exporter_instance}"}}[1m]))'
    )
    seen: list[tuple[dict[str, float], dict[str, float]]] = []

    def by_source(expr: str, at: float) -> dict[str, float]:
        return {
            s["metric"]["source"]: float(s["value"][1])
            for s in query(stack.prometheus, expr, at=at)
        }

    def limited() -> bool:
        at = time.time() - 2  # every scrape up to then is stored: both queries see the same
        seen[:] = [(by_source(shown_expr, at), by_source(expected_expr, at))]
        return seen[0][0].get("ratelimited", 0.0) > 0

    wait_for("Time under Retry-After to show the 429s", limited, DATA_TIMEOUT, stack.procs)
    ((shown, expected),) = seen
    # Every source has the series from the start (at 0): only the 429 source is above it.
    assert {source for source, v in shown.items() if v > 0} == {"ratelimited"}
    assert shown["ratelimited"] == pytest.approx(min(1.0, expected["ratelimited"]), rel=1e-9)


def test_every_rule_expression_runs_and_prometheus_evaluates_it(stack: Stack) -> None:
    """Every alert expression is valid and returns data; Prometheus evaluates every rule cleanly.

    The expressions as written must be valid; as Prometheus evaluates them here (a duration
    threshold cut to seconds, see :func:`rules_for_test`) they must also return data.
    """
    for rule in alert_rules():
        query(stack.prometheus, rule["expr"])  # fails the test if Prometheus rejects it
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules_in_test()}
    assert set(rules) == {rule["alert"] for rule in alert_rules()}

    def without_data() -> list[str]:
        return [name for name, expr in rules.items() if not query(stack.prometheus, expr)]

    deadline = time.monotonic() + DATA_TIMEOUT
    missing = without_data()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = without_data()
    assert not missing, f"rule expressions without data: {missing}"

    def evaluated() -> list[Json]:
        groups = api(stack.prometheus, "api/v1/rules")["data"]["groups"]
        loaded: list[Json] = [rule for group in groups for rule in group["rules"]]
        return loaded

    wait_for(
        "every rule to be evaluated",
        lambda: all(not r["lastEvaluation"].startswith("0001-") for r in evaluated()),
        DATA_TIMEOUT,
        stack.procs,
    )
    loaded = evaluated()
    assert {r["name"] for r in loaded} == set(rules)
    assert [
        (r["name"], r["health"], r.get("lastError")) for r in loaded if r["health"] != "ok"
    ] == []


def alert_identity(labels: dict[str, str]) -> tuple[str, str, str, str]:
    """What an alert is about: (alertname, source, job_id, instance), "" where absent."""
    return (
        labels["alertname"],
        labels.get("source", ""),
        labels.get("job_id", ""),
        labels.get("instance", ""),
    )


def test_every_alert_fires_for_the_scenario_and_nothing_else(stack: Stack) -> None:
    """Each alert fires for exactly the jobs, sources and targets it is about, no other."""
    exp = stack.exporter_instance
    expected = {
        ("BatchJobFailed", "fullstory", "fs-failed", exp),
        *(("BatchJobFailed", "fullstory", job_id, exp) for job_id in stack.failed_by_test),
        ("BatchJobStalled", "evocalize", "evo-stalled", exp),
        # A running report has no item counts: only its age can say it is stuck.
        ("BatchJobRunningTooLong", "talkdesk", "td-running", exp),
        ("BatchJobErrorRatioHigh", "evocalize", "evo-errors", exp),
        *(("BatchJobNotFound", SOURCES[api_], job_id, exp) for api_, job_id in MISSING.items()),
        ("BatchJobSourceUnreachable", "unreachable", "", exp),
        ("BatchJobSourceRateLimited", "ratelimited", "", exp),
        ("BatchJobExporterDown", "", "", stack.dead_instance),
        ("BatchJobExporterConfigReloadFailed", "", "", exp),
        ("BatchJobExporterFleetDown", "", "", exp),
    }
    assert {name for name, *_ in expected} == {rule["alert"] for rule in alert_rules()}
    seen: list[set[tuple[str, str, str, str]]] = [set()]

    def firing() -> list[Json]:
        return [a for a in alerts(stack.prometheus) if a["state"] == "firing"]

    def as_expected() -> bool:
        seen[0] = {alert_identity(a["labels"]) for a in firing()}
        return seen[0] == expected

    deadline = time.monotonic() + ALERT_TIMEOUT
    while not as_expected() and time.monotonic() < deadline:
        stack.procs.check_alive()
        time.sleep(0.2)
    assert seen[0] == expected, (
        f"missing: {sorted(expected - seen[0])}\nunexpected: {sorted(seen[0] - expected)}"
    )
    for alert in firing():
        labels, notes = alert["labels"], alert["annotations"]
        assert labels["severity"] in {"critical", "warning"}, labels
        assert notes["summary"], labels
        for name in ("source", "job_id"):
            if name in labels:
                assert labels[name] in notes["summary"], (name, notes)
                assert labels[name] in notes["description"], (name, notes)
        if "source" not in labels:
            assert labels["instance"] in notes["description"], notes


def test_failed_job_alert_goes_pending_then_firing(stack: Stack) -> None:
    """Failing a running job in the simulator makes BatchJobFailed pending, then firing."""
    api_name, source, job_id = JOB_TO_FAIL

    def failed_alert() -> Json | None:
        for alert in alerts(stack.prometheus):
            labels = alert["labels"]
            if labels["alertname"] == "BatchJobFailed" and labels.get("job_id") == job_id:
                return alert
        return None

    # Silent while the job runs (another job, failed from the start, already fires).
    assert any(a["labels"]["alertname"] == "BatchJobFailed" for a in alerts(stack.prometheus))
    assert failed_alert() is None

    send_json("POST", stack.sim + f"_sim/jobs/{api_name}/{job_id}/finish", {"outcome": "failed"})
    stack.failed_by_test.add(job_id)
    states: list[str] = []

    def firing() -> bool:
        alert = failed_alert()
        if alert is not None and alert["state"] not in states[-1:]:
            states.append(alert["state"])
        return alert is not None and alert["state"] == "firing"

    wait_for("BatchJobFailed to fire", firing, ALERT_TIMEOUT, stack.procs)
    assert states == ["pending", "firing"]
    alert = failed_alert()
    assert alert is not None
    assert alert["labels"]["source"] == source
    assert alert["labels"]["severity"] == "critical"
    assert job_id in alert["annotations"]["description"]
    assert source in alert["annotations"]["description"]
