"""One exporter of the soak's fleet: its files, its process across restarts, its two ports."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import yaml

from soak.procs import Proc, Timeline, python
from soak.world import FiniteJob, Paths, Plan, config

START_TIMEOUT = 60.0  # generous: two busy cores, a state file to restore
API_TOKEN = "soak-api-t0ken"  # noqa: S105 - the soak's own registration API token


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, so that no reader ever sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Member:
    """Exporter ``index``: started, SIGKILLed and started again on the same files and state.

    ``config_jobs`` are the finite jobs its config lists now; ``lock`` is
    held by whatever must not overlap a restart (a broken config on disk, a
    kill); ``life`` counts its starts (0: the first).
    """

    def __init__(
        self, index: int, plan: Plan, root: Path, sim_url: str, timeline: Timeline
    ) -> None:
        self.index = index
        self.name = f"e{index}"
        self.plan = plan
        self.sim_url = sim_url
        self.timeline = timeline
        base = root / self.name
        self.paths = Paths(
            config=base / "config.yaml",
            watch_dir=base / "watch",
            state=base / "state.db",
            token=base / "api-token",
            redis_url=root / "redis-url",
        )
        self.config_jobs: list[FiniteJob] = []
        self.lock = asyncio.Lock()
        self.life = -1
        self.metrics_port = 0
        self.api_port = 0
        args = python(
            "-m",
            "exporter",
            f"--config.file={self.paths.config}",
            "--web.listen-address=127.0.0.1:0",
            "--api.listen-address=127.0.0.1:0",
            f"--api.token-file={self.paths.token}",
            f"--storage.path={self.paths.state}",
        )
        self.proc = Proc(self.name, args, root / "logs" / f"{self.name}.log")
        base.mkdir(parents=True, exist_ok=True)
        self.paths.watch_dir.mkdir(exist_ok=True)
        self.paths.token.write_text(API_TOKEN, encoding="utf-8")
        self.write_config()

    @property
    def up(self) -> bool:
        """Whether it is running and its ports are known."""
        return self.proc.running and self.metrics_port > 0

    def write_config(self) -> None:
        """Write its good config: load jobs and :attr:`config_jobs`."""
        body = config(self.plan, self.index, self.sim_url, self.paths, self.config_jobs)
        write_atomically(self.paths.config, yaml.safe_dump(body, sort_keys=False))

    def write_broken(self, text: str) -> None:
        """Write a config that a reload must refuse."""
        write_atomically(self.paths.config, text)

    async def start(self) -> None:
        """Start it and wait until both of its listeners are up."""
        self.metrics_port = self.api_port = 0
        started = time.time()
        await self.proc.start()
        self.life += 1
        self.timeline.up(self.name, started)
        metrics = await self.proc.wait_line(r"serving /metrics on port (\d+)", START_TIMEOUT)
        api = await self.proc.wait_line(r"registration API on port (\d+)", START_TIMEOUT)
        self.metrics_port, self.api_port = int(metrics.group(1)), int(api.group(1))

    async def kill(self) -> None:
        """SIGKILL it."""
        self.metrics_port = self.api_port = 0
        self.timeline.down(self.name)
        await self.proc.kill()

    async def stop(self) -> int | None:
        """SIGTERM at the end; its exit code."""
        self.metrics_port = self.api_port = 0
        code = await self.proc.stop()
        self.timeline.down(self.name)
        return code

    @property
    def metrics_url(self) -> str:
        """Its metrics listener."""
        return f"http://127.0.0.1:{self.metrics_port}/"

    @property
    def api_url(self) -> str:
        """Its registration API."""
        return f"http://127.0.0.1:{self.api_port}/api/v1/"

    def dir_file(self, name: str, jobs: list[FiniteJob]) -> Path:
        """Write a watch-dir file listing ``jobs``: YAML if ``name`` ends in .yaml, else text."""
        path = self.paths.watch_dir / name
        if path.suffix == ".yaml":
            by_source: dict[str, list[object]] = {}
            for job in jobs:
                by_source.setdefault(job.source, []).append(
                    {"id": job.id, "labels": {"via": "dir"}}
                )
            text = json.dumps(by_source)  # JSON is YAML
        else:
            text = "".join(f"{job.source} {job.id}\n" for job in jobs)
        write_atomically(path, text)
        return path
