"""The three vendor APIs: routes, authentication and the documented bodies (seeds 000-002)."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote

from aiohttp import web

from exporter.simulator.faults import TOKEN_TARGET
from exporter.simulator.jobs import EVOCALIZE, FULLSTORY, TALKDESK, SimJob, rfc3339
from exporter.simulator.responses import error_response

if TYPE_CHECKING:
    from exporter.simulator.app import Simulator

Params = dict[str, str]
Handler = Callable[["Simulator", web.Request, Params], Awaitable[web.StreamResponse]]
TIMEZONE = "Europe/Lisbon"
DEFAULT_SCOPE = "data-reports:read"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: ``{name}`` segments of ``pattern`` are path parameters."""

    target: str
    method: str
    pattern: tuple[str, ...]
    handler: Handler

    def match(self, segments: list[str]) -> Params | None:
        """Return the path parameters if ``segments`` fit the pattern, else ``None``."""
        if len(segments) != len(self.pattern):
            return None
        params: Params = {}
        for want, got in zip(self.pattern, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def _split_auth(request: web.Request, scheme: str) -> str | None:
    """Return the credentials after ``scheme`` in ``Authorization``, if that scheme is used."""
    given, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if given.lower() == scheme.lower() else None


def _same(given: str | None, want: str) -> bool:
    """Compare a secret in constant time; a missing value never matches."""
    if given is None:
        return False
    # Header values may carry undecodable bytes (as surrogates): compare them as bytes.
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), want.encode())


def _job(sim: Simulator, api: str, params: Params) -> SimJob | None:
    """Return the job named by the path, unless it is unknown or gone."""
    job = sim.find_job(api, params["id"])
    if job is None or job.is_gone(sim.clock()):
        return None
    return job


def _evocalize_job(sim: Simulator, request: web.Request, params: Params) -> SimJob | web.Response:
    """Check Evocalize's key headers and find the report, or answer 401/404."""
    creds = sim.credentials
    if not (
        _same(request.headers.get("X-Evocalize-Client-Key"), creds.evocalize_key)
        and _same(request.headers.get("X-Evocalize-Client-Key-Id"), creds.evocalize_key_id)
    ):
        return error_response(EVOCALIZE, 401)
    job = _job(sim, EVOCALIZE, params)
    if job is None:
        return error_response(EVOCALIZE, 404, message="Report not found")
    return job


async def evocalize_report(sim: Simulator, request: web.Request, params: Params) -> web.Response:
    """``GET management/v1/items/report/{reportId}``."""
    job = _evocalize_job(sim, request, params)
    if not isinstance(job, SimJob):
        return job
    now = sim.clock()
    done, failed = job.processed(now), job.errors(now)
    data = {
        "totalItems": job.total,
        "remainingItems": job.total - done,
        "completedItems": done,
        "successfulItems": done - failed,
        "errorItems": failed,
        "isCompleted": job.is_finished(now),
    }
    return web.json_response({"data": data})


