"""The HTTP server: content types, gzip, health and readiness, clean start and stop."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

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
            render=lambda: PAGE,
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
        assert "stuck" in await resp.text()
    async with http.get(base + "/readyz") as resp:
        assert resp.status == 503


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
    async with http.get(base + "/readyz") as resp:
        assert resp.status == 200
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
    """A render returning a Page: served whole, and gzipped from pieces, large or small."""
    big = Piece(b"".join(b'x_total{job_id="%d"} %d\n' % (i, i) for i in range(40_000)))
    small = Piece(b"# HELP x An example.\n# TYPE x gauge\n")
    fresh = [b"x 1\n", b"y 2\n" * 30_000]  # the second is past THREAD_MIN: compressed in a thread
    pages = [Page([small, big, fresh[0], small]), Page([big, fresh[1], small])]
    calls: list[bool] = []

    def render(*, page: bool = False) -> Page | bytes:
        calls.append(page)
        return pages[len(calls) % 2]

    server = MetricsServer(
        render=render,  # type: ignore[arg-type]
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
    assert calls == [True] * 5
