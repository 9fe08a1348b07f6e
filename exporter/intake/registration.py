"""The registration API: an app tells its sidecar which jobs to watch.

Off unless ``--api.listen-address`` is given, on a listener of its own
(loopback suits a sidecar, which shares the pod's network with the app)::

    PUT    /api/v1/sources/{source}/jobs/{id}   body {"labels": {...}} optional: 201 new, 200 known
                                                (421 when sharded alone and the job is another
                                                shard's; in a sharded fleet stored in Redis for
                                                its shard, 503 when Redis cannot take it)
    DELETE /api/v1/sources/{source}/jobs/{id}   204
    GET    /api/v1/jobs                         every watched job and its state

Errors are JSON ``{"error": "..."}``, those of requests too broken to route
(an oversized request line or header) included.  It knows sources and jobs, never vendors.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import unquote

from aiohttp import web

from exporter.config import Secret, job_id_problem, label_name_problem
from exporter.exposition.guard import HttpLimits, HttpStats
from exporter.exposition.listener import Listener
from exporter.exposition.websecurity import WEB_USER, WebSecurity
from exporter.intake.fleetjobs import FleetJobs, RegistryUnavailable
from exporter.intake.watchlist import Misdirected
from exporter.polling.auth import AuthError, SecretCache
from exporter.state.statefile import StorageError

MAX_BODY = 64 * 1024
MAX_LABELS = 32
MAX_LABEL_VALUE = 1024


class JobRegistry(Protocol):
    """What the API changes: the exporter's set of watched jobs."""

    def watch(self, source: str, job_id: str, labels: tuple[tuple[str, str], ...]) -> bool:
        """Watch a job; ``True`` if new.

        KeyError: unknown source; OverflowError: full; :class:`Misdirected`: another shard's.
        """
        ...

    def unwatch(self, source: str, job_id: str, only: str | None = None) -> bool:
        """Stop watching a job (of origin ``only``, if given); ``True`` if it was watched."""
        ...

    def origin_of(self, source: str, job_id: str) -> str | None:
        """Where a watched job came from (``config``, ``api``, ``dir``); ``None`` if unwatched."""
        ...

    def jobs(self) -> list[dict[str, object]]:
        """Every watched job and its state, JSON-ready."""
        ...


class ApiError(Exception):
    """An answer other than success: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> web.Response:
    resp = web.json_response({"error": message}, status=status)
    if status == 408:  # the rest of a body that did not come may still: start afresh
        resp.force_close()
    return resp


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``""``, every interface, is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unprotected(host: str, port: int, *, token: bool, basic_auth: bool) -> str | None:
    """Why the API must not start on ``host`` as it is, or ``None`` when it may."""
    if token or basic_auth or is_loopback(host):
        return None
    where = f"{host or '*'}:{port}"
    return (
        f"refusing to serve the registration API on {where} without authentication: anyone "
        "who can reach it could make the exporter poll any job ID against your vendor account "
        "and delete registrations; listen on loopback (--api.listen-address=127.0.0.1:PORT), "
        "or require a token (--api.token-file) or basic auth (basic_auth_users in "
        "--web.config.file)"
    )


def parse_job_path(raw_path: str) -> tuple[str, str]:
    """``(source, job_id)`` from a raw ``/api/v1/sources/S/jobs/ID`` path, IDs percent-decoded.

    The raw path is split before decoding, so ``a%2F..%2Fb`` is one ID.
    """
    parts = raw_path.partition("?")[0].split("/")
    if len(parts) != 7 or parts[:4] != ["", "api", "v1", "sources"] or parts[5] != "jobs":
        raise ApiError(404, "no such endpoint")
    source, job_id = unquote(parts[4]), unquote(parts[6])
    problem = job_id_problem(job_id)
    if problem is not None:
        raise ApiError(400, problem)
    return source, job_id


def parse_labels(body: bytes) -> tuple[tuple[str, str], ...]:
    """The optional ``{"labels": {...}}`` body, validated like the config's labels."""
    if not body.strip():
        return ()
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(doc, dict) or set(doc) - {"labels"}:
        raise ApiError(400, 'body must be {"labels": {...}}')
    labels = doc.get("labels") or {}
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise ApiError(400, f"labels must be an object of at most {MAX_LABELS} entries")
    out: list[tuple[str, str]] = []
    for name, value in sorted(labels.items()):
        problem = label_name_problem(name)
        if problem is not None:
            raise ApiError(400, problem)
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            raise ApiError(400, f"label {name}: value must be a string of at most 1024 characters")
        out.append((name, value))
    return tuple(out)


