"""Fixtures of the simulator's HTTP tests: a fake clock, a running simulator, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from exporter.simulator import Simulator
from tests.simulator.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Give each test its own fake clock."""
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    """Run a simulator on a free loopback port for one test."""
    async with Simulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """Open an HTTP client session for one test."""
    async with aiohttp.ClientSession() as session:
        yield session
