"""A listener's guard: header deadline, connection cap, quiet bad requests, no version."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from aiohttp import web

from exporter.exposition.guard import DROP_REASONS, SERVER, HttpLimits, printable
from exporter.exposition.listener import Listener

FAST = HttpLimits(header_timeout=0.2, body_timeout=0.2, idle_timeout=5.0, max_connections=3)
# Long enough that a closed connection is not a timing accident, short enough to keep it quick.
WAIT = 5.0


class Stats:
    """Records what a guard counts."""

    def __init__(self) -> None:
        self.bad: list[str] = []
        self.dropped: list[tuple[str, str]] = []
        self.open: dict[str, int] = {}
        self.started: list[tuple[str, tuple[str, ...]]] = []

    def http_listener(self, listener: str, reasons: tuple[str, ...]) -> None:
        """Note the listener's series started."""
        self.started.append((listener, reasons))

    def http_bad_request(self, listener: str) -> None:
        """Note a bad request."""
        self.bad.append(listener)

    def http_dropped(self, listener: str, reason: str) -> None:
        """Note a dropped connection."""
        self.dropped.append((listener, reason))

    def http_connections(self, listener: str, delta: int) -> None:
        """Follow the open connections."""
        self.open[listener] = self.open.get(listener, 0) + delta


class Slow:
    """What ``/slow`` waits for, and how many requests are waiting in it."""

    def __init__(self, expect: int = 1) -> None:
        self.release = asyncio.Event()
        self.waiting = 0
        self.expect = expect
        self.all_in = asyncio.Event()


