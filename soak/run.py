"""One soak run, start to end: set up, chaos, drain, collect, check.

After the chaos the faults are cleared, every exporter and Redis are up, and
the run *drains*: it waits (at most ``plan.drain`` seconds) until every
finite job still watched shows its final values, then takes the simulator's
truth and each exporter's list of jobs, and stops everything (SIGTERM: each
exporter must exit 0).  The checks then read what was collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from soak import outcomes, politeness
from soak.chaos import Chaos, schedule
from soak.members import Member
from soak.procs import RedisServer
from soak.report import Row
from soak.rig import Rig
from soak.world import SOURCES, TOKEN_TARGET, Plan, load_job_ids

DRAIN_POLL = 2.0
DIR_PICKUP = 8.0  # a watch-dir file is read within about 4 s of being written
SCANS = 5.0  # a removed watch-dir file's jobs go at the next scan, 2 s at most


@dataclass(frozen=True, slots=True)
class Result:
    """The rows of the table and what the chaos did (action counts)."""

    rows: list[Row]
    counts: Counter[str]
    phases: dict[str, float]  # seconds each phase took: start, chaos, drain, stop


async def _watched(rig: Rig, member: Member) -> dict[tuple[str, str], str]:
    """What ``member`` watches (``GET /api/v1/jobs``), asked up to three times."""
    for _ in range(3):
        status, body = await rig.api(member, "GET", "jobs")
        if status == 200 and isinstance(body, dict):
            return {(job["source"], job["id"]): job["origin"] for job in body["jobs"]}
        await asyncio.sleep(DRAIN_POLL)
    raise RuntimeError(f"GET /api/v1/jobs on {member.name}: {status}")


async def _calm(rig: Rig) -> None:
    """No more faults nor drops; every exporter and Redis up."""
    await rig.sim_call("DELETE", "_sim/faults")
    for target in (*SOURCES.values(), TOKEN_TARGET):
        await rig.sim_call("PUT", "_soak/drop", {"target": target, "count": 0})
    if not rig.redis.proc.running:
        await rig.redis.start()
    for member in rig.members:
        async with member.lock:
            if not member.up:
                await member.start()


async def _drain(rig: Rig, deadline: float) -> None:
    """Wait until every finite job still watched shows its final values."""
    began = time.monotonic()
    while time.monotonic() < deadline:
        watched = {m.index: await _watched(rig, m) for m in rig.members}
        waiting = [
            job
            for job in rig.jobs
            if job.removed is None
            and not job.refused
            and (job.exporter, job.source, job.id) not in rig.observer.finals
            and (job.key in watched[job.exporter] or time.monotonic() - began < DIR_PICKUP)
        ]
        if not waiting:
            return
        rig.note(f"drain: waiting for {len(waiting)} jobs: {' '.join(j.id for j in waiting[:8])}")
        await asyncio.sleep(DRAIN_POLL)


def _other_rows(rig: Rig, codes: dict[str, int | None], limit: dict[str, object]) -> list[Row]:
    bad_exits = list(rig.exits)
    bad_exits += [
        f"{m.name} exited {codes[m.name]} on SIGTERM" for m in rig.members if codes[m.name] != 0
    ]
    redis_down = [
        s.scrape_seconds
        for s in rig.observer.samples
        if s.scrape_seconds is not None and not rig.timeline.up_throughout("redis", s.at, s.at)
    ]
    scrapes = [s.scrape_seconds for s in rig.observer.samples if s.scrape_seconds is not None]
    failed = sum(1 for s in rig.observer.samples if s.scrape_seconds is None)
    worst, worst_down = max(scrapes, default=0.0), max(redis_down, default=0.0)
    return [
        Row(
            "exporters that exited on their own, or not 0 on SIGTERM",
            str(len(bad_exits)),
            "0",
            not bad_exits,
            tuple(bad_exits),
        ),
        Row(
            "answers not as expected (reloads, DELETEs, restarts)",
            str(len(rig.surprises)),
            "0",
            not rig.surprises,
            tuple(rig.surprises),
        ),
        Row(
            "/metrics scrape time, max (while Redis was down)",
            f"{worst * 1000:.0f} ms ({worst_down * 1000:.0f} ms), "
            f"{failed} failed of {len(scrapes) + failed}",
            "reported",
            None,
        ),
        Row(
            "requests the simulator's limiter rejected",
            f"{limit.get('rejected')} of {limit.get('admitted', 0) + limit.get('rejected', 0)}",  # type: ignore[operator]
            "reported",
            None,
        ),
    ]


async def soak(plan: Plan, root: Path) -> Result:
    """Run the soak in ``root`` (logs, state and the request log stay there)."""
    phases: dict[str, float] = {}
    began = time.monotonic()

    def lap(name: str) -> None:
        nonlocal began
        phases[name] = time.monotonic() - began
        began = time.monotonic()

    rig = Rig(plan, root)
    tidy: asyncio.Task[None] | None = None
    try:
        await rig.start()
        lap("start")
        chaos = Chaos(rig)
        steps = schedule(plan)
        tidy = asyncio.create_task(chaos.tidy())
        start = time.time()
        await chaos.run(steps)
        lap("chaos")
        await _calm(rig)
        await _drain(rig, time.monotonic() + plan.drain)
        tidy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tidy
        tidy = None
        await asyncio.sleep(SCANS)  # the last files tidy removed are gone from the exporters too
        lap("drain")
        end = time.time()
        watched = {m.index: await _watched(rig, m) for m in rig.members}
        keys = [[job.api, job.id] for job in rig.jobs]
        truth = {(t["api"], t["id"]): t for t in await rig.sim_call("POST", "_soak/truth", keys)}
        limit = await rig.sim_call("GET", "_sim/rate_limit")
    finally:
        if tidy is not None:
            tidy.cancel()
        codes = await rig.stop()
        lap("stop")
    requests = politeness.load(rig.requests_log)
    ending = outcomes.Ending(rig.jobs, rig.observer.finals, truth, watched)
    config_jobs = {
        m.index: {(s, i) for s in SOURCES for i in load_job_ids(m.index, s, plan)}
        | {job.key for job in m.config_jobs}
        for m in rig.members
    }
    dir_jobs: dict[int, set[tuple[str, str]]] = {m.index: set() for m in rig.members}
    for jobs in rig.dir_files.values():
        for job in jobs:
            dir_jobs[job.exporter].add(job.key)
    samples = rig.observer.samples
    rows = [
        politeness.window_check(requests, rig.timeline, plan),
        *politeness.rate_checks(requests, rig.timeline, samples, plan, (start, end)),
        outcomes.values_check(ending),
        outcomes.lag_row(ending, rig.observer.settled_at),
        *outcomes.registrations_check(ending, rig.timeline),
        outcomes.listed_check(ending, config_jobs, dir_jobs),
        *outcomes.log_checks(sorted((root / "logs").glob("*.log")), RedisServer.PASSWORD),
        *_other_rows(rig, codes, limit),
        *outcomes.rss_rows(samples, rig.timeline, plan, (start, end)),
    ]
    return Result(rows, rig.counts, phases)
