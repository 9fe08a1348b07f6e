"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and a landing page.

It knows nothing of vendors or jobs: it is given a function that renders the
exposition and functions that say whether the exporter is healthy and ready.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Callable

from aiohttp import web

from exporter import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LANDING = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>batch-job-exporter</title></head>
<body><h1>batch-job-exporter</h1>
<p>Prometheus exporter for vendor batch import and report jobs, version {version}.</p>
<ul><li><a href="metrics">metrics</a></li><li><a href="healthz">healthz</a></li>
<li><a href="readyz">readyz</a></li></ul></body></html>
"""


class MetricsServer:
    """An aiohttp server on one address; an async context manager with :meth:`close`."""

    def __init__(
        self,
        *,
        render: Callable[[], bytes],
        health: Callable[[], str | None],
        ready: Callable[[], bool],
        host: str,
        port: int,
    ) -> None:
        self._render = render
        self._health = health
        self._ready = ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve; a failure to bind leaves nothing running."""
        app = web.Application()
        app.router.add_get("/", self._landing)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host or None, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        """Stop serving; safe to call twice."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _landing(self, _: web.Request) -> web.Response:
        page = _LANDING.format(version=html.escape(__version__))
        return web.Response(text=page, content_type="text/html")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self._render()
        headers = {"Content-Type": CONTENT_TYPE}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def _healthz(self, _: web.Request) -> web.Response:
        problem = self._health()
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=f"unhealthy: {problem}\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")
