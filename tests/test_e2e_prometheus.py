"""End to end: simulators, the exporter and a real Prometheus, all on 127.0.0.1.

One module-scoped stack serves every test here:

- two simulators (``python -m exporter.simulator``): the main one with running,
  finished, failed, stalled and error-heavy jobs of all three APIs; a second one
  that answers every request with 429 (``Retry-After: 1``);
- the exporter (``python -m exporter``) polling both every second, plus a source on a
  closed port (unreachable) and job IDs that do not exist (``not_found``);
- Prometheus (Debian's ``prometheus``) scraping the exporter, and the same closed
  port as a down target, every second, and evaluating a copy of
  ``prometheus/alerts.yaml`` whose ``for:`` durations are all cut to 1s.

Then every panel query of every dashboard (template variables filled from the
variables' own ``label_values`` queries) and every rule expression runs through
Prometheus' query API and must succeed and return data, except for the few
listed in :data:`RULES_WITHOUT_DATA`; a job is failed through the simulator and
the BatchJobFailed alert must fire in Prometheus' ``/api/v1/alerts``.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml

from exporter.simulator import SimCredentials
from tests.conftest import promtool_lint
from tests.test_dashboards import (
    ALERTS,
    ROOT,
    Json,
    alert_rules,
    grafana_regex_escape,
    label_values,
    load_dashboards,
    panel_queries,
    substitute,
    variables,
)

pytestmark = pytest.mark.e2e

SCRAPE_JOB = "batch-job-exporter"  # the job name alerts.yaml's BatchJobExporterDown selects
START_TIMEOUT = 20.0  # each process, until it answers
SCENARIO_TIMEOUT = 40.0  # until every job state the queries need is on /metrics
DATA_TIMEOUT = 40.0  # until every query returns data (rates need a few scrapes)
ALERT_TIMEOUT = 60.0  # until the failed-job alert fires
SHORT_FOR = "1s"  # every rule's `for:` in the copy Prometheus evaluates

# Rules whose condition the scenario cannot produce: instead of the rule's expression,
# its probe (the same series, without the condition) must return data.
RULES_WITHOUT_DATA = {
    # The exporter loads its config once, at start; nothing can make that load fail
    # while it keeps running.
    "BatchJobExporterConfigReloadFailed": "batchjob_exporter_config_last_reload_successful",
}

EVO, FS, TD = "evocalize_batch_report", "batch_import_job", "report_job"
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
MISSING = {FS: "fs-missing", TD: "td-missing"}  # never created: the vendor answers 404
RATE_LIMITED_JOB = "rl-job"  # on the second simulator, which answers 429 to everything
UNREACHABLE_JOB = "down-job"  # on a closed port
JOB_TO_FAIL = (FS, "fullstory", "fs-to-fail")  # (api, source, id)

# Lines of the exporter's /metrics that show the scenario has reached every state.
SCENARIO_READY = (
    'batchjob_status{source="fullstory",job_id="fs-missing",status="not_found"} 1',
    'batchjob_status{source="fullstory",job_id="fs-failed",status="failed"} 1',
    'batchjob_status{source="talkdesk",job_id="td-done",status="completed"} 1',
    'batchjob_errors_by_code{source="evocalize",job_id="evo-finished"',
    'batchjob_exporter_rate_limited_total{source="ratelimited"}',
    'batchjob_exporter_api_requests_total{code="connection_error",source="unreachable"}',
)


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
    """A loopback port nothing listens on (bound and released)."""
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

    def start(
        self, name: str, args: list[str], *, stdout_pipe: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` with stderr (and stdout unless piped) to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{name}.log").open("wb")
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


def start_simulator(procs: Processes, name: str) -> str:
    """Start a simulator on a free loopback port; its root URL."""
    proc = procs.start(
        name,
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0"],
        stdout_pipe=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline().decode() if ready else ""
    match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:\d+/)\n", line)
    if match is None:
        procs.check_alive()
        pytest.fail(f"{name} did not start: {line!r}\n{procs.tails()}")
    return match[1]


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


def query(prometheus: str, expr: str) -> list[Json]:
    """Run an instant query; its result. A query Prometheus rejects fails the test."""
    answer = api(prometheus, "api/v1/query", {"query": expr})
    assert answer["status"] == "success", f"{answer.get('error')}\n  in: {expr}"
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return [{"value": data["result"]}]
    result: list[Json] = data["result"]
    return result


def alerts(prometheus: str) -> list[Json]:
    """Prometheus' pending and firing alerts."""
    found: list[Json] = api(prometheus, "api/v1/alerts")["data"]["alerts"]
    return found


