"""What a running simulator knows: its jobs, faults, request budget, tokens and request log.

:class:`SimState` is what the vendor handlers and the control endpoints work
on; :class:`exporter.simulator.app.Simulator` adds the HTTP server and tells
it which APIs and fault targets its vendors have.  Nothing here names a vendor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from exporter.simulator.credentials import SimCredentials
from exporter.simulator.faults import Fault, FaultTable
from exporter.simulator.jobs import JobOptions, SimJob
from exporter.simulator.noise import Pairs
from exporter.simulator.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as received; ``status`` is 0 while in flight, 499 if the client left."""

    time: float
    monotonic: float
    method: str
    raw_path: str
    api: str | None
    job_id: str | None
    status: int


class SimState:
    """The simulated vendors' data, read and changed by the handlers and the control API.

    ``tokens`` maps each OAuth2 access token issued to when it expires;
    ``token_requests`` counts the grants.  ``errors_page_size`` is how many item
    errors one page of an errors endpoint holds.  ``job_options`` gives, by API,
    the :class:`JobOptions` its jobs take (an API not in it: none).
    ``rate_limiter``, if given, is each account's request budget (see
    :meth:`admit`); without one, every request is served.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        credentials: SimCredentials,
        errors_page_size: int,
        apis: Collection[str],
        fault_targets: Collection[str],
        spared_targets: Collection[str] = (),
        job_options: Mapping[str, type[JobOptions]] | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if errors_page_size < 1:
            raise ValueError("errors_page_size must be at least 1")
        self.clock = clock
        self.credentials = credentials
        self.errors_page_size = errors_page_size
        self.apis = tuple(apis)
        self._job_options = dict(job_options or {})
        self.requests: list[RecordedRequest] = []
        self.token_requests = 0
        self.tokens: dict[str, float] = {}
        self._jobs: dict[tuple[str, str], SimJob] = {}
        self._faults = FaultTable(fault_targets, spared_targets)
        self._limiter = rate_limiter
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Return the server's root URL with a trailing slash (only once it listens)."""
        if self._url is None:
            raise RuntimeError("simulator not started")
        return self._url

    # -- jobs and faults ---------------------------------------------------------

    def add_job(
        self,
        api: str,
        job_id: str,
        *,
        total: int = 100,
        rate: float = 10.0,
        error_every: int = 0,
        outcome: str = "completed",
        start_delay: float = 0.0,
        rate_changes: Pairs = (),
        stalls: Pairs = (),
        **options: object,
    ) -> SimJob:
        """Add (or replace) a job that starts ``start_delay`` seconds from now by the clock.

        ``rate_changes`` and ``stalls`` are :class:`SimJob`'s (offsets from its
        start).  ``options`` are the ones the API's vendor declares; its
        :class:`JobOptions` refuses others and fills in the defaults.
        """
        if not isinstance(start_delay, int | float) or isinstance(start_delay, bool):
            raise TypeError(f"start_delay must be a number, got {start_delay!r}")
        if api not in self.apis:
            raise ValueError(f"api must be one of {', '.join(self.apis)}, got {api!r}")
        checked = self._job_options.get(api, JobOptions).check(api, options)
        job = SimJob(
            api=api,
            id=job_id,
            created=self.clock() + start_delay,
            total=total,
            rate=rate,
            error_every=error_every,
            outcome=outcome,
            options=checked,
            rate_changes=rate_changes,
            stalls=stalls,
            clock=self.clock,
        )
        self._jobs[api, job_id] = job
        return job

    def find_job(self, api: str, job_id: str) -> SimJob | None:
        """Return the job ``job_id`` of ``api``, or ``None``."""
        return self._jobs.get((api, job_id))

    def finish_job(self, api: str, job_id: str, outcome: str | None = None) -> SimJob:
        """End a job now (by the clock); ``KeyError`` if there is no such job."""
        job = self._jobs[api, job_id]
        job.finish(outcome, at=self.clock())
        return job

    def remove_job(self, api: str, job_id: str) -> None:
        """Forget a job: later requests for it get 404; ``KeyError`` if there is none."""
        del self._jobs[api, job_id]

    def check_fault_target(self, target: str) -> str:
        """Return ``target`` if faults can be set on it, else raise ``ValueError``."""
        return self._faults.check(target)

    def set_fault(self, target: str, fault: Fault) -> None:
        """Make requests to ``target`` (``*``: every API, not a token endpoint) fail."""
        self._faults.set(target, fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def take_fault(self, target: str) -> Fault | None:
        """Return the fault the next request to ``target`` gets, if any (using up its count)."""
        return self._faults.take(target)

    # -- the request budget ------------------------------------------------------

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """Return the per-account request budget in force, or ``None`` (off)."""
        return self._limiter

    def set_rate_limit(self, rate: float, burst: int) -> RateLimiter:
        """Limit each account to ``rate`` requests per second, ``burst`` at once.

        It replaces any limit in force: every bucket starts full and the counts at 0.
        """
        self._limiter = RateLimiter(rate=rate, burst=burst)
        return self._limiter

    def clear_rate_limit(self) -> None:
        """Serve every request again, however many."""
        self._limiter = None

    def admit(self, target: str, account: str | None) -> float | None:
        """``None``: serve a request of ``account`` to ``target``; else its ``Retry-After`` (s).

        Requests that name no account, or any request while no limit is in
        force, are served (and not counted).  Each target's accounts have
        budgets of their own.
        """
        if self._limiter is None or account is None:
            return None
        return self._limiter.admit(f"{target} {account}", self.clock())
