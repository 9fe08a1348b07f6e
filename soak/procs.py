"""The soak's processes: each logs to a file of its own, is killed at will, and is on a timeline.

:class:`Timeline` records when each process (and Redis) was up, in wall
seconds, the clock the simulator's request log uses: the checks ask it
whether a process ran throughout a span of that log.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import signal
import sys
import time
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

POLL = 0.05  # how often a log is read while waiting for a line


class Timeline:
    """When each named thing was up: spans of wall time, the last one open while it runs."""

    def __init__(self) -> None:
        self._spans: dict[str, list[list[float]]] = {}

    def up(self, name: str, at: float | None = None) -> None:
        """``name`` is up from ``at`` (default: now)."""
        self._spans.setdefault(name, []).append([time.time() if at is None else at, math.inf])

    def down(self, name: str, at: float | None = None) -> None:
        """``name`` is down from ``at`` (default: now)."""
        spans = self._spans.get(name)
        if spans and spans[-1][1] == math.inf:
            spans[-1][1] = time.time() if at is None else at

    def spans(self, name: str) -> list[tuple[float, float]]:
        """The spans ``name`` was up, oldest first."""
        return [(start, end) for start, end in self._spans.get(name, [])]

    def up_throughout(self, name: str, start: float, end: float) -> bool:
        """Whether ``name`` was up, without a break, from ``start`` to ``end``."""
        return any(a <= start and end <= b for a, b in self.spans(name))

    def gaps(self, name: str, start: float, end: float) -> list[tuple[float, float]]:
        """The spans within ``start``..``end`` when ``name`` was down."""
        out: list[tuple[float, float]] = []
        at = start
        for a, b in self.spans(name):
            if a > at:
                out.append((at, min(a, end)))
            at = max(at, b)
        if at < end:
            out.append((at, end))
        return [(a, b) for a, b in out if b > a]


class Proc:
    """One child process, its stdout and stderr in ``log``; started again on :meth:`start`."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.args = args
        self.log = log
        self._proc: asyncio.subprocess.Process | None = None
        self._offset = 0  # where this start's output begins in the log

    @property
    def pid(self) -> int | None:
        """The running process's ID."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start it, appending to its log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    def output(self) -> str:
        """What this start of the process has written so far."""
        with self.log.open("rb") as handle:
            handle.seek(self._offset)
            return handle.read().decode("utf-8", "replace")

    async def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in this start's output, within ``timeout`` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.output())
            if found:
                return found
            if not self.running:
                raise RuntimeError(f"{self.name} exited: {self.output()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {pattern!r} in {timeout}s")
            await asyncio.sleep(POLL)

    async def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the running process."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signum)

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code (``None``: not started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                await self.kill()
        return proc.returncode

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited."""
        return None if self._proc is None else self._proc.returncode


def python(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]


class RedisServer:
    """redis-server on a unix socket, a password, no persistence: a restart starts it empty."""

    PASSWORD = "soak-redis-pa55word"  # noqa: S105 - the soak's own, looked for in the logs

    def __init__(self, binary: str, directory: Path, timeline: Timeline) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.timeline = timeline
        args = [binary, "--port", "0", "--unixsocket", str(self.socket)]
        args += ["--unixsocketperm", "700", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(directory), "--requirepass", self.PASSWORD]
        self.proc = Proc("redis", args, directory / "redis.log")

    @property
    def url(self) -> str:
        """What the exporters' ``redis_url_file`` holds."""
        return f"unix://:{self.PASSWORD}@{self.socket}"

    async def start(self) -> None:
        """Start it and wait (at most 10 s) until it answers PING."""
        await self.proc.start()
        deadline = time.monotonic() + 10.0
        while True:
            client = Redis(unix_socket_path=str(self.socket), password=self.PASSWORD)
            try:
                await client.ping()
            except (OSError, RedisError):  # not listening, or still loading: not yet
                if time.monotonic() > deadline or not self.proc.running:
                    raise RuntimeError(f"redis-server did not start: see {self.proc.log}") from None
                await asyncio.sleep(POLL)
            else:
                self.timeline.up("redis")
                return
            finally:
                await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: everything it held is gone."""
        self.timeline.down("redis")
        await self.proc.kill()

    async def stop(self) -> None:
        """Stop it at the end."""
        self.timeline.down("redis")
        await self.proc.stop()
