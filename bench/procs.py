"""Child processes of the benchmark, and what ``/proc`` says about them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import sys
import time
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
KEEP_LINES = 200


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set size now (``rss``) and at its peak (``hwm``), in MB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss" if key == "VmRSS" else "hwm"] = int(value.split()[0]) / 1024
    return out


class Child:
    """A Python child process; its output lines are kept (the last few) and can be awaited."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, started: float) -> None:
        self.proc = proc
        self.name = name
        self.started = started  # perf_counter() just before the process was started
        self.lines: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        self._waiters: list[tuple[re.Pattern[str], asyncio.Future[re.Match[str]]]] = []
        self._reader = asyncio.create_task(self._read())

    @property
    def pid(self) -> int:
        """The child's process ID."""
        return self.proc.pid

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            for pattern, future in list(self._waiters):
                match = pattern.search(line)
                if match and not future.done():
                    future.set_result(match)
                    self._waiters.remove((pattern, future))
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(RuntimeError(f"{self.name} exited: {self.tail()}"))

    def tail(self) -> str:
        """The last output lines, for error messages."""
        return " | ".join(list(self.lines)[-5:])

    async def wait_for(self, pattern: str, timeout: float, *, seen: bool = True) -> re.Match[str]:
        """The first output line matching ``pattern``: already seen (if ``seen``) or to come."""
        regex = re.compile(pattern)
        for line in self.lines if seen else ():
            if match := regex.search(line):
                return match
        future: asyncio.Future[re.Match[str]] = asyncio.get_running_loop().create_future()
        self._waiters.append((regex, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise RuntimeError(
                f"{self.name}: no {pattern!r} in {timeout}s: {self.tail()}"
            ) from None

    def send(self, line: str) -> None:
        """Write one command line to the child's standard input."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")

    async def ask(self, line: str, timeout: float = 30.0) -> dict[str, Any]:
        """Send a command and read the JSON object the child answers with."""
        waiting = asyncio.ensure_future(self.wait_for(r"^\{.*\}$", timeout, seen=False))
        await asyncio.sleep(0)  # the waiter is registered before the answer can come
        self.send(line)
        answer: dict[str, Any] = json.loads((await waiting).group(0))
        return answer

    async def stop(self, grace: float = 5.0) -> int | None:
        """Close stdin, then SIGTERM, then SIGKILL; the exit code."""
        proc = self.proc
        if proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 1.0)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        return proc.returncode


async def spawn(name: str, *args: str) -> Child:
    """Start ``python ARGS`` with this interpreter, stdout and stderr merged and watched."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=1 << 20,
    )
    return Child(proc, name, started)


async def start_simulator(spec_path: str) -> tuple[Child, str]:
    """The simulator in its own process, with the jobs of ``spec_path``; and its URL."""
    child = await spawn("simulator", "-m", "bench.simproc", spec_path)
    match = await child.wait_for(r"simulator listening on (\S+)", 120)
    return child, match.group(1)
