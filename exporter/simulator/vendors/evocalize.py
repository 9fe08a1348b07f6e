"""Evocalize batch reports (seed 000): the report, its paged errors, the key headers.

``GET management/v1/items/report/{reportId}`` gives five item counts and
``isCompleted``; ``.../errors`` pages the failed items with opaque
``pageToken`` values.  Both need credentials, in either of the vendor's two
ways: the two ``X-Evocalize-Client-Key*`` headers, or a key ID, a timestamp
and a signature (checked here with its own SHA-256, not the exporter's code).
Errors come in the vendor's envelope, ``{"errors": [{"message", "code"}]}``.
The secrets are :class:`EvocalizeCredentials`; a job takes no options.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from exporter.simulator.credentials import SimCredentials, VendorCredentials
from exporter.simulator.jobs import SimJob
from exporter.simulator.responses import error_response
from exporter.simulator.state import SimState
from exporter.simulator.vendors.base import (
    Answer,
    DemoJob,
    Params,
    Route,
    SimVendor,
    api_url,
    live_job,
    page_offset,
    same,
)
from exporter.simulator.vendors.base import (
    page_token as base_page_token,
)

API = "evocalize_batch_report"
PREFIX = "evocalize"
REPORT = ("management", "v1", "items", "report", "{id}")
KEY_HEADER = "X-Evocalize-Client-Key"
KEY_ID_HEADER = "X-Evocalize-Client-Key-Id"
TIMESTAMP_HEADER = "X-Evocalize-Timestamp"
SIGNATURE_HEADER = "X-Evocalize-Signature"
CLIENT_KEY, SIGNATURE = "client_key", "signature"
MISSING = "EV_UNAUTHORIZED_MISSING_HEADERS"
EXPIRED = "EV_UNAUTHORIZED_EXPIRED_REQUEST"
# Not a vendor code: what the simulator answers, as EXPIRED, for a timestamp from the future.
AHEAD = "ahead"
AHEAD_MESSAGE = "Request timestamp is over 1 minute ahead: Unix seconds, not milliseconds."
# "Requests with a timestamp over a minute old will not be accepted."  One more than a
# minute ahead is refused too: a millisecond timestamp would otherwise pass for years.
MAX_SKEW = 60
# The vendor's codes and meanings (its "Errors" page).
CODES = {
    MISSING: "Request is missing one of the required headers.",
    "EV_UNAUTHORIZED_INVALID_KEY": "Provided Client Key Id is invalid.",
    "EV_UNAUTHORIZED_INVALID_SECRET": "Secret provided in X-Evocalize-Client-Key is not valid.",
    "EV_UNAUTHORIZED_INVALID_SIGNATURE": "Signature provided in X-Evocalize-Signature "
    "is not valid.",
    EXPIRED: "Request timestamp is over 1 minute old.",
    "EV_OBJECT_NOT_FOUND": "Unable to locate requested resource.",
    "EV_BAD_REQUEST_MALFORMED": "Malformed request, e.g. a type mismatch.",
    "EV_INTERNAL_SERVER_ERROR": "We had a problem with our server. Try again later.",
}
# The simulator's generic codes (faults, unknown routes) as Evocalize names them.
GENERIC_CODES = {
    "bad_request": "EV_BAD_REQUEST_MALFORMED",
    "unauthorized": "EV_UNAUTHORIZED_INVALID_KEY",
    "resource_not_found": "EV_OBJECT_NOT_FOUND",
    "server_error": "EV_INTERNAL_SERVER_ERROR",
}
# The ``restErrorCode`` values of failed items (every third item has none).
ERROR_CODES = (
    "EV_BAD_REQUEST_DUPLICATE",
    "EV_BAD_REQUEST_INVALID_EMAIL",
    "EV_BAD_REQUEST_UNKNOWN_GROUP",
)
ERROR_MESSAGES = {
    "EV_BAD_REQUEST_DUPLICATE": "Duplicate user create request detected: user with {email} "
    "has already been associated to another user id.",
    "EV_BAD_REQUEST_INVALID_EMAIL": "Invalid email address: {email}.",
    "EV_BAD_REQUEST_UNKNOWN_GROUP": "Group seattle_office does not exist.",
    None: "Item could not be processed.",
}


@dataclass(frozen=True, slots=True)
class EvocalizeCredentials(VendorCredentials):
    """What Evocalize lets in: the client key and its ID, or the key ID and a signature.

    ``modes`` are the ways in it allows: ``client_key`` (the key headers) and
    ``signature`` (key ID, timestamp, signature with ``secret``); the config
    snippet uses the client key if allowed.
    """

    api: ClassVar[str] = API
    key: str = "evo-demo-key"
    key_id: str = "evo-demo-id"
    secret: str = "evo-demo-secret"  # noqa: S105 - a documented demo secret
    modes: frozenset[str] = frozenset({CLIENT_KEY, SIGNATURE})


def error_body(code: str, message: str) -> dict[str, object]:
    """Return Evocalize's error envelope; a generic code and message become the vendor's."""
    vendor_code = GENERIC_CODES.get(code)
    if vendor_code is not None:
        code, message = vendor_code, CODES[vendor_code]
    return {"errors": [{"message": message, "code": code}]}


def request_headers(creds: SimCredentials) -> dict[str, str]:
    """Return the headers a client sends to be let in (with the client key)."""
    own = creds.of(EvocalizeCredentials)
    return {KEY_HEADER: own.key, KEY_ID_HEADER: own.key_id}


def source(base_url: str, creds: SimCredentials) -> dict[str, object]:
    """Return the source's config keys: the key headers, or the signature if keys are off."""
    del base_url
    own = creds.of(EvocalizeCredentials)
    if CLIENT_KEY not in own.modes:
        return {"evocalize_signature": {"key_id": own.key_id, "secret": own.secret}}
    return {
        "http_headers": {
            KEY_HEADER: {"secrets": [own.key]},
            KEY_ID_HEADER: {"values": [own.key_id]},
        }
    }


