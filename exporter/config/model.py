"""The validated configuration: frozen, fully resolved, safe to log.

Every default is applied and every reference checked by the loader, so the
rest of the exporter never looks at raw YAML.  Secrets are references (a
file, an environment variable or an inline value) read when used, so a
rotated Kubernetes secret is picked up without a restart; their ``repr``
never shows the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Secret:
    """Where a secret comes from; exactly one of the three is set."""

    file: str | None = None
    env: str | None = None
    inline: str | None = field(default=None, repr=False)

    def read(self) -> str:
        """The current value; a file is read afresh and stripped of its trailing newline."""
        if self.file is not None:
            with open(self.file, encoding="utf-8") as handle:
                return handle.read().rstrip("\r\n")
        if self.env is not None:
            return os.environ.get(self.env, "")
        return self.inline or ""

    def describe(self) -> str:
        """Where the value comes from, for log lines: never the value itself."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"environment variable {self.env}"
        return "inline value"


@dataclass(frozen=True, slots=True)
class Authorization:
    """Prometheus' ``authorization``: sends ``<type> <credentials>``."""

    type: str
    credentials: Secret


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """Prometheus' ``basic_auth``."""

    username: str
    password: Secret | None


@dataclass(frozen=True, slots=True)
class OAuth2:
    """Prometheus' ``oauth2``: the client-credentials grant."""

    client_id: str
    client_secret: Secret
    token_url: str
    scopes: tuple[str, ...] = ()
    endpoint_params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """An API's request signing (Evocalize's ``evocalize_signature``): a key ID and its secret.

    The API's own ``sign`` turns them, a request's path and the time into headers.
    """

    key_id: str
    secret: Secret


@dataclass(frozen=True, slots=True)
class Header:
    """One entry of Prometheus' ``http_headers``: plain values and secret ones."""

    name: str
    values: tuple[str, ...] = ()
    secrets: tuple[Secret, ...] = ()


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Prometheus' ``tls_config``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None  # TLS10 | TLS11 | TLS12 | TLS13


@dataclass(frozen=True, slots=True)
class JobConfig:
    """A watched job ID and the extra labels its ``batchjob_info`` carries."""

    id: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AdaptivePolling:
    """``adaptive_polling``: each job's next poll is planned within these bounds (seconds).

    ``min_interval`` is the soonest one job is asked again, ``max_interval`` the
    latest (as long as the source's ``max_requests_per_second`` allows it at all).
    """

    min_interval: float
    max_interval: float


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """``global.fleet``: the Redis that exporters on one vendor account coordinate through.

    ``redis_url`` is a secret (it may hold a password), read again at each
    reconnect; ``name`` prefixes every key, so several fleets can share one
    Redis; ``size`` is how many exporters to assume before Redis has told.
    """

    redis_url: Secret
    name: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class GlobalConfig:
    """Defaults for every source; durations are seconds."""

    poll_interval: float = 30.0
    request_timeout: float = 10.0
    max_concurrency: int = 16
    finished_job_retention: float = 3600.0
    # A directory whose *.yaml / *.txt files list more jobs; resolved like other file keys.
    watch_dir: str | None = None
    # The default of every source that does not set its own; None: fixed intervals.
    adaptive_polling: AdaptivePolling | None = None
    # Shared politeness and registrations through Redis; None: this exporter is on its own.
    fleet: FleetConfig | None = None


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One vendor endpoint and the jobs watched on it.

    ``path`` and ``errors_path`` are templates with ``{id}`` and the API's
    ``path_params`` (e.g. ``{report_type}``); ``base_url`` ends with ``/``.
    ``poll_interval`` is resolved against the global default.  ``signature``
    is set from the API's ``signature_key`` (``evocalize_signature``).
    ``adaptive_polling`` is the source's own or else the global one; ``None``
    polls every ``poll_interval``, and with it ``poll_interval`` only spreads
    the first polls.  ``account`` (default: the name) is the vendor account
    whose politeness the source shares with every source of the same account:
    its Retry-After windows, credential holds, backoff and rate cap.
    """

    name: str
    api: str
    base_url: str
    path: str
    poll_interval: float
    jobs: tuple[JobConfig, ...] = ()
    path_params: tuple[tuple[str, str], ...] = ()
    errors_path: str | None = None
    errors_page_token_param: str = "pageToken"  # noqa: S105 - a query parameter name
    errors_refresh: float | None = None  # seconds; re-read a running job's listing this rarely
    max_requests_per_second: float | None = None
    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None
    oauth2: OAuth2 | None = None
    http_headers: tuple[Header, ...] = ()
    tls_config: TLSConfig | None = None
    signature: RequestSignature | None = None
    adaptive_polling: AdaptivePolling | None = None
    account: str = ""  # resolved to the name when not given

    @property
    def account_name(self) -> str:
        """The account whose politeness the source shares: ``account``, else its name."""
        return self.account or self.name


@dataclass(frozen=True, slots=True)
class Config:
    """The whole file."""

    global_: GlobalConfig = GlobalConfig()
    sources: tuple[SourceConfig, ...] = ()
