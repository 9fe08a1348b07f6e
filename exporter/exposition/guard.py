"""What a listener does about clients that are slow, greedy or broken.

aiohttp has no header-read timeout and no connection cap, and it logs a
malformed request as an error with a traceback.  A :class:`Guard` is one
listener's answer, given to its :class:`~exporter.exposition.site.GuardedSite`
as the protocol factory:

- a connection's first request must bring its headers within
  ``header_timeout`` of the connect, and a later request within
  ``header_timeout`` of its first byte (between requests, aiohttp's keep-alive
  timeout is the idle timeout), else the connection is closed (slowloris);
- at ``max_connections`` open connections (TLS handshakes running count), a
  new one takes the place of the oldest that is not running a request (still
  sending its headers, idle between requests, or still in its handshake), so a
  crowd of slow clients cannot lock Prometheus out; only when every one is
  busy is the new one closed at once;
- a request aiohttp cannot parse is a client error: counted, answered in the
  listener's own error format, and told in at most one ``info`` line a minute,
  never a traceback (a handler that crashes is still logged as the bug it is);
- ``Server`` says no version.

Both are counted through :class:`HttpStats`.  Sending a page is never timed:
a slow but honest Prometheus reading 60 MB still gets all of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

LOG = logging.getLogger("exporter.http")

# No version: scanners flag one, and nobody needs it to talk to us.
SERVER = "batch-job-exporter"
# Bad requests are summed up in one log line at most this often.
LOG_EVERY = 60.0
MAX_REASON = 120

ErrorResponse = Callable[[int, str], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Limits on receiving requests, the same for every listener (the ``--web.*`` flags)."""

    header_timeout: float = 5.0
    body_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 512


# Why a guard closes a connection: the ``reason`` label of the dropped-connections counter.
DROP_REASONS = ("header_timeout", "evicted", "max_connections", "tls_handshake", "tls_client")


class HttpStats(Protocol):
    """The counters a guard feeds (the exporter's :class:`SelfMetrics`)."""

    def http_listener(self, listener: str, reasons: tuple[str, ...]) -> None:
        """Start the listener's series at 0."""
        ...

    def http_bad_request(self, listener: str) -> None:
        """Count a request that could not be parsed."""
        ...

    def http_dropped(self, listener: str, reason: str) -> None:
        """Count a connection closed by a limit (one of :data:`DROP_REASONS`)."""
        ...

    def http_connections(self, listener: str, delta: int) -> None:
        """Follow the number of open connections."""
        ...


class Uncounted:
    """An :class:`HttpStats` that counts nothing, for listeners nobody scrapes (tests, tools)."""

    def http_listener(self, listener: str, reasons: tuple[str, ...]) -> None:
        """Count nothing."""

    def http_bad_request(self, listener: str) -> None:
        """Count nothing."""

    def http_dropped(self, listener: str, reason: str) -> None:
        """Count nothing."""

    def http_connections(self, listener: str, delta: int) -> None:
        """Count nothing."""


def plain_error(status: int, message: str) -> web.Response:
    """An error answer as plain text (the metrics listener's format)."""
    return web.Response(status=status, text=f"{message}\n")


