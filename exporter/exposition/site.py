"""The listening socket of a guarded listener: plain HTTP, or TLS chosen per connection.

Choosing the TLS context for each new connection (``loop.start_tls``) instead
of once for the listening socket is what lets a rotated certificate or CA
reach new connections without a restart.  A handshake counts against the
listener's connection cap while it runs and gets no longer than a request's
headers (``--web.header-timeout``); the request's headers then get as long again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from exporter.exposition.guard import Guard, Refused
from exporter.exposition.websecurity import ServerTLS


class _TLSAccept(asyncio.Protocol):
    """A new connection while its TLS handshake runs, with the context in force right now."""

    def __init__(self, guard: Guard, server: web.Server, tls: ServerTLS) -> None:
        self._guard = guard
        self._server = server
        self._tls = tls
        self._early: list[bytes] = []  # bytes decrypted before the handler took over
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard.handshake(self._handshake(transport), transport)  # type: ignore[arg-type]  # TCP

    def data_received(self, data: bytes) -> None:
        self._early.append(data)

    def eof_received(self) -> bool | None:
        self._eof = True
        return None

    async def _handshake(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        try:
            secured = await asyncio.get_running_loop().start_tls(
                transport,  # type: ignore[arg-type]  # a server transport is a WriteTransport
                self,
                self._tls.context,
                server_side=True,
                ssl_handshake_timeout=guard.limits.header_timeout,
            )
        except (OSError, TimeoutError):  # ssl.SSLError and a reset are OSErrors
            guard.dropped("tls_handshake")
            transport.abort()  # type: ignore[attr-defined]  # a TCP transport has abort()
            return
        except asyncio.CancelledError:  # evicted at the cap, or the listener stops
            transport.abort()  # type: ignore[attr-defined]  # as above
            raise
        if secured is None:  # the client went while it ran
            return
        if not self._tls.allows(secured.get_extra_info("peercert")):
            guard.dropped("tls_client")
            secured.abort()
            return
        handler = guard.handler(self._server)  # its place was taken when it connected
        secured.set_protocol(handler)
        handler.connection_made(secured)
        for data in self._early:
            handler.data_received(data)
        if self._eof:
            handler.eof_received()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through a :class:`Guard`, over TLS when ``tls()`` says.

    ``tls`` is asked for each new connection, so TLS follows the web config as it changes.
    """

    __slots__ = ("_guard", "_host", "_port", "_tls")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        guard: Guard,
        tls: Callable[[], ServerTLS | None] | None = None,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard
        self._tls = tls

    @property
    def name(self) -> str:
        """How the site is shown (as aiohttp's own sites are)."""
        return f"http://{self._host or '*'}:{self._port}"

    async def start(self) -> None:
        """Bind and serve."""
        await super().start()
        server = self._runner.server
        if server is None:  # pragma: no cover - BaseSite refuses a runner without one
            raise RuntimeError("the runner is not set up")
        self._server = await asyncio.get_running_loop().create_server(
            lambda: self._accept(server), self._host, self._port, backlog=self._backlog
        )

    async def stop(self) -> None:
        """Stop listening and abandon handshakes still running."""
        await super().stop()
        await self._guard.close()

    def _accept(self, server: web.Server) -> asyncio.BaseProtocol:
        tls = self._tls() if self._tls is not None else None
        if tls is None:
            return self._guard.protocol(server)
        if not self._guard.admit():
            return Refused(self._guard)
        return _TLSAccept(self._guard, server, tls)
