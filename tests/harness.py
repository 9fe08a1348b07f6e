"""End-to-end harness: the simulator and the exporter on one fake clock, real HTTP between."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter, Listen
from exporter.clock import FakeClock
from exporter.config import parse_config
from exporter.jobs.shard import Shard
from exporter.simulator import Simulator, vendors
from exporter.state.storage import Store
from exporter.vendors import REGISTRY
from tests.conftest import settle

EVO, FS, TD = vendors.evocalize.API, vendors.fullstory.API, vendors.talkdesk.API
Sample = tuple[str, frozenset[tuple[str, str]]]


async def until(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Wait, in real time and boundedly, for real I/O to make ``check`` true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def source_yaml(sim: Simulator, api: str, name: str, jobs: list[str], extra: str = "") -> str:
    """One source block pointing at the simulator with its credentials (the vendor's snippet).

    Job IDs are written as Python literals (``- 'id'``): tests edit those lines.
    """
    return vendors.source_yaml(
        api,
        name=name,
        base_url=sim.base_url(api),
        jobs=jobs,
        credentials=sim.credentials,
        extra=extra,
        quote=repr,
    )


class Harness:
    """A simulator, an exporter and the fake clock they share."""

    def __init__(self, clock: FakeClock, sim: Simulator) -> None:
        self.clock = clock
        self.sim = sim
        self.exporter: Exporter | None = None

    async def start(
        self,
        sources: str,
        global_: str = "",
        *,
        max_jobs: int = 10_000,
        path: Path | None = None,
        store: Store | None = None,
        retention: str = "2m",
        shard: Shard | None = None,
    ) -> Exporter:
        """Start an exporter on ``sources`` (YAML source blocks) with a 10 s interval.

        With ``path``, the config is written there and the exporter can reload it.
        """
        text = self.config_text(sources, global_, retention)
        if path is not None:
            path.write_text(text, encoding="utf-8")  # noqa: ASYNC240 - a small file, before start
        config = parse_config(text, str(path or "test.yaml"), REGISTRY)
        self.exporter = Exporter(
            config,
            listen=Listen("127.0.0.1", 0),
            clock=self.clock,
            rng=random.Random(7),
            max_jobs_per_source=max_jobs,
            config_path=None if path is None else str(path),
            store=store,
            shard=shard,
        )
        await self.exporter.start()
        return self.exporter

    @staticmethod
    def config_text(sources: str, global_: str = "", retention: str = "2m") -> str:
        """The config file :meth:`start` uses."""
        return (
            f"global:\n  poll_interval: 10s\n  finished_job_retention: {retention}\n"
            f"{global_}sources:\n{sources}"
        )

    async def advance(self, seconds: float, step: float = 1.0) -> None:
        """Move time forward in steps, letting every poll due in each step finish."""
        assert self.exporter is not None
        moved = 0.0
        while moved < seconds:
            delta = min(step, seconds - moved)
            self.clock.advance(delta)
            moved += delta
            await settle()
            await until(self.exporter.idle, "polls in flight to finish")

    def samples(self) -> dict[Sample, float]:
        """The exporter's current page, parsed."""
        assert self.exporter is not None
        text = self.exporter.render().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value, or None when the series is absent."""
        return self.samples().get((name, frozenset(labels.items())))

    def status(self, source: str, job_id: str) -> str | None:
        """The status whose state-set series is 1, if any."""
        for (name, labels), value in self.samples().items():
            d = dict(labels)
            if (
                name == "batchjob_status"
                and value == 1
                and (d["source"], d["job_id"])
                == (
                    source,
                    job_id,
                )
            ):
                return d["status"]
        return None

    def requests(self, api: str) -> list[float]:
        """Fake wall times of the requests the simulator received for ``api``."""
        return [r.time for r in self.sim.requests if r.api == api]


@pytest.fixture
async def make_harness(
    clock: FakeClock,
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """Build harnesses (simulator on port 0 + exporter) and close them all afterwards."""
    made: list[Harness] = []
    sims: list[Simulator] = []

    async def make(**sim_kwargs: object) -> Harness:
        sim = Simulator(clock=clock.time, **sim_kwargs)  # type: ignore[arg-type]
        await sim.start()
        sims.append(sim)
        harness = Harness(clock, sim)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        if harness.exporter is not None:
            await harness.exporter.close()
    for sim in sims:
        await sim.close()
