"""The link: background (re)connection, heartbeats, calls that never wait, the outbox, its tasks."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from exporter.config.model import FleetConfig, Secret
from exporter.fleet import FleetUnavailable, default_member
from tests.fleet.conftest import FAST, PASSWORD, Links, RedisServer, fleet_config, fleet_logs
from tests.harness import until


async def test_it_connects_in_the_background_and_counts_live_members(
    redis_server: RedisServer, links: Links
) -> None:
    """Two members' heartbeats: each counts two; before Redis answered, ``fleet.size``."""
    config = fleet_config(redis_server, size=7)
    first, second = links(config, "a"), links(config, "b")
    assert (first.up, first.live_members()) == (False, 7)
    await first.start()
    await second.start()
    assert await first.ready(2.0)
    assert await second.ready(2.0)
    await until(lambda: first.live_members() == 2 and second.live_members() == 2, "two members")
    with redis_server.client() as raw:
        assert sorted(raw.zrange("bje:{test}:members", 0, -1)) == [b"a", b"b"]
    await second.close()
    await until(lambda: first.live_members() == 1, "the member that left counted out")


async def test_before_redis_ever_answers_calls_fail_at_once(tmp_path: Path, links: Links) -> None:
    """No Redis: down, the default member count, and a call raises without waiting."""
    config = FleetConfig(Secret(inline=f"unix://{tmp_path}/none.sock"), name="n")
    link = links(config, "a", default_members=5)
    await link.start()
    assert not await link.ready(0.2)
    assert link.live_members() == 5
    started = time.monotonic()
    with pytest.raises(FleetUnavailable, match="not connected"):
        await link.call(lambda r: r.ping(), "ping")
    assert time.monotonic() - started < 0.15  # at once: not after the 0.2 s call timeout


