"""Control endpoints under ``/_sim/``: drive a simulator running in another process.

``POST /_sim/jobs`` adds a job, ``POST /_sim/jobs/{api}/{id}/finish`` ends one,
``DELETE /_sim/jobs/{api}/{id}`` removes one, ``PUT /_sim/faults/{api}`` sets
a fault, ``DELETE /_sim/faults`` clears them and ``GET /_sim/requests`` lists
the recorded vendor requests (control requests are not recorded).
``PUT /_sim/rate_limit`` with ``{"rate": 5, "burst": 10}`` holds each account
to 5 requests per second, 10 at once (a 429 with ``Retry-After`` beyond
that; the counts start afresh), ``GET /_sim/rate_limit`` answers the limit
and how many requests it ``admitted`` and ``rejected`` (all ``null`` while
there is none) and ``DELETE /_sim/rate_limit`` lifts it.  Bad input is a 400
with ``{"error": ...}``.

A job's JSON has ``api`` and ``id``, any of :data:`JOB_KEYS` (the settings
every job has), and any of the job options its API's vendor module declares
(its :class:`~exporter.simulator.jobs.JobOptions` subclass), such as Talkdesk's
``{"name": "Daily calls", "redirect": 303}``; any other key is a 400 naming
the options the API takes.  The answer describes the job, every option included.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from exporter.simulator.faults import Fault
from exporter.simulator.jobs import SimJob
from exporter.simulator.state import SimState

JOB_KEYS = frozenset(
    {"total", "rate", "error_every", "outcome", "start_delay", "rate_changes", "stalls"}
)
"""The settings every job has; the other keys of a job's JSON are its vendor's options."""
FAULT_KEYS = frozenset({"kind", "retry_after", "count", "delay", "size", "every"})
LIMIT_KEYS = frozenset({"rate", "burst"})


class BadInput(Exception):
    """A control request that cannot be carried out; its message is sent back."""


def _error(status: int, message: str) -> web.Response:
    """Answer a control request with ``{"error": message}``."""
    return web.json_response({"error": message}, status=status)


async def _read_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """Read the JSON object body of a request (an empty body is ``{}`` if ``optional``)."""
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadInput("body must be a JSON object") from exc
    if not isinstance(value, dict):
        raise BadInput("body must be a JSON object")
    return value


def _only(body: dict[str, Any], allowed: frozenset[str]) -> None:
    """Reject keys outside ``allowed``."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadInput(f"unknown keys: {', '.join(unknown)}")


def job_json(job: SimJob) -> dict[str, object]:
    """Describe a job as JSON (its settings and its vendor's options, not its progress)."""
    fields = ("api", "id", "created", "total", "rate", "error_every", "outcome")
    described: dict[str, object] = {key: getattr(job, key) for key in fields}
    # Only a noisy job says how: a straight one is described as before there was noise.
    described.update(
        {key: getattr(job, key) for key in ("rate_changes", "stalls") if getattr(job, key)}
    )
    described.update(job.options)
    described.update(forced_outcome=job.forced_outcome, forced_at=job.forced_at)
    return described


async def _add_job(sim: SimState, request: web.Request) -> web.Response:
    """``POST /_sim/jobs``."""
    body = await _read_object(request)
    api, job_id = body.pop("api", None), body.pop("id", None)
    if not isinstance(api, str) or not isinstance(job_id, str):
        raise BadInput("api and id are required strings")
    settings = {key: value for key, value in body.items() if key in JOB_KEYS}
    options = {key: value for key, value in body.items() if key not in JOB_KEYS}
    job = sim.add_job(api, job_id, **settings, **options)
    return web.json_response(job_json(job), status=201)


async def _finish_job(sim: SimState, request: web.Request, api: str, job_id: str) -> web.Response:
    """``POST /_sim/jobs/{api}/{id}/finish``."""
    body = await _read_object(request, optional=True)
    _only(body, frozenset({"outcome"}))
    outcome = body.get("outcome")
    if outcome is not None and not isinstance(outcome, str):
        raise BadInput("outcome must be a string")
    if sim.find_job(api, job_id) is None:
        return _error(404, "no such job")
    return web.json_response(job_json(sim.finish_job(api, job_id, outcome)))


