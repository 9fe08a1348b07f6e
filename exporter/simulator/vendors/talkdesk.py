"""Talkdesk Explore report jobs (seed 002): an OAuth2 token, then the job by report type.

``POST oauth/token`` is the client-credentials grant (Basic client
credentials, a form body); ``GET data/reports/{type}/jobs/{id}`` needs its
bearer token and answers 200 while the job runs (created, processing,
uploading, sending), then a redirect with ``Location`` once it is done.
Errors carry ``code``, ``message``, ``description`` and ``fields``.  A deleted
job is still reported (``deleted``), never a 404.

A job's :class:`TalkdeskOptions` give its report type, its name and its
finished answer: the redirect is ``300`` to ``/data/reports/{type}/files/{id}``,
as on the Explore reference page, unless its ``redirect`` is ``302``, ``303``
(the Reporting API's ``303 See Other``) or another code of :data:`REDIRECTS`:
then it is that code, to the report's file at a signed-looking URL
(``…/files/{id}?X-Amz-…&X-Amz-Signature=…``).  ``GET`` on that URL answers
the file, so a client that followed the redirect would show in the request log.
The secrets are :class:`TalkdeskCredentials`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from urllib.parse import parse_qs, quote

from aiohttp import web

from exporter.simulator.credentials import SimCredentials, VendorCredentials
from exporter.simulator.jobs import JobOptions, SimJob, check_text
from exporter.simulator.responses import error_response
from exporter.simulator.state import SimState
from exporter.simulator.vendors.base import (
    Answer,
    DemoJob,
    Params,
    Route,
    SimVendor,
    api_url,
    same,
    split_auth,
)

API = "report_job"
PREFIX = "talkdesk"
TOKEN_TARGET = f"{API}_token"  # the token endpoint, a fault target of its own
REPORT_TYPE = "calls"  # a job's report type unless it says otherwise, and the sources'
TIMEZONE = "Europe/Lisbon"
DEFAULT_SCOPE = "data-reports:read"
FORM = "application/x-www-form-urlencoded"
FINAL = {"completed": "done", "failed": "failed", "canceled": "canceled", "deleted": "deleted"}
UPLOADING_FROM = 0.9  # ``uploading`` from 90% of the items processed, then
SENDING_FROM = 0.95  # ``sending`` (the Reporting API's notification email) for the last 5%
LOCATED = 300  # the Explore reference page's answer for a finished report
# The other codes a job's ``redirect`` can ask for: ones an HTTP client that follows
# redirects would follow.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
SIGNATURE = "X-Amz-Signature"
REPORT_FILE = (
    "call_id,type,start_at,end_at\nCA8699f8,inbound,2016-01-29 10:22:02,2016-01-29 10:22:14\n"
)


@dataclass(frozen=True, slots=True)
class TalkdeskCredentials(VendorCredentials):
    """The OAuth2 client Talkdesk's token endpoint lets in; ``token_ttl``: a token's life (s)."""

    api: ClassVar[str] = API
    client_id: str = "td-demo-client"
    client_secret: str = "td-demo-secret"  # noqa: S105 - a documented demo secret
    token_ttl: int = 3600


@dataclass(frozen=True, slots=True)
class TalkdeskOptions(JobOptions):
    """A report job's type (its path's ``{type}``), its name, and its finished answer's code."""

    report_type: str = REPORT_TYPE
    name: str = "Calls report"
    redirect: int = LOCATED

    def __post_init__(self) -> None:
        check_text("report_type", self.report_type)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {self.name!r}")
        codes = sorted({LOCATED, *REDIRECTS})
        if (
            not isinstance(self.redirect, int)
            or isinstance(self.redirect, bool)
            or self.redirect not in codes
        ):
            raise ValueError(
                f"redirect must be one of {', '.join(map(str, codes))}, got {self.redirect!r}"
            )


def error_body(code: str, message: str) -> dict[str, object]:
    """Return Talkdesk's error body (the token endpoint's too)."""
    return {"code": code, "message": message, "description": message, "fields": []}


def status(job: SimJob, now: float) -> str:
    """Return the lower-case status at ``now``: created, processing, uploading, sending, final."""
    if job.is_finished(now):
        return FINAL[job.final_outcome]
    if now < job.created:
        return "created"
    processed = job.processed(now)
    if processed >= math.ceil(job.total * SENDING_FROM):
        return "sending"
    if processed >= math.ceil(job.total * UPLOADING_FROM):
        return "uploading"
    return "processing"


def signature(job: SimJob) -> str:
    """Return the report file's fake S3 signature: stable, so tests can name it exactly."""
    report_type = TalkdeskOptions.of(job).report_type
    return hashlib.sha256(f"{report_type}/{job.id}".encode()).hexdigest()


def file_url(job: SimJob, base_url: str) -> str:
    """Return the signed URL of a finished report's file (on the simulator itself)."""
    kind, ident = quote(TalkdeskOptions.of(job).report_type, safe=""), quote(job.id, safe="")
    return (
        f"{base_url}data/reports/{kind}/files/{ident}"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300"
        f"&{SIGNATURE}={signature(job)}"
    )


