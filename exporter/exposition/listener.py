"""One aiohttp application served on one TCP address: started, and stopped, as a unit.

Both of the exporter's HTTP servers (``/metrics`` and the registration API)
run on a :class:`Listener`.  A start that fails, or is cancelled, part-way
undoes what it had started and re-raises what stopped it; a cleanup failing
meanwhile is logged and never hides that error (a cancellation above all).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Self

from aiohttp import web

from exporter.exposition.guard import (
    ErrorResponse,
    Guard,
    HttpLimits,
    HttpStats,
    Uncounted,
    plain_error,
)
from exporter.exposition.site import GuardedSite
from exporter.exposition.websecurity import WebSecurity

LOG = logging.getLogger(__name__)


class Listener:
    """Serves the application ``app()`` builds on ``host:port``; an async context manager.

    ``host`` ``""`` means every interface; ``port`` 0 picks a free port, and
    :attr:`port` is the bound one once started.  Each start builds a new
    application, so a listener may be started again after :meth:`close`.
    A server subclasses it and passes its own application factory.  Every
    connection goes through a :class:`~exporter.exposition.guard.Guard` named
    ``name`` (the ``listener`` label of the HTTP self-metrics) with ``limits``;
    requests aiohttp cannot parse are answered by ``error_response``.
    ``security`` (the ``--web.config.file``) brings TLS, basic auth outside
    ``open_paths`` and extra headers; ``bypass`` lets a request skip basic
    auth for another check of the app's own (the API's bearer token).
    """

    def __init__(
        self,
        app: Callable[[], web.Application],
        *,
        host: str,
        port: int,
        name: str = "metrics",
        limits: HttpLimits | None = None,
        stats: HttpStats | None = None,
        error_response: ErrorResponse = plain_error,
        security: WebSecurity | None = None,
        open_paths: frozenset[str] = frozenset(),
        bypass: Callable[[web.Request], bool] | None = None,
    ) -> None:
        self._make_app = app
        self._security = security
        self._open_paths = open_paths
        self._bypass = bypass
        self._error_response = error_response
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port = port
        self.guard = Guard(
            name,
            limits=limits or HttpLimits(),
            stats=stats or Uncounted(),
            error_response=error_response,
        )

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def serving(self) -> bool:
        """Whether a start succeeded and no close followed."""
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve; on any failure, nothing it started is left running."""
        if self._runner is not None:
            raise RuntimeError("already serving: close() first")
        app = self._make_app()
        security = self._security
        if security is not None:
            # Outermost, so a request waiting for its bcrypt check is not yet a busy one.
            security.prepare(
                app,
                open_paths=self._open_paths,
                error_response=self._error_response,
                bypass=self._bypass,
            )
        self.guard.prepare(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        try:
            await runner.setup()  # runs the app's startup hooks
            site = GuardedSite(
                runner,
                self._host or None,
                self._port,
                guard=self.guard,
                tls=None if security is None else security.tls,
            )
            await site.start()
        except BaseException:
            await _undo(runner)
            raise
        self._runner = runner
        # The first socket's port, as an unspecified host binds one socket per family.
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving and run the app's cleanup hooks; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def _undo(runner: web.AppRunner) -> None:
    """Clean up a runner whose start failed, without masking why it failed."""
    try:
        await runner.cleanup()  # safe after a part-way setup: it stops only what started
    except Exception:  # the start's own error (or cancellation) is what the caller must see
        LOG.exception("cleaning up after a failed start failed too")