async def _set_fault(sim: SimState, request: web.Request, target: str) -> web.Response:
    """``PUT /_sim/faults/{api}``."""
    sim.check_fault_target(target)
    body = await _read_object(request)
    _only(body, FAULT_KEYS)
    if "kind" not in body:
        raise BadInput("kind is required")
    fault = Fault(**body)
    sim.set_fault(target, fault)
    return web.json_response({"api": target, **asdict(fault)})


async def _remove_job(sim: SimState, api: str, job_id: str) -> web.Response:
    """``DELETE /_sim/jobs/{api}/{id}``."""
    if sim.find_job(api, job_id) is None:
        return _error(404, "no such job")
    sim.remove_job(api, job_id)
    return web.Response(status=204)


async def _clear_faults(sim: SimState) -> web.Response:
    """``DELETE /_sim/faults``."""
    sim.clear_faults()
    return web.Response(status=204)


def limit_json(sim: SimState) -> dict[str, object]:
    """Describe the rate limit in force and its counts (every value ``None`` if there is none)."""
    limiter = sim.rate_limiter
    if limiter is None:
        return dict.fromkeys(("rate", "burst", "admitted", "rejected"))
    return {
        "rate": limiter.rate,
        "burst": limiter.burst,
        "admitted": limiter.admitted,
        "rejected": limiter.rejected,
    }


async def _set_rate_limit(sim: SimState, request: web.Request) -> web.Response:
    """``PUT /_sim/rate_limit``."""
    body = await _read_object(request)
    _only(body, LIMIT_KEYS)
    if set(body) != LIMIT_KEYS:
        raise BadInput("rate and burst are required")
    sim.set_rate_limit(body["rate"], body["burst"])
    return web.json_response(limit_json(sim))


async def _clear_rate_limit(sim: SimState) -> web.Response:
    """``DELETE /_sim/rate_limit``."""
    sim.clear_rate_limit()
    return web.Response(status=204)


async def _list_requests(sim: SimState) -> web.Response:
    """``GET /_sim/requests``."""
    return web.json_response([asdict(record) for record in sim.requests])


async def _route(sim: SimState, request: web.Request, path: list[str]) -> web.StreamResponse:
    """Dispatch a control request by path and method."""
    answer: Awaitable[web.StreamResponse]
    match request.method, path:
        case "POST", ["jobs"]:
            answer = _add_job(sim, request)
        case "POST", ["jobs", api, job_id, "finish"]:
            answer = _finish_job(sim, request, api, job_id)
        case "DELETE", ["jobs", api, job_id]:
            answer = _remove_job(sim, api, job_id)
        case "PUT", ["faults", target]:
            answer = _set_fault(sim, request, target)
        case "DELETE", ["faults"]:
            answer = _clear_faults(sim)
        case "GET", ["requests"]:
            answer = _list_requests(sim)
        case "PUT", ["rate_limit"]:
            answer = _set_rate_limit(sim, request)
        case "GET", ["rate_limit"]:
            return web.json_response(limit_json(sim))
        case "DELETE", ["rate_limit"]:
            answer = _clear_rate_limit(sim)
        case _, (["jobs"] | ["jobs", _, _] | ["jobs", _, _, "finish"]):
            return _error(405, f"method {request.method} not allowed here")
        case _, (["faults"] | ["faults", _] | ["requests"] | ["rate_limit"]):
            return _error(405, f"method {request.method} not allowed here")
        case _:
            return _error(404, "no such control endpoint")
    return await answer


async def handle(sim: SimState, request: web.Request, path: list[str]) -> web.StreamResponse:
    """Answer a ``/_sim/...`` request; ``path`` is the unquoted segments after ``_sim``."""
    try:
        return await _route(sim, request, path)
    except (BadInput, ValueError, TypeError) as exc:
        return _error(400, str(exc))
