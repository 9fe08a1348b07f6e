"""What happens to the fleet during the soak: a seeded schedule of actions, and the actions.

The schedule is drawn up front from the seed and the duration: each kind of
action has a rate per minute and happens at least once, at stratified random
times (spread over the run, never bunched).  Redis outages last 12 to 20 s (long
enough for a whole 10 s window of the budget check inside one); exporter
SIGKILLs go to every exporter but the last, whose memory is then one process's
over the whole run.  Alongside, :meth:`Chaos.tidy` plays the apps: a
registered job whose final values the exporter shows is DELETEd, a watch-dir
file whose jobs are all final is removed, so the fleet's job count stays level.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from soak.faults import DECK, target_of
from soak.members import Member
from soak.rig import Rig
from soak.world import BROKEN_CONFIGS, SOURCES, FiniteJob, Plan

# Per minute of chaos; every kind at least once per run (every injection of the deck).
RATES = {
    "fault": 24.0,
    "register": 30.0,
    "cancel": 4.0,
    "dir add": 8.0,
    "dir remove": 2.0,
    "reload": 3.0,
    "reload by SIGHUP": 1.0,
    "broken reload": 1.0,
    "broken reload by SIGHUP": 0.5,
    "kill exporter": 1.0,
    "kill redis": 0.4,
}
REDIS_OUTAGE = (12.0, 20.0)
SHORT_OUTAGE = (4.0, 6.0)
TIDY_EVERY = 2.0


@dataclass(frozen=True, slots=True)
class Step:
    """One action at ``at`` seconds into the chaos; ``member`` the exporter it is done to."""

    at: float
    kind: str
    member: int


def outage(plan: Plan) -> tuple[float, float]:
    """How long Redis stays down: long enough for a 10 s window; in the short run, briefly."""
    return SHORT_OUTAGE if plan.short else REDIS_OUTAGE


def schedule(plan: Plan) -> list[Step]:
    """Every action of a run, in time order, the same for the same plan (seed included).

    Redis outages fall after the first ``settle`` seconds and end before the
    chaos does; in the short run its one outage falls in the last third, so
    that windows met before it count (the fleet had been told of them).
    """
    rng = random.Random(plan.seed)
    steps: list[Step] = []
    duration = plan.duration
    for kind, per_minute in RATES.items():
        least = len(DECK) if kind == "fault" else 1  # every injection, in the short run too
        count = max(least, round(per_minute * duration / 60))
        first, last = 0.0, duration
        if kind == "kill redis":
            first = duration * 2 / 3 if plan.short else plan.settle
            last = max(first, duration - outage(plan)[1] - 2)
        slot = (last - first) / count
        for n in range(count):
            at = first + slot * (n + rng.uniform(0.1, 0.9))
            killable = plan.exporters - 1 if kind == "kill exporter" else plan.exporters
            steps.append(Step(round(at, 3), kind, rng.randrange(killable)))
    return sorted(steps, key=lambda step: step.at)


class Chaos:
    """Carries out a schedule on a :class:`Rig`."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.rng = random.Random(rig.plan.seed + 2)
        self._deck: list[int] = []
        self._files = 0
        self._broken = 0
        self._deleting: set[str] = set()

    async def run(self, steps: list[Step]) -> None:
        """Carry out ``steps``, each at its time from now; wait for the last to finish."""
        start = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for step in steps:
            await asyncio.sleep(max(0.0, start + step.at - time.monotonic()))
            member = self.rig.members[step.member]
            tasks.append(asyncio.create_task(self._do(step.kind, member)))
        await asyncio.gather(*tasks)

    async def _do(self, kind: str, member: Member) -> None:
        try:
            done = await ACTIONS[kind](self, member)
        except RuntimeError as exc:  # an exporter or Redis that did not come back: a finding
            self.rig.surprises.append(f"{kind} on {member.name}: {exc}")
            return
        self.rig.counts[kind if done else f"{kind} (skipped: exporter down)"] += 1
        self.rig.note(f"{kind} {member.name}{'' if done else ' skipped: exporter down'}")

    async def fault(self, member: Member) -> bool:
        """Deal the next injection from the deck, on a random API or the token endpoint."""
        del member
        if not self._deck:
            self._deck = list(range(len(DECK)))
            self.rng.shuffle(self._deck)
        injection = DECK[self._deck.pop()]
        target = target_of(injection, self.rng, tuple(SOURCES.values()))
        body = injection.body(self.rng, self.rig.plan.request_timeout)
        if injection.drop:
            await self.rig.sim_call("PUT", "_soak/drop", {"target": target, **body})
        else:
            await self.rig.sim_call("PUT", f"_sim/faults/{target}", body)
        self.rig.counts[f"fault: {injection.name}"] += 1
        self.rig.note(f"fault {injection.name} on {target}: {body}")
        return True

    async def register(self, member: Member) -> bool:
        """PUT a new job to ``member``'s registration API."""
        if not member.up:
            return False
        job = await self.rig.make_on_sim(self.rig.maker.make(member.index, "api"))
        status, _ = await self.rig.api(member, "PUT", _path(job), {"labels": {"via": "api"}})
        self.rig.note(f"PUT {job.id} to {member.name}: {status}")
        if status in (200, 201):
            job.acked = time.time()
        elif status is None:
            job.unsure = True
        else:  # unsharded, nothing may refuse it
            job.refused = True
            self.rig.expect(f"PUT {job.id} to {member.name}", status, 201)
        return True

    async def _delete(self, member: Member, job: FiniteJob) -> None:
        if job.id in self._deleting:  # tidy and cancel may pick the same job at once
            return
        self._deleting.add(job.id)
        status, _ = await self.rig.api(member, "DELETE", _path(job))
        self.rig.note(f"DELETE {job.id} on {member.name}: {status}")
        if status == 204:
            job.removed = time.time()
        elif status is None:
            job.unsure = True
            job.removed = time.time()
        # else a 404: the exporter lost the registration, which the end counts

    async def cancel(self, member: Member) -> bool:
        """DELETE a registered job that has not finished (an app giving up on it)."""
        if not member.up:
            return False
        live = [j for j in self._registered(member) if not self._final(j)]
        if live:
            await self._delete(member, self.rng.choice(live))
        return True

    async def dir_add(self, member: Member) -> bool:
        """Drop a file of one to three new jobs into ``member``'s watch dir."""
        jobs = [self.rig.maker.make(member.index, "dir") for _ in range(self.rng.randint(1, 3))]
        for job in jobs:
            await self.rig.make_on_sim(job)
        self._files += 1
        path = member.dir_file(f"soak-{self._files}.{'yaml' if self._files % 2 else 'txt'}", jobs)
        for job in jobs:
            job.acked = time.time()
        self.rig.dir_files[path] = jobs
        self.rig.note(f"wrote {path.name} for {member.name}: {' '.join(j.id for j in jobs)}")
        return True

    async def dir_remove(self, member: Member) -> bool:
        """Remove one of ``member``'s watch-dir files, finished or not."""
        mine = [path for path in self.rig.dir_files if path.parent == member.paths.watch_dir]
        if mine:
            self._unlink(self.rng.choice(sorted(mine)))
        return True

    def _unlink(self, path: Path) -> None:
        path.unlink()
        self.rig.note(f"removed {path.parent.parent.name}/{path.name}")
        for job in self.rig.dir_files.pop(path):
            job.removed = time.time()

    async def reload(self, member: Member, *, sighup: bool = False) -> bool:
        """Change the config (new finite jobs; those that are final go) and reload it."""
        async with member.lock:
            if not member.up:
                return False
            for job in member.config_jobs:
                if self._final(job):
                    job.removed = time.time()
            member.config_jobs = [j for j in member.config_jobs if j.removed is None]
            for _ in range(self.rng.randint(1, 2)):
                job = self.rig.maker.make(member.index, "config")
                member.config_jobs.append(await self.rig.make_on_sim(job))
            member.write_config()
            if sighup:
                member.proc.signal(signal.SIGHUP)
            else:
                self.rig.expect(f"reload of {member.name}", await self.rig.reload(member), 200)
            for job in member.config_jobs:
                job.acked = job.acked or time.time()
        return True

    async def sighup_reload(self, member: Member) -> bool:
        """:meth:`reload` by SIGHUP."""
        return await self.reload(member, sighup=True)

    async def broken_reload(self, member: Member, *, sighup: bool = False) -> bool:
        """Write a config that does not validate, reload (refused), then put the good one back."""
        async with member.lock:
            if not member.up:
                return False
            self._broken += 1
            member.write_broken(BROKEN_CONFIGS[self._broken % len(BROKEN_CONFIGS)])
            if sighup:
                member.proc.signal(signal.SIGHUP)
            else:
                got = await self.rig.reload(member)
                self.rig.expect(f"broken reload of {member.name}", got, 500)
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            member.write_config()
            self.rig.expect(f"reload of {member.name}", await self.rig.reload(member), 200)
        return True

    async def broken_sighup(self, member: Member) -> bool:
        """:meth:`broken_reload` by SIGHUP."""
        return await self.broken_reload(member, sighup=True)

    async def kill_exporter(self, member: Member) -> bool:
        """SIGKILL ``member``, and start it again on its state a moment later."""
        async with member.lock:
            if not member.up:
                return False
            self.rig.note(f"SIGKILL {member.name}")
            await member.kill()
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            await member.start()
        return True

    async def kill_redis(self, member: Member) -> bool:
        """SIGKILL Redis (it comes back empty), start it again after :func:`outage`."""
        del member
        self.rig.note("SIGKILL redis")
        await self.rig.redis.kill()
        await asyncio.sleep(self.rng.uniform(*outage(self.rig.plan)))
        await self.rig.redis.start()
        return True

    def _registered(self, member: Member) -> list[FiniteJob]:
        return [
            j
            for j in self.rig.jobs
            if j.exporter == member.index and j.origin == "api" and j.acked and j.removed is None
        ]

    def _final(self, job: FiniteJob) -> bool:
        return (job.exporter, job.source, job.id) in self.rig.observer.finals

    async def tidy(self) -> None:
        """Forever: DELETE registered jobs, and remove dir files, once their values are final."""
        while True:
            await asyncio.sleep(TIDY_EVERY)
            for member in self.rig.members:
                for job in [j for j in self._registered(member) if self._final(j)][:10]:
                    if member.up:
                        await self._delete(member, job)
                        self.rig.counts["DELETE once final"] += 1
            for path, jobs in list(self.rig.dir_files.items()):
                if all(self._final(job) for job in jobs):
                    self._unlink(path)
                    self.rig.counts["dir file removed once final"] += 1


ACTIONS: dict[str, Callable[[Chaos, Member], Awaitable[bool]]] = {
    "fault": Chaos.fault,
    "register": Chaos.register,
    "cancel": Chaos.cancel,
    "dir add": Chaos.dir_add,
    "dir remove": Chaos.dir_remove,
    "reload": Chaos.reload,
    "reload by SIGHUP": Chaos.sighup_reload,
    "broken reload": Chaos.broken_reload,
    "broken reload by SIGHUP": Chaos.broken_sighup,
    "kill exporter": Chaos.kill_exporter,
    "kill redis": Chaos.kill_redis,
}


def _path(job: FiniteJob) -> str:
    return f"sources/{job.source}/jobs/{quote(job.id, safe='')}"
