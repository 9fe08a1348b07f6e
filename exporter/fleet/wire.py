"""Redis as the fleet uses it: the client, its timings and errors, Lua scripts, typed replies.

A script runs with EVALSHA, so each call sends 40 bytes instead of its text;
when Redis does not know it (a restart, ``SCRIPT FLUSH``, a failover) the
NOSCRIPT answer is met with one EVAL, which also loads it for next time.
redis-py types script replies as ``Any``: the readers here check each value
before the rest of the fleet sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

# What says "Redis cannot be used now" rather than "this call is wrong": the link goes down.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,  # a replica after a failover: the primary is elsewhere
    TimeoutError,
    OSError,
)
# Any failure of a call, including Redis refusing it: for clean-ups that ignore them all.
FAILURES: tuple[type[BaseException], ...] = (*UNAVAILABLE, RedisError)
Arg = str | int | float


class FleetUnavailable(Exception):
    """Redis cannot take or answer this call now: it is down, too slow, or refused it."""


@dataclass(frozen=True, slots=True)
class Timings:
    """How long calls may take and how often the link beats and retries (seconds)."""

    timeout: float = 0.2  # a call; also how slow a reconnect's health PING may be
    connect_timeout: float = 1.0  # TCP, TLS and AUTH of a new connection
    heartbeat: float = 2.0
    member_ttl: float = 6.0  # three missed heartbeats and a member is no longer counted
    retry_base: float = 0.1
    retry_cap: float = 5.0
    queue: int = 1024  # writes kept while Redis is away; the oldest go first
    feed_poll: float = 0.5  # how often an idle subscriber checks that its link is still up


@contextmanager
def cancellable() -> Iterator[None]:
    """Around a redis-py await: a cancellation it swallowed is raised after all.

    On Python 3.11, ``asyncio.wait_for`` (redis-py's writes use it) returns the
    result when the inner future finishes in the same turn as a cancellation,
    and the CancelledError aimed at the caller is lost: a task told to stop
    would run on.  The request is still counted on the task, so it shows here.
    """
    task = asyncio.current_task()
    mark = 0 if task is None else task.cancelling()
    yield
    if task is not None and task.cancelling() > mark:
        raise asyncio.CancelledError


def make_client(url: str, *, connect_timeout: float, timeout: float) -> Redis:
    """A client for ``url`` that never retries on its own: the link decides when to try again."""
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )


class Script:
    """A Lua script, run by its SHA-1 and sent whole only when Redis has not got it."""

    def __init__(self, source: str) -> None:
        self.source = source
        # SHA-1 is what Redis names scripts by, not a security measure.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def run(self, client: Redis, keys: Sequence[str], args: Sequence[Arg]) -> object:
        """The script's reply to ``keys`` and ``args``."""
        try:
            reply: object = await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            reply = await client.eval(self.source, len(keys), *keys, *args)
        return reply


def text(value: object) -> str:
    """A reply that must be a string (Redis sends bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string reply, got {type(value).__name__}")


def number(value: object) -> float:
    """A reply that must be a number, as an integer or a string (Lua floats travel as text)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float(text(value))


def items(value: object) -> list[object]:
    """A reply that must be an array."""
    if not isinstance(value, list):
        raise TypeError(f"expected an array reply, got {type(value).__name__}")
    return list(value)


def reason(exc: BaseException) -> str:
    """Why a call failed, for a log line: never redis-py's text, which names the host."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 4:  # redis-py wraps what went wrong
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in chain:
        if isinstance(error, AuthenticationError):
            return "authentication refused"
        if isinstance(error, BusyLoadingError):
            return "Redis is loading its data"
        if isinstance(error, ReadOnlyError):
            return "Redis is a read-only replica"
        if isinstance(error, TimeoutError | RedisTimeoutError):
            return "timed out"
        # The socket's own words ("Connection refused") name no host.
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    return "connection lost" if isinstance(exc, RedisConnectionError) else type(exc).__name__
