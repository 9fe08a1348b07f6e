"""The HTTP server: ``/metrics``, ``/healthz``, ``/readyz`` and a landing page.

It knows nothing of vendors or jobs: it is given a function that renders the
exposition and functions that say whether the exporter is healthy and ready.

A render function may return plain bytes, or (when it takes a keyword
``page``, which the server then passes as ``True``) a :class:`Page`: the
exposition as an ordered list of :class:`Piece` objects reused from scrape to
scrape plus a few fresh bytes.  A page is never joined: it is streamed piece
by piece, and its gzip form is one gzip member assembled from each piece's
cached raw-deflate bytes, so only what changed since the last scrape is
compressed again.  This works because raw-deflate streams flushed with
``Z_SYNC_FLUSH`` end on a byte boundary without a final block, so they can
be concatenated; only the CRC-32 is computed over the whole page each time.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import inspect
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence

from aiohttp import web

from exporter import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GZIP_LEVEL = 1
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
# gzip header: deflate, no flags, mtime 0, "fastest" extra flag, unknown OS (RFC 1952).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_DEFLATE_END = b"\x03\x00"  # an empty final block (fixed Huffman)


def deflate(data: bytes) -> bytes:
    """``data`` as raw deflate that ends on a byte boundary without a final block."""
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


class Piece:
    """A run of exposition bytes reused across scrapes; its deflate is made once, on demand.

    Immutable apart from that cache, so a page may be gzipped in a worker thread.
    """

    __slots__ = ("_deflated", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._deflated: bytes | None = None

    @property
    def compressed(self) -> bool:
        """Whether the deflate form is cached already."""
        return self._deflated is not None

    def deflated(self) -> bytes:
        """The raw-deflate form of :attr:`data` (computed on first use)."""
        z = self._deflated
        if z is None:
            z = self._deflated = deflate(self.data)
        return z


class Page:
    """One exposition as ordered parts: cached :class:`Piece` objects and fresh bytes."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: Sequence[Piece | bytes]) -> None:
        self.parts = parts
        self.size = sum(len(p) if isinstance(p, bytes) else len(p.data) for p in parts)

    def chunks(self) -> Iterator[bytes]:
        """The page's bytes in order, without joining them."""
        for part in self.parts:
            yield part if isinstance(part, bytes) else part.data

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks())

    def fresh_bytes(self) -> int:
        """How many bytes a gzip of this page must compress now (not cached yet)."""
        return sum(
            len(p) if isinstance(p, bytes) else 0 if p.compressed else len(p.data)
            for p in self.parts
        )

    def gzip(self) -> list[bytes]:
        """The page as one gzip member, in pieces; fresh bytes are compressed here."""
        out = [_GZIP_HEADER]
        crc = 0
        fresh: list[bytes] = []
        for part in (*self.parts, None):
            if isinstance(part, bytes):
                fresh.append(part)
                continue
            if fresh:
                data = b"".join(fresh)
                fresh.clear()
                out.append(deflate(data))
                crc = zlib.crc32(data, crc)
            if part is not None and part.data:
                out.append(part.deflated())
                crc = zlib.crc32(part.data, crc)  # releases the GIL for all but small pieces
        out += (_DEFLATE_END, struct.pack("<II", crc, self.size & 0xFFFFFFFF))
        return out


def _coalesce(chunks: Iterator[bytes]) -> Iterator[bytes]:
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


def _slices(body: bytes) -> Iterator[bytes | memoryview]:
    view = memoryview(body)
    for start in range(0, len(body), WRITE_SIZE):
        yield view[start : start + WRITE_SIZE]


def _takes_page(render: Callable[..., object]) -> bool:
    try:
        return "page" in inspect.signature(render).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


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
        reload: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self._reload = reload
        self._render = render
        self._paged = _takes_page(render)
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
        app.router.add_post("/-/reload", self._reload_config)
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

    def _page(self) -> Page | bytes:
        if self._paged:
            page: Page | bytes = self._render(page=True)  # type: ignore[call-arg]
            return page
        return self._render()

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body = self._page()
        headers = {"Content-Type": CONTENT_TYPE}
        if request.method == "HEAD":
            return web.Response(body=bytes(body), headers=headers)
        chunks: Iterator[bytes | memoryview]
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            gz = await self._gzip(body)
            size = sum(map(len, gz))
            chunks = _coalesce(iter(gz))
        elif isinstance(body, Page):
            size, chunks = body.size, _coalesce(body.chunks())
        else:
            size, chunks = len(body), _slices(body)
        resp = web.StreamResponse(headers=headers)
        resp.content_length = size
        await resp.prepare(request)
        for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    @staticmethod
    async def _gzip(body: Page | bytes) -> list[bytes]:
        """Compress in a worker thread when it is worth it: zlib releases the GIL."""
        if isinstance(body, Page):
            if body.fresh_bytes() < THREAD_MIN:
                return body.gzip()
            return await asyncio.to_thread(body.gzip)
        if len(body) < THREAD_MIN:
            return [gzip.compress(body, GZIP_LEVEL, mtime=0)]
        return [await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL, mtime=0)]

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
