"""What the soak sets up: its settings, the exporters' configs, and the jobs it makes.

Every exporter watches the three APIs as the sources ``evo``, ``fs`` and
``td``, each naming one ``account:`` with the fleet's budget, so the three
exporters share three accounts.  Each watches load jobs of its own in its
config (they never finish, so the fleet always wants more than its budget) and
finite jobs that come and go through the config, the watch dir and the API.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from exporter.simulator.vendors import evocalize, fullstory, source_config, talkdesk, vendor_url

EVO, FS, TD = evocalize.API, fullstory.API, talkdesk.API
SOURCES = {"evo": EVO, "fs": FS, "td": TD}
API_OF = SOURCES
SOURCE_OF = {api: source for source, api in SOURCES.items()}
TOKEN_TARGET = talkdesk.TOKEN_TARGET
FLEET_NAME = "soak"
# Outcomes each API can report: Evocalize has no failed state; Fullstory's canceled is FAILED.
OUTCOMES = {
    EVO: ("completed",),
    FS: ("completed", "failed"),
    TD: ("completed", "failed", "canceled"),
}


@dataclass(frozen=True, slots=True)
class Plan:
    """The soak's settings, from its duration and whether it is the short run of ``make test``.

    ``budget`` is each account's ``max_requests_per_second`` across the fleet,
    and the simulator's per-account limit; ``load_jobs`` the never-ending jobs
    per source and exporter, polled every ``poll_interval`` seconds, so the
    fleet always wants several times its budget; finite jobs last from
    ``job_seconds[0]`` to ``job_seconds[1]`` seconds.  ``settle`` is how long
    after Redis or an exporter (re)starts before the fleet is held to its
    promises (the link's reconnect backoff is capped at 5 s); ``drain`` how
    long the end waits for finished jobs' final values.
    """

    duration: float
    short: bool
    seed: int = 15
    exporters: int = 3
    budget: float = 5.0
    load_jobs: int = 6
    poll_interval: str = "1s"
    request_timeout: float = 2.0
    job_seconds: tuple[float, float] = (3.0, 30.0)
    settle: float = 8.0
    drain: float = 120.0
    window_grace: float = 0.25  # the issue's: told more than this long ago, no request
    rate_window: float = 10.0
    rate_slack: float = 0.10
    fleet: bool = True  # False: no global.fleet, to see what the checks catch without it

    @classmethod
    def of(cls, duration: float, *, short: bool, seed: int = 15, fleet: bool = True) -> Plan:
        """The settings for a run of ``duration`` seconds (of chaos; start and end come on top)."""
        if short:
            return cls(duration, True, seed, fleet=fleet, job_seconds=(2.0, 8.0), drain=60.0)
        return cls(duration, False, seed, fleet=fleet)


@dataclass(slots=True)
class FiniteJob:
    """A job that ends, made on the simulator and watched by one exporter from one origin.

    ``acked`` is when it was watched for sure (the API's 200/201, the file
    written, the config reloaded); ``removed`` when the soak stopped watching it
    on purpose (an acknowledged DELETE, its file or config entry gone);
    ``unsure``: an answer was lost (the exporter died under the request), so
    either state at the end is right; ``refused``: the API did not take it.
    """

    exporter: int
    origin: str  # config, dir or api
    source: str
    id: str
    total: int
    rate: float
    error_every: int
    outcome: str
    made: float = 0.0
    acked: float | None = None
    removed: float | None = None
    unsure: bool = False
    refused: bool = False

    @property
    def api(self) -> str:
        """The job's API."""
        return API_OF[self.source]

    @property
    def key(self) -> tuple[str, str]:
        """(source, id), as the exporter names it."""
        return self.source, self.id

    def sim_body(self) -> dict[str, object]:
        """What ``POST /_sim/jobs`` takes to make it."""
        return {
            "api": self.api,
            "id": self.id,
            "total": self.total,
            "rate": self.rate,
            "error_every": self.error_every,
            "outcome": self.outcome,
        }


class JobMaker:
    """Finite jobs with seeded random shapes and unique IDs."""

    def __init__(self, plan: Plan, rng: random.Random) -> None:
        self._plan = plan
        self._rng = rng
        self._count = 0

    def make(self, exporter: int, origin: str, source: str | None = None) -> FiniteJob:
        """A new job for ``exporter`` from ``origin`` (a random source unless given)."""
        rng = self._rng
        source = source or rng.choice(tuple(SOURCES))
        self._count += 1
        low, high = self._plan.job_seconds
        seconds = rng.uniform(low, high)
        total = rng.randint(6, 40)
        return FiniteJob(
            exporter=exporter,
            origin=origin,
            source=source,
            id=f"e{exporter}-{origin}-{source}-{self._count}",
            total=total,
            rate=round(total / seconds, 3),
            error_every=rng.choice((0, 3, 5, 7)),
            outcome=rng.choice(OUTCOMES[API_OF[source]]),
        )


def load_job_ids(exporter: int, source: str, plan: Plan) -> list[str]:
    """The never-ending jobs ``exporter`` lists for ``source`` in its config."""
    return [f"e{exporter}-load-{source}-{n}" for n in range(plan.load_jobs)]


@dataclass(frozen=True, slots=True)
class Paths:
    """Where one exporter keeps its config, watch dir and state, under the soak's directory."""

    config: Path
    watch_dir: Path
    state: Path
    token: Path
    redis_url: Path


def config(
    plan: Plan, exporter: int, sim_url: str, paths: Paths, finite: list[FiniteJob]
) -> dict[str, object]:
    """The config of ``exporter``: its load jobs, and the ``finite`` jobs its config lists."""
    sources = []
    for source, api in SOURCES.items():
        base = vendor_url(sim_url, api)
        jobs: list[object] = list(load_job_ids(exporter, source, plan))
        jobs += [{"id": j.id, "labels": {"via": "config"}} for j in finite if j.source == source]
        entry = source_config(api, name=source, base_url=base, jobs=jobs)
        entry |= {"account": f"{source}-account", "max_requests_per_second": plan.budget}
        sources.append(entry)
    fleet = {"redis_url_file": str(paths.redis_url), "name": FLEET_NAME, "size": plan.exporters}
    return {
        "global": {
            "poll_interval": plan.poll_interval,
            "request_timeout": f"{plan.request_timeout:g}s",
            "max_concurrency": 8,
            "finished_job_retention": "2h",
            "watch_dir": str(paths.watch_dir),
            **({"fleet": fleet} if plan.fleet else {}),
        },
        "sources": sources,
    }


# Configs a reload must refuse, each for another reason: YAML, a bad value, an unknown API.
BROKEN_CONFIGS = (
    "global: {poll_interval: 1s\nsources: [\n",
    "global:\n  poll_interval: 3x\nsources: []\n",
    "sources:\n  - name: evo\n    api: no_such_api\n    base_url: http://127.0.0.1:1/\n",
)
