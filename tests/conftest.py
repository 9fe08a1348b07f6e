"""Shared fixtures: a fake clock, a helper that lets the event loop catch up, exporter processes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from exporter.clock import FakeClock

pytest_plugins = ["tests.harness"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--fuzz-requests=N``: how many hostile requests tests/test_fuzz.py sends."""
    parser.addoption("--fuzz-requests", type=int, default=400, dest="fuzz_requests")


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock()


async def settle(rounds: int = 20) -> None:
    """Give every ready task a chance to run (no time passes on a fake clock)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path to promtool (Debian's prometheus package; `make test` installs it)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run `make test`, which installs Debian's prometheus")
    return path


def promtool_lint(promtool: str, exposition: bytes) -> str:
    """What `promtool check metrics` says of an exposition (empty when clean)."""
    done = subprocess.run(  # noqa: S603 - fixed binary, our own input
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return (done.stdout + done.stderr).decode() + ("" if done.returncode == 0 else "(exit != 0)")


@pytest.fixture
async def spawned() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes started by a test, killed and reaped afterwards whatever happened."""
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def exporter_process(
    spawned: list[asyncio.subprocess.Process], *args: str, capture: bool = True
) -> asyncio.subprocess.Process:
    """Start ``python -m exporter ARGS``, its output captured or (``capture=False``) discarded."""
    output = asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exporter", *args, stdout=output, stderr=output
    )
    spawned.append(proc)
    return proc
