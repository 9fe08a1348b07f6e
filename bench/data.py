"""The benchmark's data: a seeded, realistic mix of jobs of the three APIs.

Every snapshot comes from the real vendor parsers reading the bodies the
simulator would send, so the series and their bytes are what the exporter
shows in production.  The same jobs fill the exporter's table, the naive
prometheus_client registry and the config files of the process runs.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, replace

from exporter.jobs.table import JobTable
from exporter.model import Response, Snapshot, Status
from exporter.simulator import (
    EVOCALIZE,
    FULLSTORY,
    PREFIXES,
    TALKDESK,
    SimCredentials,
    error_code_counts,
)
from exporter.simulator.jobs import rfc3339
from exporter.vendors import REGISTRY

SOURCES = {EVOCALIZE: "evocalize", FULLSTORY: "fullstory", TALKDESK: "talkdesk"}
API_WEIGHTS = ((EVOCALIZE, 0.4), (FULLSTORY, 0.4), (TALKDESK, 0.2))
# The state mix: half finished (kept for the retention), a third running, the rest
# waiting to start or with a failing last poll.
STATE_WEIGHTS = (
    ("completed", 0.45),
    ("failed", 0.05),
    ("canceled", 0.02),
    ("gone", 0.01),
    ("running", 0.35),
    ("pending", 0.08),
    ("failing", 0.04),
)
TEAMS = ("growth", "support", "data-platform", "billing")
REPORT_TYPE = "calls"


@dataclass(frozen=True, slots=True)
class Job:
    """One watched job and what the exporter last learned of it."""

    api: str
    job_id: str
    labels: tuple[tuple[str, str], ...]
    state: str
    snapshot: Snapshot | None
    errors: tuple[tuple[str, int], ...] | None
    seen: float  # first good poll
    last: float  # last good poll

    @property
    def source(self) -> str:
        """The source name the job is configured under."""
        return SOURCES[self.api]


def weighted(rng: random.Random, weights: tuple[tuple[str, float], ...]) -> str:
    """One name drawn by weight."""
    return rng.choices([n for n, _ in weights], [w for _, w in weights])[0]


def new_id(api: str, rng: random.Random) -> str:
    """A job ID shaped like the vendor's: hex for Evocalize and Talkdesk, base64 for Fullstory."""
    if api == FULLSTORY:
        return base64.b64encode(rng.randbytes(10)).decode()
    return rng.randbytes(6 if api == EVOCALIZE else 12).hex()


def _body(api: str, state: str, rng: random.Random, now: float) -> tuple[int, dict[str, object]]:
    """The HTTP status and JSON body the vendor sends for a job in ``state``."""
    total = rng.choice((500, 1000, 5000, 20000, 100000))
    done = {"pending": 0, "running": rng.randrange(total), "failing": rng.randrange(total)}
    processed = done.get(state, total)
    failed = processed // 40 if rng.random() < 0.3 else 0
    finished = state in ("completed", "failed", "canceled")
    created = now - rng.uniform(60, 3000)
    if api == EVOCALIZE:
        data = {
            "totalItems": total,
            "remainingItems": total - processed,
            "completedItems": processed,
            "successfulItems": processed - failed,
            "errorItems": failed,
            "isCompleted": finished,
        }
        return 200, {"data": data}
    if api == FULLSTORY:
        status = {"completed": "COMPLETED", "failed": "FAILED", "canceled": "FAILED"}
        job: dict[str, object] = {"status": status.get(state, "PROCESSING")}
        job["created"] = rfc3339(created)
        if finished:
            job["finished"] = rfc3339(created + rng.uniform(30, 600))
        body: dict[str, object] = {"imports": processed - failed, "job": job}
        if job["status"] == "FAILED":
            body["errors"] = failed
        return 200, body
    word = {"completed": "done", "failed": "failed", "canceled": "canceled", "pending": "created"}
    status_word = word.get(state, "processing")
    name = rng.choice(("Daily calls", "Weekly calls", "Calls archive"))
    job = {"name": name, "timezone": "Europe/Lisbon", "status": status_word, "format": "csv"}
    return (300 if status_word == "done" else 200), {"job": job}


