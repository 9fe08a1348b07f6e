"""Scripts by hash with their text as the fallback, failure reasons without hosts, typed replies."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.exceptions as errors

from exporter.fleet.wire import Script, cancellable, items, make_client, number, reason, text
from tests.fleet.conftest import RedisServer

ECHO = Script("return {KEYS[1], ARGV[1]}")


async def test_a_script_runs_by_hash_and_again_after_redis_forgot_it(
    redis_server: RedisServer,
) -> None:
    """NOSCRIPT (a restart, SCRIPT FLUSH) is met with EVAL, which loads it again."""
    client = make_client(redis_server.url, connect_timeout=1.0, timeout=1.0)
    try:
        assert await ECHO.run(client, ["k"], ["v"]) == [b"k", b"v"]
        assert await client.script_exists(ECHO.sha) == [True]
        await client.script_flush()
        assert await ECHO.run(client, ["k"], [2]) == [b"k", b"2"]
        assert await client.script_exists(ECHO.sha) == [True]
    finally:
        await client.aclose()


def wrapped(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` raised while handling ``inner``, as redis-py wraps socket errors."""
    outer.__context__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), "timed out"),
        (errors.TimeoutError("Timeout reading from host:6379"), "timed out"),
        (errors.AuthenticationError("invalid password"), "authentication refused"),
        (
            wrapped(errors.ConnectionError("auth"), errors.AuthenticationError("x")),
            "authentication refused",
        ),
        (errors.BusyLoadingError("loading"), "Redis is loading its data"),
        (errors.ReadOnlyError("READONLY"), "Redis is a read-only replica"),
        (
            wrapped(
                errors.ConnectionError("Error 111 connecting to h:1"),
                ConnectionRefusedError(111, "Connection refused"),
            ),
            "Connection refused",
        ),
        (errors.ConnectionError("Connection closed by server."), "connection lost"),
        (OSError("no errno"), "OSError"),
    ],
)
def test_a_reason_never_repeats_redis_pys_text(exc: BaseException, expected: str) -> None:
    """The kind of failure in a few words; redis-py's message (with the host) never."""
    assert reason(exc) == expected


def test_replies_are_checked_before_use() -> None:
    """Bytes and strings are text, numbers come as integers or text, arrays are lists."""
    assert (text(b"a"), text("b")) == ("a", "b")
    assert (number(3), number(b"2.5"), number("1")) == (3.0, 2.5, 1.0)
    assert items([1, b"x"]) == [1, b"x"]
    with pytest.raises(TypeError, match="expected a string reply, got int"):
        text(1)
    with pytest.raises(TypeError, match="expected a string reply, got bool"):
        number(True)
    with pytest.raises(TypeError, match="expected an array reply, got bytes"):
        items(b"x")


async def test_a_swallowed_cancellation_is_raised_after_all() -> None:
    """A cancellation requested during the block but never delivered is raised at its end."""

    async def swallowing() -> str:
        # The inner suppress does what Python 3.11's wait_for does when its future is done too.
        with cancellable(), contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)
        return "ran on"

    task = asyncio.create_task(swallowing())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def clean() -> str:
        with cancellable():
            await asyncio.sleep(0)
        return "done"

    assert await clean() == "done"
