"""What each simulated vendor module declares, and the request checks they share.

A vendor module builds one :class:`SimVendor` (its ``VENDOR``) holding its
routes, the normal answer for a job, its config snippet, its credentials and
job options, its item error codes, its demo jobs and how the benchmark draws
its jobs; :mod:`exporter.simulator.vendors` lists them.
"""

from __future__ import annotations

import base64
import binascii
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from aiohttp import web

from exporter.simulator.credentials import SimCredentials, VendorCredentials
from exporter.simulator.jobs import JobOptions, SimJob, item_error_code, item_error_counts
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
    """One job ``--demo`` adds: the :meth:`SimState.add_job` settings it gets.

    ``options`` are its vendor's job options (an instance of its
    :class:`JobOptions` subclass; the base: the defaults); the benchmark draws
    its jobs' options from its vendor's demo jobs too.
    """

    id: str
    total: int
    rate: float
    error_every: int = 0
    outcome: str = "completed"
    start_delay: float = 0.0
    options: JobOptions = field(default_factory=JobOptions)


def hex_id(rng: random.Random) -> str:
    """Return a job ID of 16 hex digits drawn from ``rng``: the benchmark's default ID shape."""
    return rng.randbytes(8).hex()


JobAnswer = Callable[[SimJob, float, str], Answer]
"""The answer for a job at a time, given the API's base URL (links in bodies use it)."""
SourceSnippet = Callable[[str, SimCredentials], dict[str, object]]
"""A source's config keys besides name, api, base_url and jobs, for a base URL and secrets."""
AccountOf = Callable[[SimState, web.Request], str | None]
"""The account a request's credentials name (valid or not), whose budget it uses; ``None``: none."""


def no_account(sim: SimState, request: web.Request) -> str | None:
    """Name no account: the API's requests are never rate limited."""
    del sim, request
    return None


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

    ``credentials`` is its :class:`VendorCredentials` subclass (``None``: it
    takes no secrets), whose defaults are the demo secrets; ``job_options`` its
    :class:`JobOptions` subclass; ``error_codes`` the codes its item errors
    carry (:meth:`error_code`).  ``reports_deleted`` says it still answers for
    a finished ``deleted`` job (the others answer 404).  ``bench_weight`` is its
    share of the benchmark's jobs (0: none) and ``new_id`` shapes their IDs.
    ``account`` names the account a request to the API is counted against
    when the simulator has a rate limit (its other endpoints are not limited).
    """

    api: str
    prefix: str
    routes: tuple[Route, ...]
    answer: JobAnswer
    source: SourceSnippet
    demo_jobs: tuple[DemoJob, ...]
    credentials: type[VendorCredentials] | None = None
    job_options: type[JobOptions] = JobOptions
    error_codes: tuple[str, ...] = ()
    demo_missing: bool = False
    error_body: ErrorBody = plain_error
    reports_deleted: bool = False
    bench_weight: float = 0.0
    new_id: Callable[[random.Random], str] = hex_id
    account: AccountOf = no_account

    def __post_init__(self) -> None:
        if self.credentials is not None and self.credentials.api != self.api:
            raise ValueError(f"{self.api}: its credentials are those of {self.credentials.api!r}")
        for job in self.demo_jobs:
            if type(job.options) not in (JobOptions, self.job_options):
                raise TypeError(f"{self.api}: demo job {job.id} has options of another vendor")

    @property
    def targets(self) -> tuple[str, ...]:
        """Return the API and its other fault targets (a token endpoint), in route order."""
        others = (route.target for route in self.routes if route.target != self.api)
        return (self.api, *dict.fromkeys(others))

    def check_options(self, given: Mapping[str, object]) -> Mapping[str, object]:
        """Return a job's options given ``given``, defaults filled in; ``ValueError`` if bad."""
        return self.job_options.check(self.api, given)

    def error_code(self, index: int) -> str | None:
        """Return the code of the ``index``-th failed item (0-based); every third has none."""
        return item_error_code(index, self.error_codes)

    def error_code_counts(self, errors: int) -> dict[str | None, int]:
        """Count the first ``errors`` failed items by :meth:`error_code` (``None``: no code)."""
        return item_error_counts(errors, self.error_codes)


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


def page_token(kind: str, offset: int) -> str:
    """Encode a listing offset as an opaque token tagged ``kind`` (each vendor its own)."""
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode()


def page_offset(request: web.Request, param: str, kind: str) -> int | None:
    """The offset the request's ``param`` token names: 0 without one, ``None`` if not ours."""
    query = parse_qs(request.raw_path.partition("?")[2], keep_blank_values=True)
    token = (query.get(param) or [""])[0]
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == kind and number.isdigit() else None