# -- the stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """URLs of the running stack (all end with a slash)."""

    sim: str
    exporter: str
    prometheus: str
    procs: Processes


def exporter_config(sim: str, sim2: str, dead_port: int) -> Json:
    """The exporter's config: the scenario's jobs on both simulators and a closed port."""
    creds = SimCredentials()
    evo_headers = {
        "X-Evocalize-Client-Key": {"secrets": [creds.evocalize_key]},
        "X-Evocalize-Client-Key-Id": {"values": [creds.evocalize_key_id]},
    }
    fs_auth = {"type": "Basic", "credentials": creds.fullstory_api_key}

    def jobs(api_name: str) -> list[Json]:
        listed: list[Json] = [
            {"id": job_id, "labels": labels} if labels else {"id": job_id}
            for api_, job_id, _, labels in JOBS
            if api_ == api_name
        ]
        if api_name in MISSING:
            listed.append({"id": MISSING[api_name]})
        return listed

    return {
        "global": {"poll_interval": "1s", "request_timeout": "2s", "finished_job_retention": "1h"},
        "sources": [
            {
                "name": "evocalize",
                "api": EVO,
                "base_url": sim + "evocalize/",
                "http_headers": evo_headers,
                "jobs": jobs(EVO),
            },
            {
                "name": "fullstory",
                "api": FS,
                "base_url": sim + "fullstory/",
                "authorization": fs_auth,
                "jobs": jobs(FS),
            },
            {
                "name": "talkdesk",
                "api": TD,
                "base_url": sim + "talkdesk/",
                "report_type": "calls",
                "oauth2": {
                    "client_id": creds.talkdesk_client_id,
                    "client_secret": creds.talkdesk_client_secret,
                    "token_url": sim + "talkdesk/oauth/token",
                    "scopes": ["data-reports:read"],
                },
                "jobs": jobs(TD),
            },
            {
                "name": "ratelimited",
                "api": EVO,
                "base_url": sim2 + "evocalize/",
                "http_headers": evo_headers,
                "jobs": [RATE_LIMITED_JOB],
            },
            {
                "name": "unreachable",
                "api": FS,
                "base_url": f"http://127.0.0.1:{dead_port}/fullstory/",
                "authorization": fs_auth,
                "jobs": [UNREACHABLE_JOB],
            },
        ],
    }


def short_rules(text: str) -> str:
    """alerts.yaml with every ``for:`` cut to :data:`SHORT_FOR`, so alerts fire in seconds."""
    shortened, count = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", rf"\g<1>{SHORT_FOR}", text)
    assert count == len(alert_rules())
    return shortened


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Simulators, exporter and Prometheus, running until the module's tests are done."""
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.fail("prometheus not found: run `make test`, which installs Debian's prometheus")
    tmp = tmp_path_factory.mktemp("e2e")
    procs = Processes(tmp)
    try:
        sim = start_simulator(procs, "simulator")
        sim2 = start_simulator(procs, "simulator-ratelimited")
        for api_name, job_id, kwargs, _ in JOBS:
            send_json("POST", sim + "_sim/jobs", {"api": api_name, "id": job_id, **kwargs})
        send_json("POST", sim2 + "_sim/jobs", {"api": EVO, "id": RATE_LIMITED_JOB})
        send_json("PUT", sim2 + f"_sim/faults/{EVO}", {"kind": "rate_limit", "retry_after": "1"})

        dead_port = free_port()
        config = tmp / "exporter.yaml"
        config.write_text(yaml.safe_dump(exporter_config(sim, sim2, dead_port)))
        exporter_port = free_port()
        exporter = f"http://127.0.0.1:{exporter_port}/"
        procs.start(
            "exporter",
            [
                sys.executable,
                "-m",
                "exporter",
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{exporter_port}",
            ],
        )
        wait_for("the exporter's /readyz", answers_200(exporter + "readyz"), START_TIMEOUT, procs)

        rules = tmp / "alerts.yaml"
        rules.write_text(short_rules(ALERTS.read_text(encoding="utf-8")))
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
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{exporter_port}", f"127.0.0.1:{dead_port}"]}
                    ],
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
        wait_for("Prometheus' /-/ready", answers_200(prometheus + "-/ready"), START_TIMEOUT, procs)

        def scenario_ready() -> bool:
            status, page = request("GET", exporter + "metrics")
            text = page.decode()
            return status == 200 and all(line in text for line in SCENARIO_READY)

        wait_for("every job state on /metrics", scenario_ready, SCENARIO_TIMEOUT, procs)
        # A few scrapes of that in Prometheus, so the variables' label_values find it.
        scraped = (
            f'count_over_time(batchjob_exporter_rate_limited_total{{job="{SCRAPE_JOB}"}}[1m]) >= 3'
        )
        wait_for(
            "Prometheus to scrape the scenario",
            lambda: bool(query(prometheus, scraped)),
            SCENARIO_TIMEOUT,
            procs,
        )
        yield Stack(sim, exporter, prometheus, procs)
    finally:
        procs.stop()