def source(base_url: str, creds: SimCredentials) -> dict[str, object]:
    """Return the source's config keys: the report type and the OAuth2 client."""
    own = creds.of(TalkdeskCredentials)
    return {
        "report_type": REPORT_TYPE,
        "oauth2": {
            "client_id": own.client_id,
            "client_secret": own.client_secret,
            "token_url": f"{base_url}oauth/token",
            "scopes": [DEFAULT_SCOPE],
        },
    }


async def token_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``POST oauth/token``: the client-credentials grant."""
    del params
    creds = sim.credentials.of(TalkdeskCredentials)
    basic = split_auth(request, "Basic") or ""
    try:
        client_id, _, secret = base64.b64decode(basic, validate=True).decode().partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8
        client_id = secret = ""
    if not (same(client_id, creds.client_id) and same(secret, creds.client_secret)):
        return error_response(
            401, "invalid_client", "Client authentication failed", body=error_body
        )
    if request.content_type != FORM:
        return error_response(
            400, "invalid_request", f"Content-Type must be {FORM}", body=error_body
        )
    form = parse_qs((await request.read()).decode("utf-8", "replace"), keep_blank_values=True)
    if form.get("grant_type") != ["client_credentials"]:
        return error_response(
            400, "unsupported_grant_type", "grant_type must be client_credentials", body=error_body
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


def new_id(rng: random.Random) -> str:
    """Return a report job ID as the benchmark shapes them: 24 hex digits."""
    return rng.randbytes(12).hex()


def report_job(job: SimJob, now: float, base_url: str) -> Answer:
    """Return the job body at ``now``: a redirect with ``Location`` once the report is done."""
    state = status(job, now)
    options = TalkdeskOptions.of(job)
    kind, ident = quote(options.report_type, safe=""), quote(job.id, safe="")
    base = f"{base_url}data/reports/{kind}"
    body: dict[str, object] = {
        "job": {
            "id": job.id,
            "name": options.name,
            "timezone": TIMEZONE,
            "status": state,
            "format": "csv",
            "timespan": _timespan(job.created),
        },
        "_links": {
            "self": {"href": f"{base}/jobs/{ident}"},
            "files": {"href": f"{base}/files/{ident}"},
        },
    }
    if state != "done":
        return Answer(200, body)
    code = options.redirect
    # 300 keeps the reference page's relative Location; the others send the signed URL.
    location = f"/data/reports/{kind}/files/{ident}" if code == LOCATED else file_url(job, base_url)
    return Answer(code, body, (("Location", location),))


def account(sim: SimState, request: web.Request) -> str | None:
    """Return the OAuth2 client a request's bearer token was issued to; ``None``: no such token.

    The simulator issues tokens to its one client only, so any of them names it.
    """
    token = split_auth(request, "Bearer")
    if token is None or token not in sim.tokens:
        return None
    return sim.credentials.of(TalkdeskCredentials).client_id


def _find(sim: SimState, params: Params) -> SimJob | None:
    """Return the job of the path's ID and report type, a deleted one too; ``None`` if none."""
    job = sim.find_job(API, params["id"])
    if job is None or TalkdeskOptions.of(job).report_type != params["type"]:
        return None
    return job


async def job_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET data/reports/{type}/jobs/{id}`` with a bearer token from :func:`token_handler`."""
    token = split_auth(request, "Bearer")
    expires = sim.tokens.get(token or "")
    if expires is None or sim.clock() >= expires:
        return error_response(
            401, "unauthorized", "Invalid or expired access token", body=error_body
        )
    job = _find(sim, params)
    if job is None:
        return error_response(404, "not_found", "Report job not found", body=error_body)
    return report_job(job, sim.clock(), api_url(sim, PREFIX)).response()


async def file_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET data/reports/{type}/files/{id}?…``: the report's file, for its signature only."""
    job = _find(sim, params)
    if job is None or status(job, sim.clock()) != "done":
        return error_response(404, "not_found", "Report file not found", body=error_body)
    if not same(request.query.get(SIGNATURE), signature(job)):
        return error_response(403, "forbidden", "Signature does not match", body=error_body)
    return web.Response(text=REPORT_FILE, content_type="text/csv")


VENDOR = SimVendor(
    api=API,
    prefix=PREFIX,
    routes=(
        Route(TOKEN_TARGET, "POST", ("oauth", "token"), token_handler),
        Route(API, "GET", ("data", "reports", "{type}", "jobs", "{id}"), job_handler),
        Route(API, "GET", ("data", "reports", "{type}", "files", "{id}"), file_handler),
    ),
    answer=report_job,
    source=source,
    credentials=TalkdeskCredentials,
    account=account,
    job_options=TalkdeskOptions,
    reports_deleted=True,
    bench_weight=0.2,
    new_id=new_id,
    demo_jobs=tuple(
        DemoJob(job_id, 100, rate, outcome=outcome, options=TalkdeskOptions(name=name))
        for job_id, rate, outcome, name in (
            ("td-calls-daily", 1.5, "completed", "Daily calls"),  # ~1 min
            ("td-calls-weekly", 0.25, "completed", "Weekly calls"),  # ~7 min
            ("td-calls-archive", 0.6, "failed", "Calls archive"),  # ~3 min
            ("td-calls-monthly", 0.17, "completed", "Monthly calls"),  # ~10 min
        )
    ),
    error_body=error_body,
)
