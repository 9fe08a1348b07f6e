"""The exporter's configuration: the validated model and the YAML loader that builds it."""

from exporter.config._jobs import job_id_problem, label_name_problem
from exporter.config.durations import format_duration, parse_duration
from exporter.config.loader import ConfigError, load_config, parse_config
from exporter.config.model import (
    Authorization,
    BasicAuth,
    Config,
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
    "Authorization",
    "BasicAuth",
    "Config",
    "ConfigError",
    "GlobalConfig",
    "Header",
    "JobConfig",
    "OAuth2",
    "RequestSignature",
    "Secret",
    "SourceConfig",
    "TLSConfig",
    "format_duration",
    "job_id_problem",
    "label_name_problem",
    "load_config",
    "parse_config",
    "parse_duration",
]
