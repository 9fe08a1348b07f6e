"""The HTTP server: content types, gzip, health and readiness, clean start and stop."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from exporter.exposition.listener import Listener
from exporter.exposition.page import Page, Piece
from exporter.exposition.server import CONTENT_TYPE, MetricsServer

PAGE = b"# HELP x An example.\n# TYPE x gauge\nx 1\n"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session without automatic decompression, closed after the test."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., MetricsServer]]:
    """Build servers on port 0 and close every one of them after the test."""
    made: list[MetricsServer] = []

    def make(health: str | None = None, ready: bool = True, port: int = 0) -> MetricsServer:
        server = MetricsServer(
            render=lambda: Page([PAGE]),
            health=lambda: health,
            ready=lambda: ready,
            host="127.0.0.1",
            port=port,
        )
        made.append(server)
        return server

    yield make
    for server in made:
        await server.close()


async def test_metrics_plain_and_gzip(
    make_server: Callable[..., MetricsServer], http: aiohttp.ClientSession
) -> None:
    """/metrics serves the text format, gzipped when the scraper asks for it."""
    server = make_server()
    await server.start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    async with http.get(url, headers={"Accept-Encoding": "identity"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE
        assert await resp.read() == PAGE
    async with http.get(url, headers={"Accept-Encoding": "gzip, deflate"}) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await resp.read()) == PAGE


async def test_health_and_readiness_report_problems(
    make_server: Callable[..., MetricsServer], http: aiohttp.ClientSession
) -> None:
    """/healthz and /readyz answer 503 with the reason when something is wrong."""
    server = make_server(health="scheduler loop stuck for 40s", ready=False)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    async with http.get(base + "/healthz") as resp:
        assert resp.status == 503
        assert await resp.text() == "unhealthy: scheduler loop stuck for 40s\n"
    async with http.get(base + "/readyz") as resp:
        assert resp.status == 503
        assert await resp.text() == "not ready\n"


async def test_landing_page_links_endpoints(
    make_server: Callable[..., MetricsServer], http: aiohttp.ClientSession
) -> None:
    """/ is a small HTML page linking /metrics, /healthz and /readyz; health is ok."""
    server = make_server()
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    async with http.get(base + "/") as resp:
        text = await resp.text()
    for link in ('href="metrics"', 'href="healthz"', 'href="readyz"'):
        assert link in text
    async with http.get(base + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.text() == "ok\n"
    async with http.get(base + "/readyz") as resp:
        assert resp.status == 200
        assert await resp.text() == "ready\n"
    async with http.get(base + "/nope") as resp:
        assert resp.status == 404


async def test_a_port_in_use_fails_start_and_leaves_nothing_running(
    make_server: Callable[..., MetricsServer],
) -> None:
    """Binding a taken port raises OSError; close() afterwards is harmless."""
    first = make_server()
    await first.start()
    second = make_server(port=first.port)
    with pytest.raises(OSError, match=r"(?i)address already in use"):
        await second.start()
    await second.close()
    await first.close()
    await first.close()


async def test_a_paged_render_streams_and_gzips_the_same_page(
    http: aiohttp.ClientSession,
) -> None:
    """A page of pieces is served whole, and gzipped from its pieces, large or small."""
    big = Piece(b"".join(b'x_total{job_id="%d"} %d\n' % (i, i) for i in range(40_000)))
    small = Piece(b"# HELP x An example.\n# TYPE x gauge\n")
    fresh = [b"x 1\n", b"y 2\n" * 30_000]  # the second is past THREAD_MIN: compressed in a thread
    pages = [Page([small, big, fresh[0], small]), Page([big, fresh[1], small])]
    calls: list[None] = []

    def render() -> Page:
        calls.append(None)
        return pages[len(calls) % 2]

    server = MetricsServer(
        render=render,
        health=lambda: None,
        ready=lambda: True,
        host="127.0.0.1",
        port=0,
    )
    async with server:
        url = f"http://127.0.0.1:{server.port}/metrics"
        for encoding in ("identity", "gzip", "gzip", "identity"):
            async with http.get(url, headers={"Accept-Encoding": encoding}) as resp:
                body = await resp.read()
                want = bytes(pages[len(calls) % 2])
                if encoding == "gzip":
                    assert resp.headers["Content-Encoding"] == "gzip"
                    body = gzip.decompress(body)
                assert "Content-Encoding" not in resp.headers or encoding == "gzip"
                assert resp.headers["Content-Length"] == str(len(await resp.read()))
                assert body == want
        async with http.head(url) as resp:
            assert resp.status == 200
    assert len(calls) == 5


class Hooks:
    """An application holding one resource from startup to cleanup; its startup may hang."""

    def __init__(self, *, hold: bool = False, cleanup_fails: bool = False) -> None:
        self.hold = hold
        self.cleanup_fails = cleanup_fails
        self.opened = asyncio.Event()
        self.cleanups = 0

    def app(self) -> web.Application:
        """A new application with the hooks."""
        app = web.Application()
        app.cleanup_ctx.append(self._resource)
        if self.hold:
            app.on_startup.append(self._hang)
        return app

    async def _resource(self, _: web.Application) -> AsyncIterator[None]:
        self.opened.set()
        yield
        self.cleanups += 1
        if self.cleanup_fails:
            raise RuntimeError("cleanup broke")

    async def _hang(self, _: web.Application) -> None:
        await asyncio.Event().wait()


@pytest.mark.parametrize("cleanup_fails", [False, True])
async def test_a_listener_cancelled_while_starting_undoes_it_and_stays_cancelled(
    cleanup_fails: bool,
) -> None:
    """Cancelling start() part-way cleans up what started; the cancellation always propagates."""
    hooks = Hooks(hold=True, cleanup_fails=cleanup_fails)
    listener = Listener(hooks.app, host="127.0.0.1", port=0)
    starting = asyncio.create_task(listener.start())
    await hooks.opened.wait()
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert starting.cancelled() is True
    assert hooks.cleanups == 1
    assert listener.serving is False


async def test_a_listener_that_cannot_bind_undoes_its_start_even_if_cleanup_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bind error reaches the caller; a cleanup failing too is logged, not raised."""
    first = Hooks()
    async with Listener(first.app, host="127.0.0.1", port=0) as taken:
        second = Hooks(cleanup_fails=True)
        listener = Listener(second.app, host="127.0.0.1", port=taken.port)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await listener.start()
        assert second.cleanups == 1
        assert listener.serving is False
        await listener.close()
        assert second.cleanups == 1
    assert first.cleanups == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["cleaning up after a failed start failed too"]


async def test_a_listener_starts_once_and_again_after_close(http: aiohttp.ClientSession) -> None:
    """A second start() while serving is refused; after close() a start serves a new app."""
    hooks = Hooks()
    listener = Listener(hooks.app, host="127.0.0.1", port=0)
    async with listener:
        with pytest.raises(RuntimeError, match="already serving"):
            await listener.start()
    assert hooks.cleanups == 1
    async with listener:
        assert listener.serving is True
        async with http.get(f"http://127.0.0.1:{listener.port}/") as resp:
            assert resp.status == 404
    assert hooks.cleanups == 2
    assert listener.serving is False