async def test_an_outage_is_logged_once_and_so_is_the_return_without_secrets(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed: one line, however many reconnects fail; back: one line; no URL or password."""
    caplog.set_level(logging.DEBUG)  # every logger, redis-py's own too
    link = links(fleet_config(redis_server), "a")
    await link.start()
    assert await link.ready(2.0)
    redis_server.kill()
    await until(lambda: not link.up, "the outage noticed")
    await asyncio.sleep(0.5)  # several reconnects fail meanwhile
    (outage,) = fleet_logs(caplog, "unavailable")
    why = outage.removeprefix("fleet test: Redis unavailable (").partition(")")[0]
    assert why in ("connection lost", "Broken pipe", "Connection reset by peer")
    assert outage.endswith(
        "; polling goes on with local politeness, as one of 1 exporters, until it is back"
    )
    redis_server.start()
    assert await link.ready(2.0)
    assert len(fleet_logs(caplog, "is back after")) == 1
    assert len(fleet_logs(caplog, "unavailable")) == 1
    for record in caplog.records:
        line = record.getMessage() + str(record.exc_info)
        assert PASSWORD not in line
        assert str(redis_server.socket) not in line


async def test_a_redis_too_slow_to_answer_counts_as_down(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP: a call gives up after its timeout and the link is down; SIGCONT: back."""
    link = links(fleet_config(redis_server), "a")
    await link.start()
    assert await link.ready(2.0)
    redis_server.pause()
    started = time.monotonic()
    # The call's own timeout, or the heartbeat's meeting it first and dropping the
    # connection under the call (a loaded machine): either way, down within a bound.
    with pytest.raises(FleetUnavailable, match=r"timed out|connection lost"):
        await link.call(lambda r: r.ping(), "ping")
    assert time.monotonic() - started < 1.0
    assert not link.up
    told = fleet_logs(caplog, "unavailable")
    assert len(told) == 1
    assert told[0].startswith("fleet test: Redis unavailable (")
    assert told[0].endswith(
        "); polling goes on with local politeness, as one of 1 exporters, until it is back"
    )
    redis_server.resume()
    assert await link.ready(2.0)


async def test_a_call_cancelled_from_outside_is_cancelled(
    redis_server: RedisServer, links: Links
) -> None:
    """A CancelledError aimed at the caller is never turned into FleetUnavailable."""
    link = links(fleet_config(redis_server), "a")
    await link.start()
    assert await link.ready(2.0)
    redis_server.pause()
    call = asyncio.create_task(link.call(lambda r: r.ping(), "ping"))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    redis_server.resume()


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def unclosed_after_gc() -> list[str]:
    """The ResourceWarnings of a full garbage collection: sockets nobody closed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


class OnLog(logging.Handler):
    """Runs ``then`` in the logging call itself, the first time a line contains ``word``."""

    def __init__(self, word: str, then: Callable[[], None]) -> None:
        super().__init__()
        self._word, self._then, self.seen = word, then, False

    def emit(self, record: logging.LogRecord) -> None:
        """Run ``then`` if this is the first line with the word."""
        if not self.seen and self._word in record.getMessage():
            self.seen = True
            self._then()


async def test_a_close_meeting_a_reconnect_closes_every_socket(
    redis_server: RedisServer, links: Links
) -> None:
    """close() in the turn a reconnect drops the old client (idle connections in its pool)."""
    link = links(fleet_config(redis_server), "a")
    closing: list[asyncio.Task[None]] = []
    # Called inside the heartbeat's went_down: the close runs as the supervisor drops the client.
    on_outage = OnLog("unavailable", lambda: closing.append(asyncio.create_task(link.close())))
    logging.getLogger("exporter.fleet.link").addHandler(on_outage)
    try:
        gc.collect()
        before = open_fds()
        await link.start()
        assert await link.ready(2.0)
        await asyncio.gather(*(link.call(lambda r: r.ping(), "ping") for _ in range(3)))
        assert open_fds() >= before + 3  # three connections at least, idle in the pool
        redis_server.kill()
        await until(lambda: on_outage.seen, "the outage logged")
        await closing[0]
    finally:
        logging.getLogger("exporter.fleet.link").removeHandler(on_outage)
    assert open_fds() == before
    assert unclosed_after_gc() == []


async def test_a_call_that_outlives_its_client_leaves_no_socket_open(
    redis_server: RedisServer, links: Links
) -> None:
    """A call still running when its client is dropped: a connection it opens then is closed."""
    link = links(fleet_config(redis_server), "a", timings=dataclasses.replace(FAST, timeout=2.0))
    gc.collect()
    before = open_fds()
    await link.start()
    assert await link.ready(2.0)
    inside, go = asyncio.Event(), asyncio.Event()

    async def late(client: Redis) -> bool:
        inside.set()
        await go.wait()
        return await client.ping()  # a new connection: the pool's others are closed

    call = asyncio.create_task(link.call(late, "late"))
    await inside.wait()
    link.went_down("another call failed")
    await until(lambda: link.up, "a new client")
    go.set()
    assert await call is True
    await link.close()
    assert open_fds() == before
    assert unclosed_after_gc() == []


async def test_a_refused_call_is_logged_once_and_leaves_the_link_up(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """An error answer (here INCR of text) is FleetUnavailable, not an outage."""
    link = links(fleet_config(redis_server), "a")
    await link.start()
    assert await link.ready(2.0)
    await link.call(lambda r: r.set("bje:{test}:text", "text"), "set")
    for _ in range(2):
        with pytest.raises(FleetUnavailable, match="Redis refused the probe"):
            await link.call(lambda r: r.incr("bje:{test}:text"), "probe")
    assert link.up
    assert len(fleet_logs(caplog, "refused the probe")) == 1
    assert fleet_logs(caplog, "refused the probe")[0].startswith(
        "fleet test: Redis refused the probe: value is not an integer or out of range"
    )


async def test_the_url_file_is_read_again_at_each_reconnect(
    redis_server: RedisServer, links: Links, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password is refused; the file rewritten with the right one, it connects."""
    url_file = tmp_path / "url"
    url_file.write_text(redis_server.url.replace(PASSWORD, "wrong") + "\n")
    link = links(FleetConfig(Secret(file=str(url_file)), name="f"), "a")
    await link.start()
    assert not await link.ready(0.3)
    assert fleet_logs(caplog, "unavailable")[0].startswith(
        "fleet f: Redis unavailable (authentication refused)"
    )
    url_file.write_text(redis_server.url + "\n")
    assert await link.ready(2.0)


async def test_an_unusable_url_names_where_it_came_from(
    tmp_path: Path, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that became garbage, or went: the line names the file, not its content."""
    url_file = tmp_path / "url"
    url_file.write_text(f"http://:{PASSWORD}@redis\n")
    link = links(FleetConfig(Secret(file=str(url_file)), name="f"), "a")
    await link.start()
    assert not await link.ready(0.1)
    assert fleet_logs(caplog, "unavailable") == [
        f"fleet f: Redis unavailable (no usable URL in the file {url_file}); polling goes on "
        "with local politeness, as one of 1 exporters, until it is back"
    ]
    assert PASSWORD not in caplog.text


async def test_a_crashing_task_reaches_the_one_watcher_and_close_reaps_the_rest(
    redis_server: RedisServer, links: Links
) -> None:
    """Every task goes to ``on_task``; a crash is its to report; close cancels the others."""
    watched: list[asyncio.Task[None]] = []
    link = links(fleet_config(redis_server), "a", on_task=watched.append)
    await link.start()
    assert [t.get_name() for t in watched] == ["fleet-link", "fleet-writes"]

    async def crash() -> None:
        raise RuntimeError("a bug")

    crashed = link.spawn(crash(), "crash")
    await asyncio.gather(crashed, return_exceptions=True)
    assert watched[-1] is crashed
    assert str(crashed.exception()) == "a bug"
    await link.close()
    assert all(task.done() for task in watched)
    await link.close()  # twice is fine
    never = crash()
    with pytest.raises(RuntimeError, match="closed"):
        link.spawn(never, "late")


async def test_the_default_watcher_logs_a_crash_once(
    redis_server: RedisServer, links: Links, caplog: pytest.LogCaptureFixture
) -> None:
    """Without an owner's watcher, a task that dies is one critical line with its traceback."""
    link = links(fleet_config(redis_server), "a")

    async def crash() -> None:
        raise RuntimeError("a bug")

    await asyncio.gather(link.spawn(crash(), "crash"), return_exceptions=True)
    await asyncio.sleep(0)
    crashes = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [r.getMessage() for r in crashes] == ["fleet task fleet-crash died"]
    assert crashes[0].exc_info is not None


async def test_lifecycle_misuse_is_refused(redis_server: RedisServer, links: Links) -> None:
    """Started once only; channels are added before the start."""
    link = links(fleet_config(redis_server), "a")
    await link.start()
    with pytest.raises(RuntimeError, match="started already"):
        await link.start()

    async def ready() -> None:
        return None

    with pytest.raises(RuntimeError, match="before the link starts"):
        link.listen("c", lambda data: None, ready)
    assert link.key("x", "y") == "bje:{test}:x:y"


def test_the_default_member_is_the_host_and_the_pid() -> None:
    """A StatefulSet pod's name, and the process in it."""
    host, pid = default_member().rsplit(":", 1)
    assert host
    assert int(pid) > 0