def printable(text: str, limit: int = MAX_REASON) -> str:
    """``text`` on one line of printable ASCII, at most ``limit`` characters."""
    flat = " ".join("".join(c if " " <= c <= "~" else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


async def _server_header(_: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER


class Guard:
    """One listener's limits, counters and error format; makes its connections' protocols."""

    def __init__(
        self,
        name: str,
        *,
        limits: HttpLimits,
        stats: HttpStats,
        error_response: ErrorResponse = plain_error,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limits = limits
        self._stats = stats
        self._error_response = error_response
        self._monotonic = monotonic
        self.open = 0
        # Connections not running a request, oldest first: the ones a newcomer may replace.
        self._idle: dict[_GuardedHandler, None] = {}
        # TLS handshakes running, oldest first, with their connections.
        self._handshakes: dict[asyncio.Task[None], asyncio.Transport] = {}
        self._unreported = 0
        self._next_log = 0.0
        stats.http_listener(name, DROP_REASONS)

    def prepare(self, app: web.Application) -> None:
        """Hook the guard into an application before it is frozen."""
        app.middlewares.append(self._middleware)
        app.on_response_prepare.append(_server_header)

    def protocol(self, server: web.Server) -> asyncio.BaseProtocol:
        """A protocol for one new plain connection: a guarded handler, or a refusal when full."""
        return self.handler(server) if self.admit() else Refused(self)

    def handler(self, server: web.Server) -> RequestHandler:
        """A guarded handler for a connection already admitted (a TLS one, after its handshake)."""
        return _GuardedHandler(server, guard=self)

    def admit(self) -> bool:
        """Make room for one more connection, if any can be made; whether there is room.

        At the cap, the oldest connection not running a request goes (idle, or still
        sending its headers), else the oldest TLS handshake; when all are busy, none.
        """
        if self.open + len(self._handshakes) < self.limits.max_connections:
            return True
        if self._idle:
            oldest = next(iter(self._idle))
            self.idle(oldest, idle=False)
            self.dropped("evicted")
            oldest.force_close()
            return True
        if self._handshakes:
            task, transport = next(iter(self._handshakes.items()))
            del self._handshakes[task]
            self.dropped("evicted")
            task.cancel()
            transport.abort()
            return True
        return False

    def idle(self, handler: _GuardedHandler, *, idle: bool) -> None:
        """Whether ``handler`` may be replaced by a newcomer (not running a request)."""
        if idle:
            self._idle[handler] = None
        else:
            self._idle.pop(handler, None)

    def bad_request(self, status: int, reason: str) -> web.Response:
        """Count a request aiohttp could not parse and answer it; never a traceback."""
        self._stats.http_bad_request(self.name)
        self._unreported += 1
        now = self._monotonic()
        if now >= self._next_log:
            LOG.info(
                "%d bad requests on the %s listener since the last such line; latest: %d %s",
                self._unreported,
                self.name,
                status,
                reason,
            )
            self._unreported = 0
            self._next_log = now + LOG_EVERY
        return self._error_response(status, reason)

    def handshake(self, work: Coroutine[None, None, None], transport: asyncio.Transport) -> None:
        """Run a TLS handshake in a task of its own; it counts against the cap until done."""
        task = asyncio.get_running_loop().create_task(work)
        self._handshakes[task] = transport
        task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        self._handshakes.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            LOG.error("accepting a TLS connection failed", exc_info=exc)

    async def close(self) -> None:
        """Cancel the handshakes still running (the listener stops)."""
        tasks = list(self._handshakes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def dropped(self, reason: str) -> None:
        """Count a connection a limit closed."""
        self._stats.http_dropped(self.name, reason)

    def opened(self, delta: int) -> None:
        """Follow the open connections (``delta`` is +1 or -1)."""
        self.open += delta
        self._stats.http_connections(self.name, delta)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        proto = request.protocol
        if isinstance(proto, _GuardedHandler):
            proto.request_started()
        try:
            if request.version.major != 1:  # "HTTP/2.0" in plain text: aiohttp would play along
                return self.bad_request(505, "only HTTP/1.0 and HTTP/1.1 are served")
            return await handler(request)
        finally:
            if isinstance(proto, _GuardedHandler):
                proto.request_done()


class Refused(asyncio.Protocol):
    """A connection beyond the cap: closed as soon as it is made."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count it and close it."""
        self._guard.dropped("max_connections")
        transport.close()


class _GuardedHandler(RequestHandler):
    """aiohttp's request handler with a header deadline and quiet client errors."""

    __slots__ = ("_busy", "_deadline", "_guard")

    def __init__(self, server: web.Server, *, guard: Guard) -> None:
        super().__init__(
            server,
            loop=asyncio.get_running_loop(),
            keepalive_timeout=guard.limits.idle_timeout,
            # An unread body is drained before the connection is reused, for no longer than
            # a body may take to arrive (aiohttp's default is 10 s).
            lingering_time=guard.limits.body_timeout,
            # None turns access logging off, as AppRunner(access_log=None) documents.
            access_log=None,  # type: ignore[arg-type]
        )
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None
        self._busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard.opened(+1)
        self._guard.idle(self, idle=True)
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._guard.idle(self, idle=False)
        self._guard.opened(-1)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # The first byte of a kept-alive connection's next request starts its deadline.
        if self._deadline is None and not self._busy:
            self._arm()
        super().data_received(data)

    def request_started(self) -> None:
        """The request's head is in and its handler runs: no deadline while it does."""
        self._busy = True
        self._guard.idle(self, idle=False)
        self._disarm()

    def request_done(self) -> None:
        """The handler returned; the next request's deadline starts with its first byte."""
        self._busy = False
        self._guard.idle(self, idle=True)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a crash of ours, not the client's fault: logged with its traceback
            resp = super().handle_error(request, status, exc, message)
        else:
            if request.writer.output_size > 0:  # as aiohttp: too late for another answer
                raise ConnectionError("response already sent, cannot send the error")
            resp = self._guard.bad_request(status, printable(message or str(exc or "")))
            resp.force_close()
        resp.headers["Server"] = SERVER
        return resp

    def _arm(self) -> None:
        self._deadline = asyncio.get_running_loop().call_later(
            self._guard.limits.header_timeout, self._too_slow
        )

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self._busy:
            self._guard.dropped("header_timeout")
            self.force_close()
