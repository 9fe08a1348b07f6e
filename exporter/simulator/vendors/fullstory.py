"""Fullstory batch imports (seed 001 and its Swagger): the job, its errors, a Basic API key.

``GET v2/events/batch/{id}`` counts ``imports``; ``errors`` only for a
``FAILED`` job.  Timestamps are RFC 3339 with milliseconds; ``finished``
appears once the job has.  ``.../{id}/errors`` lists a failed import's
failures (``code`` and ``message``; every third has no ``code``) a page at a
time, with an opaque ``page_token``/``next_page_token`` and ``total_records``
as a string; while the job is processing it answers 202.  Users imports,
``v2/users/batch/{id}``, answer the same for the same jobs.

A job asks for Fullstory's proto3 JSON habits, and for a listing bug, by its
:class:`FullstoryOptions` (``sim.add_job(api, id, omit_zeros=True)``): the
simulator's job model knows no vendor's encodings.  The secret is
:class:`FullstoryCredentials`.
"""

from __future__ import annotations

import base64
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from aiohttp import web

from exporter.simulator.credentials import SimCredentials, VendorCredentials
from exporter.simulator.jobs import JobOptions, SimJob, check_bool
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
    split_auth,
)
from exporter.simulator.vendors.base import (
    page_token as base_page_token,
)

API = "batch_import_job"
PREFIX = "fullstory"
FINAL = {"completed": "COMPLETED", "failed": "FAILED", "canceled": "FAILED"}
KINDS = ("events", "users")  # both batch imports, the same jobs
TOKEN_PARAM = "page_token"  # noqa: S105 - a query parameter name

# The failures' codes, in Fullstory's snake_case style: its Swagger names no item
# error codes, so these are made up (every third failure has none).
ERROR_CODES = ("duplicate_event", "invalid_argument", "type_conflict")
MESSAGES = {
    "duplicate_event": "Event {n} was already imported",
    "invalid_argument": "Event {n} has an invalid user email",
    "type_conflict": "Event {n} property amount conflicts with its earlier type",
    None: "Event {n} could not be imported",
}


@dataclass(frozen=True, slots=True)
class FullstoryCredentials(VendorCredentials):
    """What Fullstory lets in: the API key, sent as ``Basic`` credentials."""

    api: ClassVar[str] = API
    api_key: str = "fs-demo-key"


@dataclass(frozen=True, slots=True)
class FullstoryOptions(JobOptions):
    """A batch import's habits: proto3 JSON's, and a listing bug.

    ``omit_zeros`` leaves zero counts out (and an empty listing is ``{}``), as
    proto3 JSON does; ``string_counts`` sends counts as decimal strings, as
    proto3 JSON writes an int64; ``loop_token`` makes the errors listing repeat
    its ``next_page_token`` forever.
    """

    omit_zeros: bool = False
    string_counts: bool = False
    loop_token: bool = False

    def __post_init__(self) -> None:
        check_bool("omit_zeros", self.omit_zeros)
        check_bool("string_counts", self.string_counts)
        check_bool("loop_token", self.loop_token)


def rfc3339(timestamp: float) -> str:
    """Format Unix seconds like Fullstory does: ``2019-04-18T14:36:11.123Z``."""
    millis = math.floor(timestamp * 1000)
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def status(job: SimJob, now: float) -> str:
    """Return the status (``PROCESSING``, ``COMPLETED`` or ``FAILED``) at ``now``."""
    if not job.is_finished(now):
        return "PROCESSING"
    return FINAL.get(job.final_outcome, "FAILED")


def source(base_url: str, creds: SimCredentials) -> dict[str, object]:
    """Return the source's config keys: the API key as ``Basic`` credentials."""
    del base_url
    api_key = creds.of(FullstoryCredentials).api_key
    return {"authorization": {"type": "Basic", "credentials": api_key}}


def new_id(rng: random.Random) -> str:
    """Return a job ID as the benchmark shapes them: base64, like the seed's ``abd123=``."""
    return base64.b64encode(rng.randbytes(10)).decode()


def _counts(job: SimJob, counts: dict[str, int]) -> dict[str, object]:
    """Encode counts as the job's options ask: zeros left out, numbers as strings."""
    habits = FullstoryOptions.of(job)
    return {
        key: str(n) if habits.string_counts else n
        for key, n in counts.items()
        if n or not habits.omit_zeros
    }


