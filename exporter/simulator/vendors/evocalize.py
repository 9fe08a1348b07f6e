"""Evocalize batch reports (seed 000): the report, its paged errors, the key headers.

``GET management/v1/items/report/{reportId}`` gives five item counts and
``isCompleted``; ``.../errors`` pages the failed items with opaque
``pageToken`` values.  Both need the two ``X-Evocalize-Client-Key*`` headers.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from aiohttp import web

from exporter.simulator.credentials import SimCredentials
from exporter.simulator.jobs import SimJob, error_code
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
    same,
)

API = "evocalize_batch_report"
PREFIX = "evocalize"
REPORT = ("management", "v1", "items", "report", "{id}")
KEY_HEADER = "X-Evocalize-Client-Key"
KEY_ID_HEADER = "X-Evocalize-Client-Key-Id"
ERROR_MESSAGES = {
    "EV_BAD_REQUEST_DUPLICATE": "Duplicate user create request detected: user with {email} "
    "has already been associated to another user id.",
    "EV_BAD_REQUEST_INVALID_EMAIL": "Invalid email address: {email}.",
    "EV_BAD_REQUEST_UNKNOWN_GROUP": "Group seattle_office does not exist.",
    None: "Item could not be processed.",
}


def request_headers(creds: SimCredentials) -> dict[str, str]:
    """Return the headers a client sends to be let in."""
    return {KEY_HEADER: creds.evocalize_key, KEY_ID_HEADER: creds.evocalize_key_id}


def source(base_url: str, creds: SimCredentials) -> dict[str, object]:
    """Return the source's config keys: the key as a secret header, its ID as a plain one."""
    del base_url
    return {
        "http_headers": {
            KEY_HEADER: {"secrets": [creds.evocalize_key]},
            KEY_ID_HEADER: {"values": [creds.evocalize_key_id]},
        }
    }


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
        code = error_code(index)
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


def _find(sim: SimState, request: web.Request, params: Params) -> SimJob | web.Response:
    """Check the key headers and find the report, or answer 401/404."""
    creds = sim.credentials
    if not (
        same(request.headers.get(KEY_HEADER), creds.evocalize_key)
        and same(request.headers.get(KEY_ID_HEADER), creds.evocalize_key_id)
    ):
        return error_response(401)
    job = live_job(sim, API, params["id"])
    if job is None:
        return error_response(404, message="Report not found")
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
    query = parse_qs(request.raw_path.partition("?")[2], keep_blank_values=True)
    token = (query.get("pageToken") or [""])[0]
    offset = 0
    if token:
        decoded = _read_token(token)
        if decoded is None:
            return error_response(400, "invalid_page_token", "Invalid page token")
        offset = decoded
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
    demo_jobs=(
        DemoJob("evo-contacts-sync", 1200, 20.0, 50),  # ~1 min
        DemoJob("evo-users-import", 6000, 10.0, 30),  # ~10 min, 200 errors
        DemoJob("evo-groups-update", 900, 3.0),  # ~5 min
        DemoJob("evo-nightly-backfill", 2400, 8.0, 25, start_delay=60.0),  # starts in 1 min
    ),
    demo_missing=True,
)
