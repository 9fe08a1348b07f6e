"""A real redis-server (Debian's package) on a unix socket, with a password; killed at will."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from exporter.clock import SystemClock
from exporter.config.model import FleetConfig, Secret
from exporter.fleet import Fleet, Link, Timings

PASSWORD = "fleet-Pa55-w0rd-never-logged"  # noqa: S105 - the test's own, checked against logs
# Quick enough that an outage and a return take a fraction of a second.
FAST = Timings(
    timeout=0.2,
    connect_timeout=0.5,
    heartbeat=0.05,
    member_ttl=0.5,
    retry_base=0.02,
    retry_cap=0.1,
    feed_poll=0.05,
)


class RedisServer:
    """One redis-server on a unix socket in a directory of its own: no TCP, no persistence."""

    def __init__(self, binary: str, directory: Path) -> None:
        self._binary = binary
        self.directory = directory
        self.socket = directory / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL the fleet connects with (the password in it is a secret)."""
        return f"unix://:{PASSWORD}@{self.socket}"

    def start(self) -> None:
        """Start it and wait (at most 5 s) until it answers."""
        assert self._proc is None
        args = [self._binary, "--port", "0", "--unixsocket", str(self.socket)]
        args += ["--unixsocketperm", "700", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.directory), "--requirepass", PASSWORD, "--loglevel", "warning"]
        with open(self.directory / "redis.log", "ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=log)  # noqa: S603 - our binary
        deadline = time.monotonic() + 5.0
        while True:
            try:
                with self.client() as client:
                    client.ping()
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    pytest.fail(f"redis-server did not start: see {self.directory}/redis.log")
                time.sleep(0.01)
            else:
                return

    def client(self) -> redis.Redis:
        """A plain client of the test's own (use it in a ``with``) to look at what is stored."""
        return redis.Redis(unix_socket_path=str(self.socket), password=PASSWORD)

    def kill(self) -> None:
        """SIGKILL: everything in it is gone, as in a crash without persistence."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=5)
            self._proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a Redis that is too slow)."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop it whatever its state (a paused one too)."""
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Debian's redis-server (`make test` installs it when missing)."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server not found: run `make test`, which installs Debian's package")
    return path


@pytest.fixture
def redis_servers(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], RedisServer]]:
    """Start a new redis-server on each call; every one is stopped after the test."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        # tmp_path_factory's short paths: a unix socket's path is at most 107 bytes.
        server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def redis_server(redis_servers: Callable[[], RedisServer]) -> RedisServer:
    """One running redis-server."""
    return redis_servers()


Links = Callable[..., Link]


@pytest.fixture
async def links() -> AsyncIterator[Links]:
    """Make links (not started); every one is closed after the test."""
    made: list[Link] = []

    def make(config: FleetConfig, member: str, **options: object) -> Link:
        link = Link(
            config,
            clock=SystemClock(),
            rng=random.Random(len(made)),
            member=member,
            **{"timings": FAST, **options},  # type: ignore[arg-type]  # options are Link's own
        )
        made.append(link)
        return link

    yield make
    for link in made:
        await link.close()


Fleets = Callable[..., Fleet]


@pytest.fixture
async def fleets() -> AsyncIterator[Fleets]:
    """Make fleet members (not started), each with its own connections; closed after."""
    made: list[Fleet] = []

    def make(config: FleetConfig, member: str, **options: object) -> Fleet:
        fleet = Fleet(
            config,
            clock=SystemClock(),
            rng=random.Random(len(made)),
            member=member,
            **{"timings": FAST, **options},  # type: ignore[arg-type]  # options are Fleet's own
        )
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        await fleet.close()


def fleet_logs(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    """The fleet's log lines that contain ``word``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("exporter.fleet") and word in r.getMessage()
    ]


def fleet_config(server: RedisServer, name: str = "test", size: int | None = None) -> FleetConfig:
    """A fleet on ``server``, its URL inline."""
    return FleetConfig(redis_url=Secret(inline=server.url), name=name, size=size)