def make_app(slow_: Slow | None = None, big: bytes = b"") -> Callable[[], web.Application]:
    """An app with ``/`` (ok), ``/slow`` (waits for ``slow_``) and ``/big`` (``big``)."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def slow(_: web.Request) -> web.Response:
        assert slow_ is not None
        slow_.waiting += 1
        if slow_.waiting == slow_.expect:
            slow_.all_in.set()
        await slow_.release.wait()
        return web.Response(text="late")

    async def large(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = len(big)
        await resp.prepare(request)
        for at in range(0, len(big), 65536):
            await resp.write(big[at : at + 65536])
        await resp.write_eof()
        return resp

    def build() -> web.Application:
        app = web.Application()
        app.router.add_get("/", ok)
        app.router.add_get("/slow", slow)
        app.router.add_get("/big", large)
        return app

    return build


ServeFactory = Callable[..., AbstractAsyncContextManager[Listener]]


@pytest.fixture
def serve(stats: Stats) -> ServeFactory:
    """Start a guarded listener on port 0 for the ``async with``, closed after it."""

    @asynccontextmanager
    async def run(
        app: Callable[[], web.Application] | None = None, limits: HttpLimits = FAST
    ) -> AsyncIterator[Listener]:
        async with Listener(
            app or make_app(), host="127.0.0.1", port=0, limits=limits, stats=stats
        ) as listener:
            yield listener

    return run


@pytest.fixture
def stats() -> Stats:
    """The counters of the listener under test."""
    return Stats()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection to the listener."""
    return await asyncio.open_connection("127.0.0.1", port)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before it closed the connection."""
    return await asyncio.wait_for(reader.read(), WAIT)


async def test_a_request_whose_headers_never_end_is_closed_at_the_header_timeout(
    serve: ServeFactory, stats: Stats
) -> None:
    """Slowloris: a request line and one header, then silence, is dropped and counted."""
    async with serve() as listener:
        reader, writer = await connect(listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = asyncio.get_running_loop().time()
        assert await closed_by_server(reader) == b""
        took = asyncio.get_running_loop().time() - started
        writer.close()
        assert 0.15 <= took < WAIT
        assert stats.dropped == [("metrics", "header_timeout")]
    assert stats.open == {"metrics": 0}
    assert stats.started == [("metrics", DROP_REASONS)]


async def test_a_connection_that_sends_nothing_is_closed_too(
    serve: ServeFactory, stats: Stats
) -> None:
    """A bare TCP connect without a request counts against the header timeout."""
    async with serve() as listener:
        reader, writer = await connect(listener.port)
        assert await closed_by_server(reader) == b""
        writer.close()
    assert stats.dropped == [("metrics", "header_timeout")]


async def test_a_slow_handler_is_not_cut_off_and_keep_alive_works(
    serve: ServeFactory, stats: Stats
) -> None:
    """The deadline covers receiving headers only: a handler may take longer than it."""
    slow = Slow()
    async with serve(make_app(slow)) as listener:
        reader, writer = await connect(listener.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await slow.all_in.wait()
        await asyncio.sleep(FAST.header_timeout * 2)  # real time: the deadline must pass
        slow.release.set()
        head = await asyncio.wait_for(reader.readuntil(b"late"), WAIT)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        again = await asyncio.wait_for(reader.readuntil(b"ok"), WAIT)
        assert again.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()
    assert stats.dropped == []


async def test_a_kept_alive_connections_next_request_has_its_own_deadline(
    serve: ServeFactory, stats: Stats
) -> None:
    """After one answer, a second request that never finishes its headers is dropped."""
    async with serve() as listener:
        reader, writer = await connect(listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"ok"), WAIT)
        writer.write(b"GET / HTTP/1.1\r\n")
        assert await closed_by_server(reader) == b""
        writer.close()
    assert stats.dropped == [("metrics", "header_timeout")]


async def test_at_the_cap_a_newcomer_replaces_the_oldest_idle_connection(
    serve: ServeFactory, stats: Stats
) -> None:
    """With 3 open and idle, a 4th closes the oldest (a slow client cannot lock others out)."""
    limits = HttpLimits(header_timeout=30.0, max_connections=3)
    async with serve(limits=limits) as listener:
        held = [await connect(listener.port) for _ in range(3)]
        for r, w in held[1:]:  # answered, so surely open on the server's side; the first stays mute
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(r.readuntil(b"ok"), WAIT)
        reader, writer = await connect(listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await closed_by_server(reader)).endswith(b"ok")
        assert await closed_by_server(held[0][0]) == b""  # the oldest, mute one went
        for _, w in [*held, (reader, writer)]:
            w.close()
    assert stats.dropped == [("metrics", "evicted")]


async def test_at_the_cap_with_every_connection_busy_a_newcomer_is_refused(
    serve: ServeFactory, stats: Stats
) -> None:
    """3 requests running: a 4th connection is closed unanswered and counted."""
    slow = Slow(expect=3)
    limits = HttpLimits(header_timeout=30.0, max_connections=3)
    async with serve(make_app(slow), limits=limits) as listener:
        held = [await connect(listener.port) for _ in range(3)]
        for _, w in held:
            w.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(slow.all_in.wait(), WAIT)
        reader, writer = await connect(listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await closed_by_server(reader) == b""
        writer.close()
        slow.release.set()
        for r, w in held:
            assert (await asyncio.wait_for(r.readuntil(b"late"), WAIT)).startswith(b"HTTP/1.1 200")
            w.close()
    assert stats.dropped == [("metrics", "max_connections")]


async def test_bad_requests_are_counted_answered_and_logged_once_without_traceback(
    serve: ServeFactory, stats: Stats, caplog: pytest.LogCaptureFixture
) -> None:
    """Five malformed requests: five 400s without a version, one info line, no traceback."""
    caplog.set_level(logging.DEBUG)
    bad = [
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"b" * 9000 + b"\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /\x7f HTTP/9.9\r\n\r\n",
    ]
    async with serve() as listener:
        for raw in bad:
            reader, writer = await connect(listener.port)
            writer.write(raw)
            answer = await closed_by_server(reader)
            writer.close()
            head = answer.partition(b"\r\n\r\n")[0].decode("latin-1")
            # aiohttp answers what it could not parse in HTTP/1.0.
            assert head.split("\r\n")[0] == "HTTP/1.0 400 Bad Request", raw[:20]
            assert f"Server: {SERVER}" in head.split("\r\n")
    assert stats.bad == ["metrics"] * 5
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert noisy == []
    lines = [r.getMessage() for r in caplog.records if r.name == "exporter.http"]
    assert len(lines) == 1
    assert lines[0].startswith("1 bad requests on the metrics listener since the last such line")


async def test_answers_name_the_server_without_a_version(serve: ServeFactory) -> None:
    """``Server`` is the product name only, on ordinary answers and on 404s."""
    async with serve() as listener:
        for path in (b"/", b"/nowhere"):
            reader, writer = await connect(listener.port)
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = (await closed_by_server(reader)).partition(b"\r\n\r\n")[0]
            writer.close()
            assert f"Server: {SERVER}".encode() in head.split(b"\r\n")


async def test_a_slow_reader_of_a_big_page_gets_all_of_it(
    serve: ServeFactory, stats: Stats
) -> None:
    """Sending is never timed: a reader slower than every timeout still gets every byte."""
    big = bytes(range(256)) * 16384  # 4 MiB
    limits = HttpLimits(header_timeout=0.1, body_timeout=0.1, idle_timeout=0.1)
    async with serve(make_app(big=big), limits=limits) as listener:
        reader, writer = await connect(listener.port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        got = bytearray()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while chunk := await asyncio.wait_for(reader.read(256 * 1024), WAIT):
            got += chunk
            await asyncio.sleep(0.01)  # a slow reader on purpose: the server must wait for it
        writer.close()
        assert loop.time() - started > limits.idle_timeout
    assert bytes(got) == big
    assert stats.dropped == []


def test_printable_flattens_and_bounds_what_a_client_sent() -> None:
    """Control bytes become spaces, runs of spaces one, and the text is cut with an ellipsis."""
    assert printable('Bad\x00line\n\t "x"') == 'Bad line "x"'
    assert printable("é" + "a" * 200, limit=10) == "aaaaaaa..."


async def test_a_505_leaves_its_kept_alive_connection_replaceable(
    serve: ServeFactory, stats: Stats
) -> None:
    """An HTTP/2.0 request line is answered 505 and its connection is no busier than idle."""
    limits = HttpLimits(header_timeout=30.0, max_connections=1)
    async with serve(limits=limits) as listener:
        reader, writer = await connect(listener.port)
        writer.write(b"GET / HTTP/2.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/2.0 505 ")
        r2, w2 = await connect(listener.port)
        w2.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await closed_by_server(r2)).endswith(b"ok")
        await closed_by_server(reader)  # the 505's body, then the eviction's close
        writer.close()
        w2.close()
    assert stats.dropped == [("metrics", "evicted")]
    assert stats.bad == ["metrics"]