def jobs(n: int, *, seed: int = 1, now: float) -> list[Job]:
    """``n`` jobs of the mixed APIs and states, the same for the same seed and ``now``."""
    rng = random.Random(seed)
    out: list[Job] = []
    for _ in range(n):
        api = weighted(rng, API_WEIGHTS)
        state = weighted(rng, STATE_WEIGHTS)
        labels = (("team", rng.choice(TEAMS)),) if rng.random() < 0.3 else ()
        seen = now - rng.uniform(30, 3000)
        last = min(now, seen + rng.uniform(0, 3000))
        if state == "gone":
            snap = Snapshot(Status.NOT_FOUND, "http_404")
            if api == TALKDESK:
                snap = Snapshot(Status.DELETED, "deleted")
        else:
            status, body = _body(api, state, rng, now)
            resp = Response(status, {}, json.dumps(body).encode())
            snap = REGISTRY[api].parse_job(resp)
        errors = None
        if api == EVOCALIZE and snap.status.finished and snap.error_items:
            counts = error_code_counts(snap.error_items)
            errors = tuple(sorted((code or "unknown", k) for code, k in counts.items()))
        out.append(Job(api, new_id(api, rng), labels, state, snap, errors, seen, last))
    return out


def fill_table(table: JobTable, batch: list[Job]) -> None:
    """Record the jobs in ``table`` as the poller would have, in order."""
    for job in batch:
        key = (job.source, job.job_id)
        table.add(key, job.api, job.labels)
        snap = job.snapshot
        if snap is None:
            continue
        if snap.status.finished:  # first seen running, later finished
            table.record_success(key, replace(snap, status=Status.RUNNING), job.seen)
            if job.errors is not None:
                table.record_errors(key, job.errors)
        table.record_success(key, snap, job.last)
        if job.state == "failing":
            table.record_failure(key)


def config_yaml(
    batch: list[tuple[str, str]],
    sim_url: str,
    *,
    interval: str,
    retention: str = "1h",
    concurrency: int = 16,
) -> str:
    """A config watching ``(api, job_id)`` pairs on the simulator at ``sim_url``."""
    c = SimCredentials()
    auth = {
        EVOCALIZE: (
            "    http_headers:\n"
            f"      X-Evocalize-Client-Key: {{secrets: [{c.evocalize_key}]}}\n"
            f"      X-Evocalize-Client-Key-Id: {{values: [{c.evocalize_key_id}]}}\n"
        ),
        FULLSTORY: f"    authorization: {{type: Basic, credentials: {c.fullstory_api_key}}}\n",
        TALKDESK: (
            f"    report_type: {REPORT_TYPE}\n"
            f"    oauth2: {{client_id: {c.talkdesk_client_id}, "
            f"client_secret: {c.talkdesk_client_secret}, "
            f"token_url: '{sim_url}talkdesk/oauth/token', scopes: [data-reports:read]}}\n"
        ),
    }
    out = [
        f"global:\n  poll_interval: {interval}\n  finished_job_retention: {retention}\n"
        f"  max_concurrency: {concurrency}\nsources:\n"
    ]
    for api, source in SOURCES.items():
        ids = [job_id for a, job_id in batch if a == api]
        out.append(
            f"  - name: {source}\n    api: {api}\n    base_url: '{sim_url}{PREFIXES[api]}/'\n"
        )
        out.append(auth[api])
        out.append("    jobs:" + ("\n" if ids else " []\n"))
        out += [f"      - {json.dumps(job_id)}\n" for job_id in ids]
    return "".join(out)


# A simulated job as ``bench.simproc`` takes it: api, id, total items, items/s, outcome.
SimSpec = tuple[str, str, int, float, str]
FOREVER = (10**9, 1.0)  # total, rate: still running when the benchmark ends


def sim_job(api: str, job_id: str, lifetime: float | None, outcome: str = "completed") -> SimSpec:
    """A simulated job that finishes after ``lifetime`` seconds (``None``: never, here)."""
    if lifetime is None:
        return (api, job_id, *FOREVER, outcome)
    rate = 10.0
    return (api, job_id, max(1, round(lifetime * rate)), rate, outcome)


def sim_jobs(n: int, *, seed: int, running: bool = False) -> list[SimSpec]:
    """``n`` simulated jobs: the state mix of :func:`jobs`, or all running if ``running``.

    Finished ones are finished from the start (one poll each); running ones run
    for the whole benchmark.  A job whose polls fail, or that waits to start, runs.
    """
    rng = random.Random(seed)
    out: list[SimSpec] = []
    for _ in range(n):
        api = weighted(rng, API_WEIGHTS)
        state = "running" if running else weighted(rng, STATE_WEIGHTS)
        job_id = new_id(api, rng)
        if state in ("completed", "failed", "canceled", "gone"):
            out.append(sim_job(api, job_id, 0.0, "deleted" if state == "gone" else state))
        else:
            out.append(sim_job(api, job_id, None))
    return out
