"""The soak's running world: Redis, the simulator, the exporters, and the calls made to them.

:class:`Rig` starts everything on loopback (Redis on a unix socket), keeps the
finite jobs it made, looks at every exporter every couple of seconds
(:class:`~soak.observe.Observer`), and stops it all at the end.  Calls to the
exporters answer ``None`` when the exporter is not there to answer: it may
have been killed a moment ago, which is what the soak does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from soak.members import API_TOKEN, Member
from soak.observe import Observer
from soak.procs import Proc, RedisServer, Timeline, python
from soak.world import SOURCES, FiniteJob, JobMaker, Plan, load_job_ids

SAMPLE_EVERY = 2.0
CALL_TIMEOUT = 10.0
LOAD_ITEMS = 10**9  # a load job never ends


class Rig:
    """Everything the soak runs, and what it has done to it (``counts``, ``surprises``)."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan = plan
        self.root = root
        self.rng = random.Random(plan.seed)
        self.maker = JobMaker(plan, random.Random(plan.seed + 1))
        self.timeline = Timeline()
        self.observer = Observer()
        self.jobs: list[FiniteJob] = []
        self.dir_files: dict[Path, list[FiniteJob]] = {}
        self.counts: Counter[str] = Counter()
        self.surprises: list[str] = []  # answers that were not the ones expected
        self.exits: list[str] = []  # exporters that exited without being told to
        self.requests_log = root / "requests.jsonl"
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: `make debian-packages` installs it")
        self.redis = RedisServer(binary, root / "redis", self.timeline)
        self.sim = Proc(
            "simulator",
            python(
                "-m",
                "soak.simproc",
                f"--exporters={plan.exporters}",
                f"--log={self.requests_log}",
                f"--rate={plan.budget:g}",
                f"--burst={max(1, round(plan.budget))}",
            ),
            root / "logs" / "simulator.log",
        )
        self.members: list[Member] = []
        self._session: aiohttp.ClientSession | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start Redis, the simulator and the exporters; sample them from then on."""
        (self.root / "redis").mkdir(parents=True, exist_ok=True)
        await self.redis.start()
        (self.root / "redis-url").write_text(self.redis.url, encoding="utf-8")
        await self.sim.start()
        found = await self.sim.wait_line(r"simulator listening on (.+)\n", 60.0)
        urls = found.group(1).split()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
            connector=aiohttp.TCPConnector(force_close=True),
        )
        self.members = [
            Member(index, self.plan, self.root, urls[index], self.timeline)
            for index in range(self.plan.exporters)
        ]
        for index in range(self.plan.exporters):
            for source, api in SOURCES.items():
                for job_id in load_job_ids(index, source, self.plan):
                    body = {"api": api, "id": job_id, "total": LOAD_ITEMS, "rate": 1}
                    await self.sim_call("POST", "_sim/jobs", body)
        await asyncio.gather(*(member.start() for member in self.members))
        self._sampler = asyncio.create_task(self._sample_forever())

    async def stop(self) -> dict[str, int | None]:
        """Stop sampling, then the exporters (SIGTERM), the simulator and Redis: exit codes."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        codes: dict[str, int | None] = {}
        for member in self.members:
            codes[member.name] = await member.stop()
        codes["simulator"] = await self.sim.stop()
        await self.redis.stop()
        if self._session is not None:
            await self._session.close()
        return codes

    @property
    def session(self) -> aiohttp.ClientSession:
        """The soak's HTTP client (force-closed connections: a killed exporter leaves none)."""
        assert self._session is not None
        return self._session

    async def call(
        self,
        method: str,
        url: str,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int | None, Any]:
        """One request: its status and its JSON or text body; ``(None, None)`` if unanswered."""
        try:
            async with self.session.request(method, url, json=body, headers=headers) as resp:
                text = await resp.text()
                data: Any = text
                if resp.content_type == "application/json" and text:
                    data = await resp.json()
                return resp.status, data
        except (aiohttp.ClientError, TimeoutError, ConnectionError):
            return None, None

    async def sim_call(self, method: str, path: str, body: object = None) -> Any:
        """A control request to the simulator, which must succeed."""
        url = self.members[0].sim_url + path
        status, data = await self.call(method, url, body)
        if status is None or not 200 <= status < 300:
            raise RuntimeError(f"simulator {method} {path}: {status} {data!r}")
        return data

    async def make_on_sim(self, job: FiniteJob) -> FiniteJob:
        """Make ``job`` on the simulator (it starts now) and keep it."""
        await self.sim_call("POST", "_sim/jobs", job.sim_body())
        job.made = time.time()
        self.jobs.append(job)
        return job

    async def api(
        self, member: Member, method: str, path: str, body: object = None
    ) -> tuple[int | None, Any]:
        """A request to ``member``'s registration API, with its token."""
        if not member.up:
            return None, None
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        return await self.call(method, member.api_url + path, body, headers)

    async def reload(self, member: Member) -> int | None:
        """``POST /-/reload`` to ``member``: 200 if it took the config, 500 if not."""
        if not member.up:
            return None
        status, _ = await self.call("POST", member.metrics_url + "-/reload")
        return status

    def note(self, text: str) -> None:
        """One line of ``actions.log``: what the soak did when, to read beside the other logs."""
        stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        with (self.root / "actions.log").open("a", encoding="utf-8") as log:
            log.write(f"{stamp} {text}\n")

    def expect(self, what: str, got: object, want: object) -> None:
        """Note an answer that is not the one expected."""
        if got != want:
            self.surprises.append(f"{what}: {got!r}, expected {want!r}")
            self.note(f"surprise: {what}: {got!r}, expected {want!r}")

    async def _sample_forever(self) -> None:
        api_of = dict(SOURCES)
        while True:
            started = time.monotonic()
            for member in self.members:
                await self._sample(member, api_of)
            await asyncio.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - started)))

    async def _sample(self, member: Member, api_of: dict[str, str]) -> None:
        if member.metrics_port and not member.proc.running:
            self.exits.append(f"{member.name} exited with {member.proc.returncode}")
            member.metrics_port = 0
            self.timeline.down(member.name)
        if not member.up:
            return
        life, pid = member.life, member.proc.pid
        began = time.perf_counter()
        status, page = await self.call("GET", member.metrics_url + "metrics")
        seconds = time.perf_counter() - began
        text = page if status == 200 and isinstance(page, str) else None
        self.observer.record(
            exporter=member.index, life=life, pid=pid, page=text, seconds=seconds, api_of=api_of
        )
