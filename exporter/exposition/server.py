"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and a landing page.

It knows nothing of vendors or jobs: it is given a function that renders the
exposition and functions that say whether the exporter is healthy and ready,
and, for ``/``, one that renders the jobs page from the query string's pairs
(without it, ``/`` is a page of links).

The render function returns a :class:`~exporter.exposition.page.Page` of
cached pieces (``Page([data])`` wraps plain bytes): the page is never joined,
it is streamed piece by piece in writes of about :data:`WRITE_SIZE`, and its
gzip form is assembled from the pieces' cached deflate (see
:mod:`exporter.exposition.page`), in a worker thread when much is fresh.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web

from exporter import __version__
from exporter.exposition.guard import HttpLimits, HttpStats
from exporter.exposition.jobspage import HtmlAnswer
from exporter.exposition.listener import Listener
from exporter.exposition.page import Page
from exporter.exposition.websecurity import WebSecurity

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Writes smaller than this are coalesced; larger ones go to the socket as they are.
WRITE_SIZE = 256 * 1024
# Below this many bytes to compress, a thread hop costs more than it saves.
THREAD_MIN = 64 * 1024

_LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>batch-job-exporter</title></head>
<body><h1>batch-job-exporter</h1>
<p>Prometheus exporter for vendor batch import and report jobs, version {version}.</p>
<ul><li><a href="metrics">metrics</a></li><li><a href="healthz">healthz</a></li>
<li><a href="readyz">readyz</a></li></ul></body></html>
"""


def coalesce(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Join small chunks into writes of at least :data:`WRITE_SIZE`; pass big ones through."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        if len(chunk) >= WRITE_SIZE:
            if pending:
                yield b"".join(pending)
                pending, size = [], 0
            yield chunk
            continue
        pending.append(chunk)
        size += len(chunk)
        if size >= WRITE_SIZE:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class MetricsServer(Listener):
    """An aiohttp server on one address; an async context manager with :meth:`close`."""

    def __init__(
        self,
        *,
        render: Callable[[], Page],
        health: Callable[[], str | None],
        ready: Callable[[], bool],
        host: str,
        port: int,
        reload: Callable[[], Awaitable[str | None]] | None = None,
        limits: HttpLimits | None = None,
        stats: HttpStats | None = None,
        jobs_page: Callable[[list[tuple[str, str]]], HtmlAnswer] | None = None,
        security: WebSecurity | None = None,
    ) -> None:
        self._reload = reload
        self._jobs_page = jobs_page
        self._render = render
        self._health = health
        self._ready = ready
        super().__init__(
            self._app,
            host=host,
            port=port,
            limits=limits,
            stats=stats,
            security=security,
            # Kubelet probes carry no credentials; TLS still applies to them.
            open_paths=frozenset({"/healthz", "/readyz"}),
        )

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._landing)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_post("/-/reload", self._reload_config)
        return app

    async def _landing(self, request: web.Request) -> web.Response:
        if self._jobs_page is not None:  # the jobs page, from the query string's pairs
            answer = self._jobs_page(list(request.query.items()))
            return web.Response(
                status=answer.status,
                text=answer.body,
                content_type="text/html",
                headers=answer.headers,
            )
        page = _LANDING.format(version=html.escape(__version__))
        return web.Response(text=page, content_type="text/html")

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body = self._render()
        headers = {"Content-Type": CONTENT_TYPE}
        if request.method == "HEAD":
            return web.Response(body=bytes(body), headers=headers)
        chunks: Iterator[bytes | memoryview]
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            gz = await self._gzip(body)
            size = sum(map(len, gz))
            chunks = coalesce(iter(gz))
        else:
            size, chunks = body.size, coalesce(body.chunks())
        resp = web.StreamResponse(headers=headers)
        resp.content_length = size
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    @staticmethod
    async def _gzip(body: Page) -> list[bytes]:
        """Compress in a worker thread when it is worth it: zlib releases the GIL."""
        if body.fresh_bytes() < THREAD_MIN:
            return body.gzip()
        return await asyncio.to_thread(body.gzip)

    async def _healthz(self, _: web.Request) -> web.Response:
        problem = self._health()
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"unhealthy: {problem}\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def _reload_config(self, _: web.Request) -> web.Response:
        # As Prometheus' own /-/reload: 200 when applied, 500 with the problems when refused.
        if self._reload is None:
            return web.Response(status=404, text="reload is not available\n")
        problem = await self._reload()
        if problem is None:
            return web.Response(text="config reloaded\n")
        return web.Response(status=500, text=f"config reload failed:\n{problem}\n")
