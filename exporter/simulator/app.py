"""The :class:`Simulator`: one aiohttp server answering as every vendor API it has.

The routes come from :data:`exporter.simulator.vendors.ROUTES`, one vendor
module each.  Every request goes through one catch-all handler that splits
``request.raw_path`` itself and unquotes each segment: aiohttp's own
``request.path`` (and its router) decodes ``%2F`` first, which would turn the
single ID ``a%2F..%2Fb`` into three segments.  A raw path with extra
segments, empty segments or bare ``.``/``..`` segments is a 404.

Like a vendor, it can hold each account to a request budget (off unless
given a :class:`~exporter.simulator.ratelimit.RateLimiter`, or set with
``PUT /_sim/rate_limit``): each API's module names the account a request's
credentials belong to (:data:`~exporter.simulator.vendors.ACCOUNTS`), and a
request beyond its account's budget is a 429 with ``Retry-After``, in the
vendor's error shape, before any fault and without touching any job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from urllib.parse import unquote

from aiohttp import web

from exporter.simulator import control
from exporter.simulator.credentials import SimCredentials
from exporter.simulator.ratelimit import RateLimiter, retry_after
from exporter.simulator.responses import error_response, fault_response, plain_error
from exporter.simulator.state import RecordedRequest, SimState
from exporter.simulator.vendors import (
    ACCOUNTS,
    APIS,
    ERROR_BODIES,
    FAULT_TARGETS,
    JOB_OPTIONS,
    PREFIXES,
    ROUTES,
    SPARED_TARGETS,
    Route,
    vendor_url,
)

API_BY_PREFIX = {prefix: api for api, prefix in PREFIXES.items()}
CLIENT_GONE = 499  # recorded status of a request whose client left before the answer
SHUTDOWN_TIMEOUT = 0.5


def split_path(raw_path: str) -> list[str] | None:
    """Split a raw path (query ignored) into unquoted segments; ``None`` if it is not one."""
    path = raw_path.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):
        return None
    raw = path[1:].split("/")
    if any(segment in ("", ".", "..") for segment in raw):
        return None
    return [unquote(segment) for segment in raw]


class Simulator(SimState):
    """A local HTTP server that behaves like the vendor APIs, for tests and the demo."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        credentials: SimCredentials | None = None,
        errors_page_size: int = 2,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(
            clock=clock,
            credentials=credentials or SimCredentials(),
            errors_page_size=errors_page_size,
            apis=APIS,
            fault_targets=FAULT_TARGETS,
            spared_targets=SPARED_TARGETS,
            job_options=JOB_OPTIONS,
            rate_limiter=rate_limiter,
        )
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`url`)."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        if host in ("", "0.0.0.0", "::"):  # noqa: S104 - naming wildcards, not binding to them
            bound_host = "127.0.0.1"
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{shown}:{bound_port}/"

    async def close(self) -> None:
        """Stop serving; calling it again does nothing."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def base_url(self, api: str) -> str:
        """Return the base URL of ``api``, e.g. ``http://127.0.0.1:PORT/evocalize/``."""
        if api not in PREFIXES:
            raise ValueError(f"unknown api {api!r}; expected one of {', '.join(APIS)}")
        return vendor_url(self.url, api)

    # -- serving -----------------------------------------------------------------

    def _match(
        self, method: str, segments: list[str]
    ) -> tuple[Route | None, dict[str, str], list[str]]:
        """Find the route for a request; also return the methods its path allows."""
        allowed: list[str] = []
        for route in ROUTES:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method:
                return route, params, allowed
            allowed.append(route.method)
        return None, {}, allowed

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Answer any request: control endpoints, vendor endpoints, or a 404."""
        segments = split_path(request.raw_path)
        if segments and segments[0] == "_sim":
            return await control.handle(self, request, segments[1:])
        route, params, allowed = self._match(request.method, segments or [])
        api = route.target if route else API_BY_PREFIX.get(segments[0] if segments else "")
        record = RecordedRequest(
            time=self.clock(),
            monotonic=time.monotonic(),
            method=request.method,
            raw_path=request.raw_path,
            api=api,
            job_id=params.get("id"),
            status=0,
        )
        self.requests.append(record)
        status = CLIENT_GONE
        try:
            response = await self._answer(request, route, params, allowed, api)
            status = response.status
            return response
        finally:
            self._settle(record, status)

    async def _answer(
        self,
        request: web.Request,
        route: Route | None,
        params: dict[str, str],
        allowed: list[str],
        api: str | None,
    ) -> web.StreamResponse:
        """Answer a vendor request, applying the rate limit, then any fault for its API."""
        body = ERROR_BODIES.get(api or "", plain_error)
        if route is None:
            if allowed:
                return error_response(405, body=body, headers={"Allow": ", ".join(allowed)})
            return error_response(404, body=body)
        account_of = ACCOUNTS.get(route.target)  # a token endpoint has no budget here
        wait = None if account_of is None else self.admit(route.target, account_of(self, request))
        if wait is not None:
            # Refused at the door: no fault's count is used up, no handler runs.
            return error_response(429, body=body, headers={"Retry-After": retry_after(wait)})
        fault = self.take_fault(route.target)
        if fault is None:
            return await route.handler(self, request, params)
        return await fault_response(
            fault, body, request, lambda: route.handler(self, request, params)
        )

    def _settle(self, record: RecordedRequest, status: int) -> None:
        """Replace the in-flight record with one carrying the status answered."""
        for index in range(len(self.requests) - 1, -1, -1):
            if self.requests[index] is record:
                self.requests[index] = replace(record, status=status)
                return
