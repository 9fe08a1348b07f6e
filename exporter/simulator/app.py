"""The :class:`Simulator`: one aiohttp server answering as all three vendor APIs.

Every request goes through one catch-all handler that splits
``request.raw_path`` itself and unquotes each segment: aiohttp's own
``request.path`` (and its router) decodes ``%2F`` first, which would turn the
single ID ``a%2F..%2Fb`` into three segments.  A raw path with extra
segments, empty segments or bare ``.``/``..`` segments is a 404.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import TracebackType
from urllib.parse import unquote

from aiohttp import web

from exporter.simulator import control
from exporter.simulator.faults import Fault, FaultTable
from exporter.simulator.jobs import APIS, PREFIXES, SimJob
from exporter.simulator.responses import error_response, fault_response
from exporter.simulator.vendors import ROUTES, Route

API_BY_PREFIX = {prefix: api for api, prefix in PREFIXES.items()}
CLIENT_GONE = 499  # recorded status of a request whose client left before the answer
SHUTDOWN_TIMEOUT = 0.5


@dataclass(frozen=True, slots=True)
class SimCredentials:
    """The secrets each simulated API accepts; ``token_ttl`` is Talkdesk's token life (s)."""

    evocalize_key: str = "evo-demo-key"
    evocalize_key_id: str = "evo-demo-id"
    fullstory_api_key: str = "fs-demo-key"
    talkdesk_client_id: str = "td-demo-client"
    talkdesk_client_secret: str = "td-demo-secret"  # noqa: S105 - a documented demo secret
    token_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received; ``status`` is 0 while in flight, 499 if the client left."""

    time: float
    monotonic: float
    method: str
    raw_path: str
    api: str | None
    job_id: str | None
    status: int


def split_path(raw_path: str) -> list[str] | None:
    """Split a raw path (query ignored) into unquoted segments; ``None`` if it is not one."""
    path = raw_path.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):
        return None
    raw = path[1:].split("/")
    if any(segment in ("", ".", "..") for segment in raw):
        return None
    return [unquote(segment) for segment in raw]


class Simulator:
    """A local HTTP server that behaves like the three vendor APIs, for tests and the demo."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        credentials: SimCredentials | None = None,
        errors_page_size: int = 2,
    ) -> None:
        if errors_page_size < 1:
            raise ValueError("errors_page_size must be at least 1")
        self.clock = clock
        self.credentials = credentials or SimCredentials()
        self.errors_page_size = errors_page_size
        self.requests: list[RecordedRequest] = []
        self.token_requests = 0
        self.tokens: dict[str, float] = {}
        self._jobs: dict[tuple[str, str], SimJob] = {}
        self._faults = FaultTable()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

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

    @property
    def url(self) -> str:
        """Return the server's root URL with a trailing slash (only after :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("simulator not started")
        return self._url

    def base_url(self, api: str) -> str:
        """Return the base URL of ``api``, e.g. ``http://127.0.0.1:PORT/evocalize/``."""
        if api not in PREFIXES:
            raise ValueError(f"unknown api {api!r}; expected one of {', '.join(APIS)}")
        return f"{self.url}{PREFIXES[api]}/"

    # -- jobs and faults ---------------------------------------------------------

    def add_job(
        self,
        api: str,
        job_id: str,
        *,
        total: int = 100,
        rate: float = 10.0,
        error_every: int = 0,
        outcome: str = "completed",
        start_delay: float = 0.0,
        report_type: str = "calls",
        name: str = "Calls report",
    ) -> SimJob:
        """Add (or replace) a job that starts ``start_delay`` seconds from now by the clock."""
        if not isinstance(start_delay, int | float) or isinstance(start_delay, bool):
            raise TypeError(f"start_delay must be a number, got {start_delay!r}")
        job = SimJob(
            api=api,
            id=job_id,
            created=self.clock() + start_delay,
            total=total,
            rate=rate,
            error_every=error_every,
            outcome=outcome,
            report_type=report_type,
            name=name,
            clock=self.clock,
        )
        self._jobs[api, job_id] = job
        return job

    def find_job(self, api: str, job_id: str) -> SimJob | None:
        """Return the job ``job_id`` of ``api``, or ``None``."""
        return self._jobs.get((api, job_id))

    def finish_job(self, api: str, job_id: str, outcome: str | None = None) -> SimJob:
        """End a job now (by the clock); ``KeyError`` if there is no such job."""
        job = self._jobs[api, job_id]
        job.finish(outcome, at=self.clock())
        return job

    def remove_job(self, api: str, job_id: str) -> None:
        """Forget a job: later requests for it get 404; ``KeyError`` if there is none."""
        del self._jobs[api, job_id]

    def set_fault(self, api: str, fault: Fault) -> None:
        """Make requests to ``api`` (``*``: every API, not the token endpoint) fail."""
        self._faults.set(api, fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

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
        """Answer a vendor request, applying any fault in force for its API."""
        if route is None:
            if allowed:
                return error_response(api, 405, headers={"Allow": ", ".join(allowed)})
            return error_response(api, 404)
        fault = self._faults.take(route.target)
        if fault is None:
            return await route.handler(self, request, params)
        return await fault_response(
            fault, route.target, request, lambda: route.handler(self, request, params)
        )

    def _settle(self, record: RecordedRequest, status: int) -> None:
        """Replace the in-flight record with one carrying the status answered."""
        for index in range(len(self.requests) - 1, -1, -1):
            if self.requests[index] is record:
                self.requests[index] = replace(record, status=status)
                return
