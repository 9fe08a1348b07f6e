"""The exporter health dashboard: requests, rate limits, budgets, fleet, polls, process."""

from __future__ import annotations

from .board import UID_EXPORTER, dashboard, query_variable
from .fields import Json, targets, thresholds, two_state
from .panels import Graph, graphs, row, stat, state_timeline

EXP = 'job=~"$job", instance=~"$instance"'
SRC = f'{EXP}, source=~"$source"'
BY_SOURCE = "{{source}}"
BY_INSTANCE = "{{instance}}"
RATE_LIMITED = f"batchjob_exporter_rate_limited_total{{{SRC}}}"
REQUESTS = f"batchjob_exporter_api_requests_total{{{SRC}}}"
BUILD_INFO = f"batchjob_exporter_build_info{{{EXP}}}"
CONFIG_OK = f"batchjob_exporter_config_last_reload_successful{{{EXP}}}"
CONFIG_LOADED = f"batchjob_exporter_config_last_reload_success_timestamp_seconds{{{EXP}}}"
FLEET_UP = f"batchjob_exporter_fleet_up{{{EXP}}}"


def _latency(q: str) -> tuple[str, str]:
    """The ``q`` quantile of request latency per source, legend ``p50 {{source}}`` etc."""
    return (
        f"histogram_quantile({q}, sum by (source, le) "
        f"(rate(batchjob_exporter_api_request_duration_seconds_bucket{{{SRC}}}"
        "[$__rate_interval])))",
        f"p{q[2:].ljust(2, '0')} {BY_SOURCE}",
    )


VENDOR_REQUESTS = (
    Graph(
        "Requests by source and code",
        "Requests per second to each vendor, by HTTP status or failure "
        "(timeout, connection_error, tls_error, invalid_response, body_too_large).",
        ((f"sum by (source, code) (rate({REQUESTS}[$__rate_interval]))", "{{source}} {{code}}"),),
        unit="reqps",
    ),
    Graph(
        "Request latency",
        "Latency quantiles per source, to the last byte, from the histogram.",
        (_latency("0.5"), _latency("0.9"), _latency("0.99")),
        unit="s",
    ),
)
RATE_LIMITING = (
    Graph(
        "Rate-limit answers per minute",
        "429s, and 503s with Retry-After, per minute. After each one the exporter sends "
        "nothing to that source until Retry-After has passed.",
        (
            (f"60 * sum by (source) (rate({RATE_LIMITED}[$__rate_interval]))", BY_SOURCE),
            (
                "60 * sum by (source) (rate(batchjob_exporter_poll_failures_total"
                f'{{{SRC}, reason="rate_limited"}}[$__rate_interval]))',
                "polls lost {{source}}",
            ),
        ),
    ),
    Graph(
        "Time under Retry-After",
        "Share of the time each source was closed to requests by rate-limit answers "
        "(their Retry-After, or the exporter's backoff without one); overlapping windows "
        "count once. With several exporters, the one closed longest. A window is counted "
        "when it opens: one longer than the rate interval shows as 100% where it begins "
        "and 0 for the rest of it.",
        (
            (
                "clamp_max(max by (source) (rate(batchjob_exporter_rate_limited_seconds_total"
                f"{{{SRC}}}[$__rate_interval])), 1)",
                BY_SOURCE,
            ),
        ),
        unit="percentunit",
        max_value=1,
    ),
    Graph(
        "Share of requests rate-limited",
        "Rate-limit answers / all requests, per source.",
        (
            (
                f"sum by (source) (rate({RATE_LIMITED}[$__rate_interval])) / sum by (source) "
                f"(rate({REQUESTS}[$__rate_interval]))",
                BY_SOURCE,
            ),
        ),
        unit="percentunit",
        max_value=1,
    ),
)
BUDGETS = (
    Graph(
        "Budget used",
        "Requests sent to each source with max_requests_per_second over the last minute, "
        "÷ what that rate allows. Near 100% the budget binds: due polls wait their turn "
        "(an adaptive source's that gain most first). Sources of one account share its "
        "budget and show the same line. In a fleet each exporter's line is its own part "
        "of the account's budget, and the exporters' lines add up.",
        ((f"batchjob_exporter_budget_used_ratio{{{SRC}}}", "{{source}} on {{instance}}"),),
        unit="percentunit",
        max_value=1,
    ),
    Graph(
        "Fleet members",
        "With global.fleet: the exporters each one last counted alive in Redis, by which "
        "it divides every account's budget (also while Redis is away).",
        ((f"batchjob_exporter_fleet_members{{{EXP}}}", BY_INSTANCE),),
    ),
)
POLLS = (
    Graph(
        "Jobs whose last poll succeeded",
        "Share of each source's jobs whose last poll succeeded.",
        ((f"avg by (source) (batchjob_poll_success{{{SRC}}})", BY_SOURCE),),
        unit="percentunit",
        max_value=1,
    ),
    Graph(
        "Failed polls by reason",
        "Failed polls per second by source and reason.",
        (
            (
                "sum by (source, reason) (rate(batchjob_exporter_poll_failures_total"
                f"{{{SRC}}}[$__rate_interval]))",
                "{{source}} {{reason}}",
            ),
        ),
    ),
    Graph(
        "Watched jobs by source",
        "Jobs with series on the page, per source.",
        ((f"sum by (source) (batchjob_exporter_watched_jobs{{{SRC}}})", BY_SOURCE),),
    ),
)
PROCESS = (
    Graph(
        "CPU",
        "CPU seconds per second (1 = one full core).",
        ((f"rate(process_cpu_seconds_total{{{EXP}}}[$__rate_interval])", BY_INSTANCE),),
        # Not capped at 1 like the shares: with threads the process can use more than a core.
        unit="percentunit",
    ),
    Graph(
        "Memory",
        "Resident and virtual memory of the exporter process.",
        (
            (f"process_resident_memory_bytes{{{EXP}}}", "resident {{instance}}"),
            (f"process_virtual_memory_bytes{{{EXP}}}", "virtual {{instance}}"),
        ),
        unit="bytes",
    ),
    Graph(
        "Open file descriptors",
        "Open file descriptors and the limit.",
        (
            (f"process_open_fds{{{EXP}}}", "open {{instance}}"),
            (f"process_max_fds{{{EXP}}}", "limit {{instance}}"),
        ),
    ),
)


