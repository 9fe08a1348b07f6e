"""The exporter's own metrics: requests, latency, rate limiting, build and process.

These are few series per source, so prometheus_client's objects suit them;
per-job series live in :mod:`exporter.exposition.jobseries` instead.  Process metrics read
``/proc``, so they are sampled by the housekeeping tick, never by a scrape.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from exporter import __version__

# Vendor APIs answer in tens of milliseconds to seconds; timeouts default to 10 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A plan is met within the loop's tick or missed by up to a budget's stretch of max_interval.
PLAN_LATENESS_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class SelfMetrics:
    """Counters fed by the client and poller, rendered with the job table."""

    def __init__(self) -> None:
        self._registry = registry = CollectorRegistry(auto_describe=False)
        self._requests = Counter(
            "batchjob_exporter_api_requests",
            "Requests sent to vendor APIs, by HTTP status code or failure reason.",
            ["source", "code"],
            registry=registry,
        )
        self._latency = Histogram(
            "batchjob_exporter_api_request_duration_seconds",
            "Time from sending a request to reading its whole answer.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._rate_limited = Counter(
            "batchjob_exporter_rate_limited",
            "Answers telling the exporter to slow down (429, or 503 with Retry-After).",
            ["source"],
            registry=registry,
        )
        self._rate_limited_seconds = Counter(
            "batchjob_exporter_rate_limited_seconds",
            "Seconds a source was closed to requests by rate-limit answers (Retry-After, or a "
            "backoff without it), counted when each window opens; overlaps count once.",
            ["source"],
            registry=registry,
        )
        self._poll_failures = Counter(
            "batchjob_exporter_poll_failures",
            "Polls that failed, by reason (timeout, invalid_json, rate_limited, ...).",
            ["source", "reason"],
            registry=registry,
        )
        self._http_bad = Counter(
            "batchjob_exporter_http_bad_requests",
            "Requests to the exporter's own listeners that could not be parsed (answered 4xx).",
            ["listener"],
            registry=registry,
        )
        self._http_dropped = Counter(
            "batchjob_exporter_http_connections_dropped",
            "Connections to the exporter's listeners closed by a limit "
            "(header_timeout, evicted, max_connections).",
            ["listener", "reason"],
            registry=registry,
        )
        self._http_open = Gauge(
            "batchjob_exporter_http_connections",
            "Connections open to the exporter's listeners.",
            ["listener"],
            registry=registry,
        )
        self._plan_lateness = Histogram(
            "batchjob_exporter_poll_plan_lateness_seconds",
            "How late adaptive polls started against their plan (a budget's queue included).",
            ["source"],
            buckets=PLAN_LATENESS_BUCKETS,
            registry=registry,
        )
        self._budget_used = Gauge(
            "batchjob_exporter_budget_used_ratio",
            "Requests sent over the last minute, divided by max_requests_per_second times 60.",
            ["source"],
            registry=registry,
        )
        self._budget_stretch = Gauge(
            "batchjob_exporter_budget_stretch_ratio",
            "Requests per second an adaptive source's plans ask for, over its budget; at least "
            "1: 1 when every job gets its plan, 2 when the budget affords half of it.",
            ["source"],
            registry=registry,
        )
        self._budgeted: set[str] = set()  # sources with budget series
        self.config_reload_ok = Gauge(
            "batchjob_exporter_config_last_reload_successful",
            "Whether the last configuration load succeeded.",
            registry=registry,
        )
        self.config_reload_time = Gauge(
            "batchjob_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            registry=registry,
        )
        Gauge(
            "batchjob_exporter_build_info",
            "Version of the exporter and the Python running it; the value is 1.",
            ["version", "python_version"],
            registry=registry,
        ).labels(__version__, platform.python_version()).set(1)
        self._fleet_up: Gauge | None = None
        self._fleet_members: Gauge | None = None
        self._process_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process_registry)
        self._process = b""
        # Label values with series, by source, so a source dropped by a reload takes its
        # series along instead of leaving them forever.
        self._codes: dict[str, set[str]] = {}
        self._reasons: dict[str, set[str]] = {}
        # Sources a reload removed: a request still in flight to one must not bring it back.
        self._gone: set[str] = set()

    def set_sources(self, names: frozenset[str]) -> None:
        """Start each source's counters at 0 and drop the series of sources gone.

        A counter that exists from the start lets ``rate()`` see its first increase.
        """
        for gone in (set(self._codes) | set(self._reasons)) - names:
            self._gone.add(gone)
            for code in self._codes.pop(gone, ()):
                self._requests.remove(gone, code)
            for reason in self._reasons.pop(gone, ()):
                self._poll_failures.remove(gone, reason)
            for metric in (
                self._latency,
                self._rate_limited,
                self._rate_limited_seconds,
                self._plan_lateness,
            ):
                with contextlib.suppress(KeyError):  # never created
                    metric.remove(gone)
        self._gone -= names
        for name in names - set(self._codes):
            self._codes[name] = set()
            self._reasons[name] = set()
            self._latency.labels(name)
            self._rate_limited.labels(name)
            self._rate_limited_seconds.labels(name)

    def request(self, source: str, code: str, seconds: float) -> None:
        """Count one request and its latency."""
        if source in self._gone:
            return
        self._requests.labels(source, code).inc()
        self._latency.labels(source).observe(seconds)
        self._codes.setdefault(source, set()).add(code)

    def rate_limited(self, source: str) -> None:
        """Count one rate-limit answer."""
        if source in self._gone:
            return
        self._rate_limited.labels(source).inc()

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        """Count the seconds a rate-limit answer closed the source beyond any window in force."""
        if source in self._gone:
            return
        self._rate_limited_seconds.labels(source).inc(seconds)

    def plan_lateness(self, source: str, seconds: float) -> None:
        """Observe how late one adaptive poll started against its plan."""
        if source in self._gone:
            return
        self._plan_lateness.labels(source).observe(seconds)

    def set_budgets(self, budgets: Mapping[str, tuple[float, float | None]]) -> None:
        """Set each budgeted source's used and (adaptive) stretch ratios; drop the others'."""
        for gone in self._budgeted - set(budgets):
            for metric in (self._budget_used, self._budget_stretch):
                with contextlib.suppress(KeyError):  # a fixed source has no stretch
                    metric.remove(gone)
        for source, (used, stretch) in budgets.items():
            self._budget_used.labels(source).set(used)
            if stretch is None:
                with contextlib.suppress(KeyError):  # it was adaptive before a reload
                    self._budget_stretch.remove(source)
            else:
                self._budget_stretch.labels(source).set(stretch)
        self._budgeted = set(budgets)

    def poll_failed(self, source: str, reason: str) -> None:
        """Count one failed poll."""
        if source in self._gone:
            return
        self._poll_failures.labels(source, reason).inc()
        self._reasons.setdefault(source, set()).add(reason)

    def http_bad_request(self, listener: str) -> None:
        """Count a request to one of our listeners that could not be parsed."""
        self._http_bad.labels(listener).inc()

    def http_dropped(self, listener: str, reason: str) -> None:
        """Count a connection a listener's limit closed."""
        self._http_dropped.labels(listener, reason).inc()

    def http_connections(self, listener: str, delta: int) -> None:
        """Follow a listener's open connections."""
        self._http_open.labels(listener).inc(delta)

    def http_listener(self, listener: str, reasons: tuple[str, ...]) -> None:
        """Start a listener's series at 0, so ``rate()`` sees their first increase."""
        self._http_bad.labels(listener)
        self._http_open.labels(listener)
        for reason in reasons:
            self._http_dropped.labels(listener, reason)

    def set_fleet(self, *, up: bool, members: int) -> None:
        """Whether the fleet's Redis answers, and how many exporters share each budget.

        Series exist only for an exporter with a fleet: made at the first call.
        """
        if self._fleet_up is None or self._fleet_members is None:
            self._fleet_up = Gauge(
                "batchjob_exporter_fleet_up",
                "Whether the fleet's Redis answered the last call (1) or not (0).",
                registry=self._registry,
            )
            self._fleet_members = Gauge(
                "batchjob_exporter_fleet_members",
                "Exporters of the fleet seen alive, each budget's divisor while Redis is away.",
                registry=self._registry,
            )
        self._fleet_up.set(1 if up else 0)
        self._fleet_members.set(members)

    def sample_process(self) -> None:
        """Read CPU, memory and file descriptors from ``/proc`` (the tick calls this)."""
        self._process = generate_latest(self._process_registry)

    def render(self) -> bytes:
        """These metrics as exposition bytes."""
        return generate_latest(self._registry) + self._process