# -- filling in template variables -------------------------------------------------------------


def variable_assignments(prometheus: str, board: Json) -> list[dict[str, str]]:
    """Every combination of real values Grafana could give the dashboard's variables.

    Multi-value variables take "All" (their ``allValue``, or every value as a regex
    like Grafana builds it); single-value ones take each value in turn.  Values come
    from the variables' own ``label_values`` queries, run as Grafana runs them.
    """
    assignments: list[dict[str, str]] = [{}]
    for var in variables(board):
        name = var["name"]
        grown: list[dict[str, str]] = []
        for values in assignments:
            if var["type"] == "datasource":
                grown.append({**values, name: "prometheus"})
            elif var["type"] == "custom":
                grown.append({**values, name: var["current"]["value"]})
            else:
                selector, label = label_values(substitute(var["definition"], values))
                answer = api(
                    prometheus, f"api/v1/label/{label}/values?{urlencode({'match[]': selector})}"
                )
                assert answer["status"] == "success", f"{name}: {answer}"
                found: list[str] = sorted(answer["data"])
                assert found, f"variable {name} lists nothing: {selector}"
                if var.get("includeAll"):
                    everything = "|".join(grafana_regex_escape(v) for v in found)
                    grown.append({**values, name: var.get("allValue") or f"({everything})"})
                else:
                    grown += [{**values, name: value} for value in found]
        assignments = grown
    return assignments


# -- the tests ---------------------------------------------------------------------------------


def test_live_exposition_passes_promtool_check_metrics(stack: Stack, promtool: str) -> None:
    """The live /metrics page passes promtool check metrics without a complaint."""
    status, page = request("GET", stack.exporter + "metrics")
    assert status == 200
    assert promtool_lint(promtool, page) == ""


def test_every_dashboard_query_runs_and_returns_data(stack: Stack) -> None:
    """Every panel query of every dashboard is valid PromQL and returns data."""
    checks: list[tuple[str, list[str]]] = []
    for file_name, board in load_dashboards().items():
        assignments = variable_assignments(stack.prometheus, board)
        for where, expr in panel_queries(board):
            exprs = sorted({substitute(expr, values) for values in assignments})
            checks.append((f"{file_name}: {where}", exprs))
    assert len(checks) > 50

    def has_data(exprs: list[str]) -> bool:
        # Valid for every value of the variables (each is run), and data for at least one.
        results = [query(stack.prometheus, e) for e in exprs]
        return any(results)

    def without_data() -> list[str]:
        return [f"{where}\n    {exprs[0]}" for where, exprs in checks if not has_data(exprs)]

    deadline = time.monotonic() + DATA_TIMEOUT
    missing = without_data()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = without_data()
    assert not missing, "panel queries without data:\n" + "\n".join(missing)


def test_every_rule_expression_runs_and_returns_data(stack: Stack) -> None:
    """Every alert expression is valid and returns data; Prometheus evaluates every rule cleanly."""
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert set(RULES_WITHOUT_DATA) <= set(rules)
    checks = {name: RULES_WITHOUT_DATA.get(name, expr) for name, expr in rules.items()}
    for expr in rules.values():
        query(stack.prometheus, expr)  # valid even when it returns nothing

    def without_data() -> list[str]:
        return [name for name, expr in checks.items() if not query(stack.prometheus, expr)]

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


def test_failed_job_alert_fires_in_prometheus(stack: Stack) -> None:
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
    states: list[str] = []

    def firing() -> bool:
        alert = failed_alert()
        if alert is not None and alert["state"] not in states[-1:]:
            states.append(alert["state"])
        return alert is not None and alert["state"] == "firing"

    wait_for("BatchJobFailed to fire", firing, ALERT_TIMEOUT, stack.procs)
    assert set(states) <= {"pending", "firing"}
    alert = failed_alert()
    assert alert is not None
    assert alert["labels"]["source"] == source
    assert alert["labels"]["severity"] == "critical"
    assert job_id in alert["annotations"]["description"]
    assert source in alert["annotations"]["description"]
