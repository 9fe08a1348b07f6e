"""What the soak sees of the exporters while they run: memory, the fleet gauges, final values.

Every couple of seconds each running exporter's RSS is read from ``/proc``
and its ``/metrics`` scraped: how long the scrape took, the fleet gauges,
and every job's values.  A finished job's values are *settled* once its
status is final and, where its API lists failed items (Evocalize, a failed
Fullstory import), the listing's counts by code add up to its failed items:
the exporter shows only complete reads, so from then on the values are final.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bench.procs import memory_mb
from soak.world import EVO, FS

FINAL = frozenset({"completed", "failed", "canceled", "deleted", "not_found"})
ITEMS = ("total_items", "remaining_items", "completed_items", "successful_items", "error_items")
_LINE = re.compile(r"^(batchjob_\w+)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at one exporter: when, its RSS, the scrape's time and the fleet gauges."""

    at: float
    exporter: int
    life: int  # which start of the exporter (0: the first)
    rss_mb: float | None
    scrape_seconds: float | None  # None: the scrape failed
    fleet_up: float | None
    fleet_members: float | None


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse_page(text: str) -> tuple[dict[str, float], dict[tuple[str, str], dict[str, object]]]:
    """The exporter's own unlabelled gauges, and each job's values, from a ``/metrics`` page."""
    own: dict[str, float] = {}
    jobs: dict[tuple[str, str], dict[str, object]] = {}
    for line in text.splitlines():
        if line.startswith("batchjob_exporter_fleet_"):
            name, _, value = line.partition(" ")
            own[name] = float(value)
            continue
        found = _LINE.match(line)
        if not found:
            continue
        name, raw, value = found.groups()
        labels = {k: _unescape(v) for k, v in _LABEL.findall(raw)}
        if "job_id" not in labels or "source" not in labels:
            continue
        job = jobs.setdefault((labels["source"], labels["job_id"]), {"codes": {}})
        metric = name.removeprefix("batchjob_")
        if metric == "status" and float(value) == 1:
            job["status"] = labels["status"]
        elif metric in ITEMS:
            job[metric] = int(float(value))
        elif metric == "errors_by_code":
            codes = job["codes"]
            assert isinstance(codes, dict)
            codes[labels["code"]] = int(float(value))
    return own, jobs


def settled(api: str, values: dict[str, object]) -> bool:
    """Whether a job's values are final: a final status, and its failed items all listed."""
    status = values.get("status")
    if status not in FINAL:
        return False
    listed = api == EVO or (api == FS and status == "failed")
    if not listed:
        return True
    codes = values["codes"]
    assert isinstance(codes, dict)
    return values.get("error_items") == sum(codes.values())


class Observer:
    """The samples taken, and the settled values of each job, by exporter."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.finals: dict[tuple[int, str, str], dict[str, object]] = {}
        self.settled_at: dict[tuple[int, str, str], float] = {}  # when first seen settled

    def record(
        self,
        *,
        exporter: int,
        life: int,
        pid: int | None,
        page: str | None,
        seconds: float | None,
        api_of: dict[str, str],
    ) -> None:
        """Take one look: ``page`` is the scraped ``/metrics`` (``None``: it failed)."""
        rss = None
        if pid is not None:
            try:
                rss = memory_mb(pid).get("rss")
            except OSError:  # it exited a moment ago
                rss = None
        own: dict[str, float] = {}
        if page is not None:
            own, jobs = parse_page(page)
            for (source, job_id), values in jobs.items():
                api = api_of.get(source)
                if api is not None and settled(api, values):
                    self.finals[exporter, source, job_id] = values
                    self.settled_at.setdefault((exporter, source, job_id), time.time())
        self.samples.append(
            Sample(
                at=time.time(),
                exporter=exporter,
                life=life,
                rss_mb=rss,
                scrape_seconds=seconds if page is not None else None,
                fleet_up=own.get("batchjob_exporter_fleet_up"),
                fleet_members=own.get("batchjob_exporter_fleet_members"),
            )
        )