def new_id(rng: random.Random) -> str:
    """Return a report ID as the benchmark shapes them: 12 hex digits."""
    return rng.randbytes(6).hex()


def expected_signature(path: str, timestamp: str, secret: str) -> str:
    """Return the signature of a body-less request: SHA-256 of path, timestamp, secret."""
    return hashlib.sha256(f"{path}\n{timestamp}\n{secret}".encode()).hexdigest()


def check_credentials(request: web.Request, creds: SimCredentials, now: float) -> str | None:
    """Return the ``EV_UNAUTHORIZED_*`` code refusing the request, or ``None`` to let it in."""
    own = creds.of(EvocalizeCredentials)
    headers = request.headers
    key_id = headers.get(KEY_ID_HEADER)
    if key_id is None:
        return MISSING
    if not same(key_id, own.key_id):
        return "EV_UNAUTHORIZED_INVALID_KEY"
    if KEY_HEADER in headers:  # "If both ... are present, Shared Secret takes precedence."
        ok = CLIENT_KEY in own.modes and same(headers[KEY_HEADER], own.key)
        return None if ok else "EV_UNAUTHORIZED_INVALID_SECRET"
    if SIGNATURE not in own.modes:
        return MISSING
    return _check_signature(request, own.secret, now)


def _check_signature(request: web.Request, secret: str, now: float) -> str | None:
    """Check the timestamp and signature headers of a request signed with ``secret``."""
    stamp, given = request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
    if stamp is None or given is None:
        return MISSING
    if not (stamp.isascii() and stamp.isdigit()):
        return EXPIRED  # no age can be read from it
    # Twelve digits reach the year 33658; more can only be a millisecond clock (or abuse).
    if len(stamp) > 12 or int(stamp) - now > MAX_SKEW:
        return AHEAD
    if now - int(stamp) > MAX_SKEW:
        return EXPIRED
    path = request.raw_path.partition("?")[0]  # as sent: still percent-encoded
    want = expected_signature(path, stamp, secret)
    return None if same(given, want) else "EV_UNAUTHORIZED_INVALID_SIGNATURE"