class JobsApiServer(Listener):
    """The registration API on its own listener; an async context manager.

    ``monotonic`` times the token file's re-checks (at most one a second).
    ``persist`` writes the watched jobs' pending changes to disk: a ``PUT`` or
    ``DELETE`` is answered after it returns, so an acknowledged change survives a
    SIGKILL (concurrent changes share one write: the store writes one batch at a time).
    """

    def __init__(
        self,
        registry: JobRegistry,
        *,
        host: str,
        port: int,
        monotonic: Callable[[], float],
        token_file: str | None = None,
        limits: HttpLimits | None = None,
        stats: HttpStats | None = None,
        security: WebSecurity | None = None,
        shared: FleetJobs | None = None,
        persist: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._registry = registry
        self._persist = persist
        self._shared = shared
        self._token = Secret(file=token_file) if token_file else None
        self._secrets = SecretCache(monotonic)
        super().__init__(
            self._app,
            host=host,
            port=port,
            name="api",
            limits=limits,
            stats=stats,
            error_response=_error,
            security=security,
            bypass=self._bearer,
        )

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        # One catch-all: routes match the decoded path, and IDs must be split on the raw one.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._dispatch)
        return app

    def _bearer(self, request: web.Request) -> bool:
        """A bearer token is checked here, not by basic auth: either lets a request in."""
        sent = request.headers.get("Authorization", "")
        return self._token is not None and sent[:7].lower() == "bearer "

    def _check_token(self, request: web.Request) -> None:
        if self._token is None or WEB_USER in request:  # no token, or basic auth passed
            return
        try:
            expected = self._secrets.get(self._token)
        except AuthError:
            raise ApiError(503, "the API token file cannot be read") from None
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        right = scheme.lower() == "bearer" and hmac.compare_digest(sent.encode(), expected.encode())
        if not expected or not right:
            raise ApiError(401, "missing or wrong bearer token")

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.raw_path.partition("?")[0] == "/api/v1/jobs":
            return await self._list(request)
        return await self._job(request)

    async def _list(self, request: web.Request) -> web.Response:
        try:
            self._check_token(request)
        except ApiError as exc:
            return _error(exc.status, str(exc))
        if request.method != "GET":
            return _error(405, "use GET")
        jobs = self._registry.jobs()
        if self._shared is not None:
            jobs += self._shared.others()
        return web.json_response({"jobs": jobs})

    async def _job(self, request: web.Request) -> web.Response:
        try:
            self._check_token(request)
            return await self._change(request, *parse_job_path(request.raw_path))
        except ApiError as exc:
            return _error(exc.status, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body larger than {MAX_BODY} bytes")

    async def _watch(self, source: str, job_id: str, labels: tuple[tuple[str, str], ...]) -> bool:
        """Watch here or, in a sharded fleet, store it for the shard it falls to."""
        shared = self._shared
        if shared is None:
            return self._registry.watch(source, job_id, labels)
        if not shared.has_source(source):
            raise KeyError(source)
        return await shared.add(source, job_id, labels)

    async def _unwatch(self, source: str, job_id: str) -> bool:
        """Stop watching a registered job here or, in a sharded fleet, everywhere."""
        if self._shared is None:
            return self._registry.unwatch(source, job_id, only="api")
        return await self._shared.remove(source, job_id)

    async def _saved(self) -> None:
        """Wait for the change just made to reach the state file (a sharded fleet's is in Redis)."""
        if self._persist is None or self._shared is not None:
            return
        try:
            await self._persist()
        except StorageError as exc:
            # Made, and kept in memory, but not promised: a retry tries the write again.
            raise ApiError(503, f"the change is made but not saved, retry: {exc}") from None

    async def _body(self, request: web.Request) -> bytes:
        """The request's body, which must arrive within the body timeout (a slow sender)."""
        seconds = self.guard.limits.body_timeout
        try:
            async with asyncio.timeout(seconds):
                return await request.read()
        except TimeoutError:
            raise ApiError(408, f"body not received within {seconds:g}s") from None

    async def _change(self, request: web.Request, source: str, job_id: str) -> web.Response:
        if request.method == "PUT":
            labels = parse_labels(await self._body(request))
            try:
                new = await self._watch(source, job_id, labels)
            except KeyError:
                raise ApiError(404, f"unknown source {source!r}") from None
            except OverflowError as exc:
                raise ApiError(507, str(exc)) from None
            except Misdirected as exc:
                raise ApiError(421, str(exc)) from None
            except RegistryUnavailable as exc:  # not acknowledged, so nothing is lost
                raise ApiError(503, str(exc)) from None
            await self._saved()
            body = {"source": source, "id": job_id, "created": new}
            return web.json_response(body, status=201 if new else 200)
        if request.method == "DELETE":
            origin = self._registry.origin_of(source, job_id)
            # The config and the watch dir own their jobs: deleting one here would only
            # last until they list it again.
            if origin is not None and origin != "api":
                raise ApiError(409, f"job comes from the {origin}, not the API; remove it there")
            gone = await self._unwatch(source, job_id)
            # A 404 too is said once on disk: a retry of a DELETE answered 503 (made, not
            # saved) meets no job, and must not leave the job to come back after a restart.
            await self._saved()
            if not gone:
                raise ApiError(404, "job is not watched")
            return web.Response(status=204)
        raise ApiError(405, "use PUT or DELETE")
