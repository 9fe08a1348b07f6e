"""The benchmark's data: a seeded, realistic mix of jobs of the simulated APIs.

Every snapshot comes from the real vendor parsers reading the answers the
simulator's vendor modules give for a job in that state, so the series and
their bytes are what the exporter shows in production.  The same jobs fill the
exporter's table, the naive prometheus_client registry and the config files of
the process runs.  What differs by vendor comes from its ``SimVendor``: its
share of the jobs (``bench_weight``), its IDs (``new_id``), its jobs' options
(those of one of its demo jobs), its item error codes and whether it still
reports a deleted job.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, replace

from exporter.jobs.table import JobTable
from exporter.model import Response, Snapshot, Status
from exporter.simulator import VENDORS, SimJob
from exporter.simulator.vendors import source_yaml, vendor_url
from exporter.vendors import REGISTRY

SOURCES = {api: vendor.prefix for api, vendor in VENDORS.items()}
API_WEIGHTS = tuple((api, v.bench_weight) for api, v in VENDORS.items() if v.bench_weight > 0)
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
ERROR_EVERY = 40  # a job with failures fails one item in this many
PENDING_START = 60.0  # a pending job starts this long after ``now``
ANSWERED_AT = "http://127.0.0.1:9/"  # the simulator URL the bodies' links point at


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
    """A job ID shaped like the vendor's (its ``SimVendor.new_id``)."""
    return VENDORS[api].new_id(rng)


def _sim_job(api: str, state: str, rng: random.Random, now: float) -> SimJob:
    """A simulated job that is in ``state`` at ``now`` (``gone``: deleted, and finished)."""
    vendor = VENDORS[api]
    total = rng.choice((500, 1000, 5000, 20000, 100000))
    done = {"pending": 0, "running": rng.randrange(total), "failing": rng.randrange(total)}
    processed = done.get(state, total)
    error_every = ERROR_EVERY if rng.random() < 0.3 else 0
    created = now - rng.uniform(60, 3000)
    options = asdict(rng.choice(vendor.demo_jobs).options) if vendor.demo_jobs else {}
    finished = state in ("completed", "failed", "canceled", "gone")
    if state == "pending":
        created = now + PENDING_START
    job = SimJob(
        api=api,
        id="bench",
        created=created,
        total=total,
        rate=0.0 if finished else processed / (now - created) if processed else 0.0,
        error_every=error_every,
        outcome=("deleted" if state == "gone" else state) if finished else "completed",
        options=vendor.check_options(options),
    )
    if finished:
        job.finish(at=created + rng.uniform(30, 600))
    return job


def _snapshot(api: str, state: str, rng: random.Random, now: float) -> Snapshot:
    """What the exporter makes of the vendor's answer for a job in ``state``."""
    if state == "gone" and not VENDORS[api].reports_deleted:
        return Snapshot(Status.NOT_FOUND, "http_404")  # the vendor forgot it: a 404
    job = _sim_job(api, state, rng, now)
    answer = VENDORS[api].answer(job, now, vendor_url(ANSWERED_AT, api))
    response = Response(answer.status, dict(answer.headers), json.dumps(answer.body).encode())
    return REGISTRY[api].parse_job(response)


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
        snap = _snapshot(api, state, rng, now)
        errors = None
        # APIs with an errors endpoint: the poller has read it once the job finished.
        if REGISTRY[api].reads_errors(snap) and snap.error_items:
            counts = VENDORS[api].error_code_counts(snap.error_items)
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
    out = [
        f"global:\n  poll_interval: {interval}\n  finished_job_retention: {retention}\n"
        f"  max_concurrency: {concurrency}\nsources:\n"
    ]
    for api, source in SOURCES.items():
        ids = [job_id for a, job_id in batch if a == api]
        out.append(source_yaml(api, name=source, base_url=vendor_url(sim_url, api), jobs=ids))
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
