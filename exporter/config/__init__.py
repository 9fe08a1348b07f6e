"""The exporter's configuration: the validated model and the YAML loader that builds it."""

from exporter.config._jobs import (
    RESERVED_LABELS,
    build_jobs,
    job_id_problem,
    label_name_problem,
    reserved_labels,
)
from exporter.config._nodes import Walker, describe, is_null, quote
from exporter.config._yaml import ConfigError
from exporter.config.durations import format_duration, parse_duration
from exporter.config.loader import load_config, parse_config
from exporter.config.model import (
    AdaptivePolling,
    Authorization,
    BasicAuth,
    Config,
    FleetConfig,
    GlobalConfig,
    Header,
    JobConfig,
    OAuth2,
    RequestSignature,
    Secret,
    SourceConfig,
    TLSConfig,
)

__all__ = [
    "RESERVED_LABELS",
    "AdaptivePolling",
    "Authorization",
    "BasicAuth",
    "Config",
    "ConfigError",
    "FleetConfig",
    "GlobalConfig",
    "Header",
    "JobConfig",
    "OAuth2",
    "RequestSignature",
    "Secret",
    "SourceConfig",
    "TLSConfig",
    "Walker",
    "build_jobs",
    "describe",
    "format_duration",
    "is_null",
    "job_id_problem",
    "label_name_problem",
    "load_config",
    "parse_config",
    "parse_duration",
    "quote",
    "reserved_labels",
]