def batch_job(job: SimJob, now: float, base_url: str) -> Answer:
    """Return the batch import body at ``now``."""
    del base_url
    state, failed = status(job, now), job.errors(now)
    info: dict[str, object] = {"id": job.id, "status": state, "created": rfc3339(job.created)}
    finished = job.finished_at(now)
    if finished is not None:
        info["finished"] = rfc3339(finished)
    counts = {"imports": job.processed(now) - failed}
    if state == "FAILED":
        counts["errors"] = failed
    return Answer(200, {**_counts(job, counts), "job": info})


def page_token(offset: int) -> str:
    """Encode a listing offset as an opaque token."""
    return base_page_token("fs", offset)


def failures(job: SimJob, now: float, start: int, stop: int) -> list[dict[str, object]]:
    """Return failures ``start`` to ``stop`` (0-based) of a failed import, as the Swagger shows."""
    listed = job.errors(now) if status(job, now) == "FAILED" else 0
    items: list[dict[str, object]] = []
    for index in range(start, min(stop, listed)):
        number = (index + 1) * job.error_every
        code = VENDOR.error_code(index)
        item: dict[str, object] = {
            "message": MESSAGES[code].format(n=number),
            "event": {"name": "Order Completed", "properties": {"item": number}},
        }
        if code is not None:
            item["code"] = code
        items.append(item)
    return items


def errors_page(job: SimJob, now: float, offset: int, size: int) -> Answer:
    """Return the listing's page at ``offset`` at ``now``: 202 while the job is processing."""
    if not job.is_finished(now):
        return Answer(202, {})
    listed = job.errors(now) if status(job, now) == "FAILED" else 0
    body: dict[str, object] = {
        "results": failures(job, now, offset, offset + size),
        "total_records": str(listed),
    }
    habits = FullstoryOptions.of(job)
    if habits.omit_zeros and not listed:
        body = {}  # proto3 leaves out an empty list and a zero count
    if habits.loop_token:
        body["next_page_token"] = page_token(size)  # the same one, whatever was asked
    elif offset + size < listed:
        body["next_page_token"] = page_token(offset + size)
    return Answer(200, body)


def account(sim: SimState, request: web.Request) -> str | None:
    """Return the API key a request carries: it names the account, right or wrong."""
    del sim
    return split_auth(request, "Basic")


def _find(sim: SimState, request: web.Request, params: Params) -> SimJob | web.Response:
    """Check the API key and find the job, or answer 401/404."""
    api_key = sim.credentials.of(FullstoryCredentials).api_key
    if not same(split_auth(request, "Basic"), api_key):
        return error_response(401)
    job = live_job(sim, API, params["id"])
    if job is None:
        return error_response(404)
    return job


async def batch_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET v2/{events,users}/batch/{id}``."""
    job = _find(sim, request, params)
    if not isinstance(job, SimJob):
        return job
    return batch_job(job, sim.clock(), api_url(sim, PREFIX)).response()


async def errors_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET v2/{events,users}/batch/{id}/errors[?page_token=...]``."""
    job = _find(sim, request, params)
    if not isinstance(job, SimJob):
        return job
    offset = page_offset(request, TOKEN_PARAM, "fs")
    if offset is None:
        return error_response(400, "invalid_argument", "Invalid page token")
    return errors_page(job, sim.clock(), offset, sim.errors_page_size).response()


VENDOR = SimVendor(
    api=API,
    prefix=PREFIX,
    routes=tuple(
        route
        for kind in KINDS
        for route in (
            Route(API, "GET", ("v2", kind, "batch", "{id}"), batch_handler),
            Route(API, "GET", ("v2", kind, "batch", "{id}", "errors"), errors_handler),
        )
    ),
    answer=batch_job,
    source=source,
    credentials=FullstoryCredentials,
    account=account,
    job_options=FullstoryOptions,
    error_codes=ERROR_CODES,
    bench_weight=0.4,
    new_id=new_id,
    demo_jobs=(
        DemoJob("fs-web-events", 3000, 25.0),  # ~2 min
        DemoJob("fs-mobile-events", 12000, 20.0, 150),  # ~10 min
        DemoJob("fs-legacy-import", 2000, 10.0, 40, "failed"),  # fails after ~3 min, 50 errors
        DemoJob("abd123=", 500, 2.0),  # the seed's ID, ~4 min
    ),
)