def _up_or_down(title: str, description: str, expr: str, ok: str, bad: str) -> Json:
    """A 0/1 stat per instance: ``ok`` on green or ``bad`` on red."""
    return stat(
        title,
        description,
        targets((expr, BY_INSTANCE)),
        color_mode="background",
        defaults=two_state(ok, bad),
    )


def _summary() -> list[Json]:
    """The top line: up, version, config, watched jobs, share of jobs polled fine."""
    return [
        _up_or_down(
            "Exporter up",
            "Whether Prometheus' last scrape of the exporter succeeded (per instance).",
            f"up{{{EXP}}}",
            "up",
            "down",
        ),
        stat(
            "Version",
            "batchjob_exporter_build_info.",
            targets((BUILD_INFO, "{{version}} (Python {{python_version}})")),
            text_mode="name",
            color_mode="none",
        ),
        _up_or_down(
            "Config load",
            "Whether the last configuration load succeeded.",
            CONFIG_OK,
            "OK",
            "failed",
        ),
        stat(
            "Config loaded",
            "When the configuration was last loaded successfully.",
            # Grafana's date units take milliseconds.
            targets((f"{CONFIG_LOADED} * 1000", BY_INSTANCE)),
            unit="dateTimeFromNow",
            color_mode="none",
        ),
        stat(
            "Watched jobs",
            "Jobs with series on the exporter's page.",
            targets((f"sum(batchjob_exporter_watched_jobs{{{SRC}}})", "jobs")),
            color_mode="none",
        ),
        stat(
            "Jobs whose last poll succeeded",
            "Share of watched jobs whose last poll succeeded.",
            targets((f"avg(batchjob_poll_success{{{SRC}}})", "polls OK")),
            unit="percentunit",
            defaults={
                "min": 0,
                "max": 1,
                "thresholds": thresholds((None, "red"), (0.5, "orange"), (0.95, "green")),
            },
        ),
    ]


def _config_timeline() -> Json:
    """The config load result over time, on the same colors as its stat."""
    return state_timeline(
        "Config load status",
        "Whether the last configuration load succeeded, over time.",
        targets((CONFIG_OK, BY_INSTANCE)),
        size=(6, 8),
        defaults={"color": {"mode": "thresholds"}, **two_state("OK", "failed")},
        show_value="auto",
    )


def _fleet_timeline() -> Json:
    """Whether each exporter of a fleet reaches its Redis, over time."""
    return state_timeline(
        "Fleet Redis",
        "With global.fleet: whether the fleet's Redis answered the exporter's last call. "
        "While it does not, the exporter keeps to its last share of each budget, but no "
        "longer learns of the Retry-After windows other exporters meet.",
        targets((FLEET_UP, BY_INSTANCE)),
        size=(8, 8),
        defaults={"color": {"mode": "thresholds"}, **two_state("up", "down")},
        show_value="auto",
    )


def _variables() -> list[Json]:
    """Scrape job and instance of the exporter, then the sources it watches."""
    return [
        query_variable(
            "job",
            "Scrape job",
            "label_values(batchjob_exporter_build_info, job)",
            multi=True,
            all_value=None,
        ),
        query_variable(
            "instance",
            "Instance",
            'label_values(up{job=~"$job"}, instance)',
            multi=True,
            all_value=None,
        ),
        query_variable(
            "source",
            "Source",
            'label_values(batchjob_exporter_watched_jobs{job=~"$job", instance=~"$instance"}, '
            "source)",
            multi=True,
        ),
    ]


def exporter_health() -> Json:
    """The exporter itself: requests, latency, rate limiting, budgets, polls, config, process."""
    panels = [
        *_summary(),
        row("Vendor requests"),
        *graphs(VENDOR_REQUESTS, size=(12, 8), table_legend=True),
        row("Rate limiting"),
        *graphs(RATE_LIMITING),
        row("Budgets and fleet"),
        *graphs(BUDGETS),
        _fleet_timeline(),
        row("Polls"),
        *graphs(POLLS),
        row("Process"),
        _config_timeline(),
        *graphs(PROCESS, size=(6, 8)),
    ]
    return dashboard(
        UID_EXPORTER,
        "Batch job exporter health",
        "batch-job-exporter itself: vendor requests, latency, rate limiting, budgets and "
        "fleet, polls, config, CPU and memory.",
        panels,
        _variables(),
    )