def account(sim: SimState, request: web.Request) -> str | None:
    """Return the key ID a request carries: either way in names the account with it."""
    del sim
    return request.headers.get(KEY_ID_HEADER)


def vendor_error(status: int, code: str) -> web.Response:
    """Answer ``status`` with one of the vendor's codes and its meaning, in the envelope."""
    if code == AHEAD:
        return error_response(status, EXPIRED, AHEAD_MESSAGE, body=error_body)
    return error_response(status, code, CODES[code], body=error_body)


def report(job: SimJob, now: float, base_url: str) -> Answer:
    """Return the report body at ``now``."""
    del base_url
    done, failed = job.processed(now), job.errors(now)
    data = {
        "totalItems": job.total,
        "remainingItems": job.total - done,
        "completedItems": done,
        "successfulItems": done - failed,
        "errorItems": failed,
        "isCompleted": job.is_finished(now),
    }
    return Answer(200, {"data": data})


def error_items(job: SimJob, now: float, start: int, stop: int) -> list[dict[str, object]]:
    """Return error items ``start`` to ``stop`` (0-based) as the seed shows them."""
    items: list[dict[str, object]] = []
    for index in range(start, min(stop, job.errors(now))):
        number = (index + 1) * job.error_every
        email = f"user{number}@example.com"
        code = VENDOR.error_code(index)
        item: dict[str, object] = {
            "input": {
                "id": f"user_{number}",
                "name": f"User {number}",
                "email": email,
                "groups": [
                    {"id": "seattle_office", "name": "Seattle Office", "role": "group_admin"}
                ],
            },
            "errorMessage": ERROR_MESSAGES[code].format(email=email),
        }
        if code is not None:
            item["restErrorCode"] = code
        items.append(item)
    return items


def page_token(offset: int) -> str:
    """Encode an errors page offset as an opaque token."""
    return base_page_token("offset", offset)


def _find(sim: SimState, request: web.Request, params: Params) -> SimJob | web.Response:
    """Check the credentials and find the report, or answer 401/404."""
    refusal = check_credentials(request, sim.credentials, sim.clock())
    if refusal is not None:
        return vendor_error(401, refusal)
    job = live_job(sim, API, params["id"])
    if job is None:
        return vendor_error(404, "EV_OBJECT_NOT_FOUND")
    return job


async def report_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET management/v1/items/report/{reportId}``."""
    job = _find(sim, request, params)
    if not isinstance(job, SimJob):
        return job
    return report(job, sim.clock(), api_url(sim, PREFIX)).response()


async def errors_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET management/v1/items/report/{reportId}/errors[?pageToken=...]``."""
    job = _find(sim, request, params)
    if not isinstance(job, SimJob):
        return job
    offset = page_offset(request, "pageToken", "offset")
    if offset is None:
        return vendor_error(400, "EV_BAD_REQUEST_MALFORMED")
    now, size = sim.clock(), sim.errors_page_size
    body: dict[str, object] = {"data": error_items(job, now, offset, offset + size)}
    if offset + size < job.errors(now):
        body["nextPageToken"] = page_token(offset + size)
    if offset > 0:
        body["previousPageToken"] = page_token(max(0, offset - size))
    return web.json_response(body)


VENDOR = SimVendor(
    api=API,
    prefix=PREFIX,
    routes=(
        Route(API, "GET", REPORT, report_handler),
        Route(API, "GET", (*REPORT, "errors"), errors_handler),
    ),
    answer=report,
    source=source,
    credentials=EvocalizeCredentials,
    account=account,
    error_codes=ERROR_CODES,
    bench_weight=0.4,
    new_id=new_id,
    demo_jobs=(
        DemoJob("evo-contacts-sync", 1200, 20.0, 50),  # ~1 min
        DemoJob("evo-users-import", 6000, 10.0, 30),  # ~10 min, 200 errors
        DemoJob("evo-groups-update", 900, 3.0),  # ~5 min
        DemoJob("evo-nightly-backfill", 2400, 8.0, 25, start_delay=60.0),  # starts in 1 min
    ),
    demo_missing=True,
    error_body=error_body,
)
