"""The HTTP server: content types, gzip, health and readiness, clean start and stop."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from exporter.server import CONTENT_TYPE, MetricsServer

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