def page_token(offset: int) -> str:
    """Encode an errors page offset as an opaque token."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _read_token(token: str) -> int | None:
    """Decode a token from :func:`page_token`, or ``None`` if it is not one."""
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    if prefix != "offset" or not number.isdigit():
        return None
    return int(number)


async def evocalize_errors(sim: Simulator, request: web.Request, params: Params) -> web.Response:
    """``GET management/v1/items/report/{reportId}/errors[?pageToken=...]``."""
    job = _evocalize_job(sim, request, params)
    if not isinstance(job, SimJob):
        return job
    query = parse_qs(request.raw_path.partition("?")[2], keep_blank_values=True)
    token = (query.get("pageToken") or [""])[0]
    offset = 0
    if token:
        decoded = _read_token(token)
        if decoded is None:
            return error_response(EVOCALIZE, 400, "invalid_page_token", "Invalid page token")
        offset = decoded
    now, size = sim.clock(), sim.errors_page_size
    body: dict[str, object] = {"data": job.error_items(now, offset, offset + size)}
    if offset + size < job.errors(now):
        body["nextPageToken"] = page_token(offset + size)
    if offset > 0:
        body["previousPageToken"] = page_token(max(0, offset - size))
    return web.json_response(body)


async def fullstory_job(sim: Simulator, request: web.Request, params: Params) -> web.Response:
    """``GET v2/events/batch/{id}``."""
    if not _same(_split_auth(request, "Basic"), sim.credentials.fullstory_api_key):
        return error_response(FULLSTORY, 401)
    job = _job(sim, FULLSTORY, params)
    if job is None:
        return error_response(FULLSTORY, 404)
    now = sim.clock()
    status, failed = job.fullstory_status(now), job.errors(now)
    info: dict[str, object] = {"id": job.id, "status": status, "created": rfc3339(job.created)}
    finished = job.finished_at(now)
    if finished is not None:
        info["finished"] = rfc3339(finished)
    body: dict[str, object] = {"imports": job.processed(now) - failed}
    if status == "FAILED":
        body["errors"] = failed
    body["job"] = info
    return web.json_response(body)


async def talkdesk_token(sim: Simulator, request: web.Request, params: Params) -> web.Response:
    """``POST oauth/token``: the client-credentials grant."""
    del params
    creds = sim.credentials
    basic = _split_auth(request, "Basic") or ""
    try:
        client_id, _, secret = base64.b64decode(basic, validate=True).decode().partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8
        client_id = secret = ""
    if not (
        _same(client_id, creds.talkdesk_client_id) and _same(secret, creds.talkdesk_client_secret)
    ):
        return error_response(TOKEN_TARGET, 401, "invalid_client", "Client authentication failed")
    if request.content_type != FORM:
        return error_response(TOKEN_TARGET, 400, "invalid_request", f"Content-Type must be {FORM}")
    form = parse_qs((await request.read()).decode("utf-8", "replace"), keep_blank_values=True)
    if form.get("grant_type") != ["client_credentials"]:
        return error_response(
            TOKEN_TARGET, 400, "unsupported_grant_type", "grant_type must be client_credentials"
        )
    scope = (form.get("scope") or [DEFAULT_SCOPE])[0] or DEFAULT_SCOPE
    token = secrets.token_urlsafe(32)
    sim.tokens[token] = sim.clock() + creds.token_ttl
    sim.token_requests += 1
    return web.json_response(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": creds.token_ttl,
            "scope": scope,
        }
    )


def _timespan(created: float) -> dict[str, str]:
    """Return the report's period: the (UTC) day before the job was created."""
    day = datetime.fromtimestamp(created, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%S"
    return {"from": (day - timedelta(days=1)).strftime(fmt), "to": day.strftime(fmt)}


async def talkdesk_job(sim: Simulator, request: web.Request, params: Params) -> web.Response:
    """``GET data/reports/{type}/jobs/{id}``: 200 while running, 300 + ``Location`` when done."""
    token = _split_auth(request, "Bearer")
    expires = sim.tokens.get(token or "")
    if expires is None or sim.clock() >= expires:
        return error_response(TALKDESK, 401, "unauthorized", "Invalid or expired access token")
    job = _job(sim, TALKDESK, params)
    if job is None or job.report_type != params["type"]:
        return error_response(TALKDESK, 404, "not_found", "Report job not found")
    status = job.talkdesk_status(sim.clock())
    kind, ident = quote(job.report_type, safe=""), quote(job.id, safe="")
    base = f"{sim.url}talkdesk/data/reports/{kind}"
    body = {
        "job": {
            "id": job.id,
            "name": job.name,
            "timezone": TIMEZONE,
            "status": status,
            "format": "csv",
            "timespan": _timespan(job.created),
        },
        "_links": {
            "self": {"href": f"{base}/jobs/{ident}"},
            "files": {"href": f"{base}/files/{ident}"},
        },
    }
    if status == "done":
        location = {"Location": f"/data/reports/{kind}/files/{ident}"}
        return web.json_response(body, status=300, headers=location)
    return web.json_response(body)


EVOCALIZE_REPORT = ("evocalize", "management", "v1", "items", "report", "{id}")
ROUTES = (
    Route(EVOCALIZE, "GET", EVOCALIZE_REPORT, evocalize_report),
    Route(EVOCALIZE, "GET", (*EVOCALIZE_REPORT, "errors"), evocalize_errors),
    Route(FULLSTORY, "GET", ("fullstory", "v2", "events", "batch", "{id}"), fullstory_job),
    Route(TOKEN_TARGET, "POST", ("talkdesk", "oauth", "token"), talkdesk_token),
    Route(TALKDESK, "GET", ("talkdesk", "data", "reports", "{type}", "jobs", "{id}"), talkdesk_job),
)
