"""What each simulated vendor module declares, and the request checks they share.

A vendor module builds one :class:`SimVendor` (its ``VENDOR``) holding its
routes, the normal answer for a job, its config snippet and its demo jobs;
:mod:`exporter.simulator.vendors` lists them.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.simulator.credentials import SimCredentials
from exporter.simulator.jobs import SimJob
from exporter.simulator.responses import ErrorBody, plain_error
from exporter.simulator.state import SimState

Params = dict[str, str]
Handler = Callable[[SimState, web.Request, Params], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: ``{name}`` segments of ``pattern`` are path parameters.

    In a vendor module the pattern is relative to the vendor's prefix; the
    registry's :data:`~exporter.simulator.vendors.ROUTES` carry the prefix.
    ``target`` names the API (or other endpoint, for faults and the request log).
    """

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


@dataclass(frozen=True, slots=True)
class Answer:
    """A vendor's answer to a job request: HTTP status, JSON body and extra headers."""

    status: int
    body: dict[str, object]
    headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> web.Response:
        """Return the answer as an aiohttp response."""
        return web.json_response(self.body, status=self.status, headers=dict(self.headers))


@dataclass(frozen=True, slots=True)
class DemoJob:
    """One job ``--demo`` adds: the :meth:`SimState.add_job` settings it gets."""

    id: str
    total: int
    rate: float
    error_every: int = 0
    outcome: str = "completed"
    start_delay: float = 0.0
    name: str = "Calls report"


JobAnswer = Callable[[SimJob, float, str], Answer]
"""The answer for a job at a time, given the API's base URL (links in bodies use it)."""
SourceSnippet = Callable[[str, SimCredentials], dict[str, object]]
"""A source's config keys besides name, api, base_url and jobs, for a base URL and secrets."""


@dataclass(frozen=True, slots=True)
class SimVendor:
    """One simulated API, everything the simulator, the demo, tests and bench need of it.

    ``api`` is its name in :data:`exporter.vendors.REGISTRY`; ``prefix`` its
    first path segment on the simulator (``http://HOST:PORT/{prefix}/`` is its
    base URL) and the source name the demo, tests and bench give it.
    ``answer`` is the normal answer for a job (its job route's body, which
    bench parses too); ``source`` its config snippet; ``demo_missing`` makes
    the demo also watch an ID the simulator never has.  ``error_body`` shapes
    the errors of every target it has.
    """

    api: str
    prefix: str
    routes: tuple[Route, ...]
    answer: JobAnswer
    source: SourceSnippet
    demo_jobs: tuple[DemoJob, ...]
    demo_missing: bool = False
    error_body: ErrorBody = plain_error

    @property
    def targets(self) -> tuple[str, ...]:
        """Return the API and its other fault targets (a token endpoint), in route order."""
        others = (route.target for route in self.routes if route.target != self.api)
        return (self.api, *dict.fromkeys(others))


def split_auth(request: web.Request, scheme: str) -> str | None:
    """Return the credentials after ``scheme`` in ``Authorization``, if that scheme is used."""
    given, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if given.lower() == scheme.lower() else None


def same(given: str | None, want: str) -> bool:
    """Compare a secret in constant time; a missing value never matches."""
    if given is None:
        return False
    # Header values may carry undecodable bytes (as surrogates): compare them as bytes.
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), want.encode())


def live_job(sim: SimState, api: str, job_id: str) -> SimJob | None:
    """Return the job, unless it is unknown or gone (for APIs that drop deleted jobs)."""
    job = sim.find_job(api, job_id)
    if job is None or job.is_gone(sim.clock()):
        return None
    return job


def api_url(sim: SimState, prefix: str) -> str:
    """Return the base URL of the API at ``prefix`` on the running simulator."""
    return f"{sim.url}{prefix}/"
