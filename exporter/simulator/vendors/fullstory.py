"""Fullstory batch imports (seed 001): ``GET v2/events/batch/{id}`` with a Basic API key.

The body counts ``imports``; ``errors`` only for a ``FAILED`` job.  Timestamps
are RFC 3339 with milliseconds; ``finished`` appears once the job has.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from aiohttp import web

from exporter.simulator.credentials import SimCredentials
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
    same,
    split_auth,
)

API = "batch_import_job"
PREFIX = "fullstory"
FINAL = {"completed": "COMPLETED", "failed": "FAILED", "canceled": "FAILED"}


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
    return {"authorization": {"type": "Basic", "credentials": creds.fullstory_api_key}}


def batch_job(job: SimJob, now: float, base_url: str) -> Answer:
    """Return the batch import body at ``now``."""
    del base_url
    state, failed = status(job, now), job.errors(now)
    info: dict[str, object] = {"id": job.id, "status": state, "created": rfc3339(job.created)}
    finished = job.finished_at(now)
    if finished is not None:
        info["finished"] = rfc3339(finished)
    body: dict[str, object] = {"imports": job.processed(now) - failed}
    if state == "FAILED":
        body["errors"] = failed
    body["job"] = info
    return Answer(200, body)


async def batch_handler(sim: SimState, request: web.Request, params: Params) -> web.Response:
    """``GET v2/events/batch/{id}``."""
    if not same(split_auth(request, "Basic"), sim.credentials.fullstory_api_key):
        return error_response(401)
    job = live_job(sim, API, params["id"])
    if job is None:
        return error_response(404)
    return batch_job(job, sim.clock(), api_url(sim, PREFIX)).response()


VENDOR = SimVendor(
    api=API,
    prefix=PREFIX,
    routes=(Route(API, "GET", ("v2", "events", "batch", "{id}"), batch_handler),),
    answer=batch_job,
    source=source,
    demo_jobs=(
        DemoJob("fs-web-events", 3000, 25.0),  # ~2 min
        DemoJob("fs-mobile-events", 12000, 20.0, 150),  # ~10 min
        DemoJob("fs-legacy-import", 2000, 10.0, 40, "failed"),  # fails after ~3 min
        DemoJob("abd123=", 500, 2.0),  # the seed's ID, ~4 min
    ),
)
