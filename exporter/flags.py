"""The command line: every flag, its default and how its value is parsed."""

from __future__ import annotations

import argparse

from exporter import __version__, logs
from exporter.app import Listen
from exporter.config import parse_duration
from exporter.exposition.guard import HttpLimits
from exporter.jobs.shard import Shard, shard_from_hostname

# Outside the 9100-9999 range Prometheus' port registry has filled, so it collides with
# no registered exporter; see the README.
DEFAULT_PORT = 10113


def parse_listen(value: str) -> Listen:
    """``HOST:PORT``, ``[::1]:PORT`` or ``:PORT`` (every interface)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return Listen(host.strip("[]"), int(port))


def _duration(value: str) -> float:
    """A positive duration flag: ``5s``, ``500ms``, ``2m``."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value!r}")
    return seconds


def parse_shard(value: str, total: int, hostname: str) -> Shard:
    """``--shard`` (a number or ``from-hostname``) of ``--total-shards``."""
    if value == "from-hostname":
        index = shard_from_hostname(hostname)
    elif value.isdigit():
        index = int(value)
    else:
        raise ValueError(f"--shard: expected a number or from-hostname, got {value!r}")
    if index >= total:
        raise ValueError(f"--shard {index} is not below --total-shards {total}")
    return Shard(index, total)


def _positive(value: str) -> int:
    """A positive integer flag."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags, named as Prometheus' own exporters name them."""
    p = argparse.ArgumentParser(
        prog="batch-job-exporter",
        description="Prometheus exporter for vendor batch import and report jobs.",
    )
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML config file")
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        type=parse_listen,
        default=Listen("", DEFAULT_PORT),
        metavar="HOST:PORT",
        help=f"address for /metrics (default :{DEFAULT_PORT})",
    )
    limits = HttpLimits()
    p.add_argument(
        "--web.header-timeout",
        dest="header_timeout",
        type=_duration,
        default=limits.header_timeout,
        metavar="DURATION",
        help="close a connection whose request headers take longer than this, on every "
        f"listener (default {limits.header_timeout:g}s)",
    )
    p.add_argument(
        "--web.body-timeout",
        dest="body_timeout",
        type=_duration,
        default=limits.body_timeout,
        metavar="DURATION",
        help=f"answer 408 when a request body takes longer (default {limits.body_timeout:g}s)",
    )
    p.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=_duration,
        default=limits.idle_timeout,
        metavar="DURATION",
        help=f"close a kept-alive connection idle for this long (default {limits.idle_timeout:g}s)",
    )
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=_positive,
        default=limits.max_connections,
        metavar="N",
        help="close new connections beyond this many open ones, per listener "
        f"(default {limits.max_connections})",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        help="TLS, basic auth and headers for every listener, in exporter-toolkit's format",
    )
    p.add_argument(
        "--api.listen-address",
        dest="api_listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="serve the job registration API here (off by default; e.g. 127.0.0.1:10114)",
    )
    p.add_argument(
        "--api.token-file",
        dest="api_token_file",
        metavar="PATH",
        help="require 'Authorization: Bearer <file content>' on the registration API",
    )
    p.add_argument(
        "--api.max-jobs-per-source",
        dest="api_max_jobs",
        type=int,
        default=10_000,
        metavar="N",
        help="refuse registrations beyond this many jobs per source (default 10000)",
    )
    p.add_argument(
        "--shard",
        dest="shard",
        default="0",
        metavar="N|from-hostname",
        help="this exporter's shard, 0-based; from-hostname: the trailing -N of the host name, "
        "as a StatefulSet names its pods (default 0)",
    )
    p.add_argument(
        "--total-shards",
        dest="total_shards",
        type=_positive,
        default=1,
        metavar="M",
        help="how many exporters split the config's and the registered jobs (default 1)",
    )
    p.add_argument(
        "--storage.path",
        dest="storage_path",
        metavar="PATH",
        help="keep job state in this SQLite file across restarts (default: memory only)",
    )
    p.add_argument("--log.level", dest="log_level", choices=list(logs.LEVELS), default="info")
    p.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"], default="logfmt")
    p.add_argument("--check-config", action="store_true", help="validate the config file and exit")
    p.add_argument(
        "--demo", action="store_true", help="watch demo jobs on a built-in simulator of the APIs"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p
