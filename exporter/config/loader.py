"""Load and validate the YAML config file, reporting every problem at once.

The file is composed into PyYAML nodes, not loaded into Python objects, so each
problem can name its line and column: ``FILE:LINE:COL: dotted.path: message``.
Nothing is returned until the whole file has been checked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import yaml
from yaml.nodes import Node

from exporter.config._adaptive import Adaptive, build_adaptive, resolve
from exporter.config._fleet import build_fleet
from exporter.config._nodes import Problem, Walker, describe, quote
from exporter.config._sources import MIN_POLL_INTERVAL, build_sources
from exporter.config._yaml import Compose, ConfigError, compose_root, raise_problems, safe_compose
from exporter.config.model import Config, GlobalConfig
from exporter.vendors.base import ApiSpec

_GLOBAL_KEYS = (
    "poll_interval",
    "request_timeout",
    "max_concurrency",
    "finished_job_retention",
    "watch_dir",
    "adaptive_polling",
    "fleet",
)
# A timeout of zero would fail every request; one millisecond is the smallest duration.
_MIN_TIMEOUT = 0.001


def load_config(path: str, registry: Mapping[str, ApiSpec]) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigError` if unusable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError([f"{path}:{line}:{column}: not valid UTF-8"]) from None
    return parse_config(text, path, registry)


def parse_config(
    text: str,
    filename: str,
    registry: Mapping[str, ApiSpec],
    *,
    compose: Compose = safe_compose,
) -> Config:
    """Validate a config given as text; raise :class:`ConfigError` listing every problem.

    ``filename`` names the file in messages, and relative file names in the config
    are resolved against its directory.  ``registry`` gives the APIs a source may
    name, and the ``batchjob_info`` labels no job label may clash with.
    ``compose`` turns the text into YAML nodes.
    """
    walker = Walker(base_dir=os.path.dirname(filename))
    root = compose_root(text, walker, compose, empty="the file is empty: it needs a sources: list")
    config = Config()
    if root is not None:
        config = _config(walker, root, registry)
    raise_problems(walker, filename)
    return config


def _config(walker: Walker, root: Node, registry: Mapping[str, ApiSpec]) -> Config:
    """The whole document: ``global`` and ``sources``."""
    is_mapping = isinstance(root, yaml.MappingNode)
    fields = walker.mapping(root, "", ("global", "sources")) if is_mapping else None
    if fields is None:
        message = f"the top level must be a mapping with a sources: list, got {describe(root)}"
        walker.problems.append(Problem(1, 1, "", message))
        return Config()
    global_node = fields.get("global")
    global_ = GlobalConfig() if global_node is None else _global(walker, global_node)
    sources_node = walker.require(fields, "sources")
    sources = () if sources_node is None else build_sources(walker, sources_node, registry, global_)
    return Config(global_=global_, sources=sources)


def _global(walker: Walker, node: Node) -> GlobalConfig:
    """The ``global:`` defaults; a missing or invalid value keeps the built-in default."""
    fields = walker.mapping(node, "global", _GLOBAL_KEYS)
    default = GlobalConfig()
    if fields is None:
        return default
    poll = fields.read(
        "poll_interval", lambda n, p: walker.duration(n, p, minimum=MIN_POLL_INTERVAL)
    )
    timeout = fields.read(
        "request_timeout", lambda n, p: walker.duration(n, p, minimum=_MIN_TIMEOUT)
    )
    concurrency = fields.read("max_concurrency", lambda n, p: walker.integer(n, p, minimum=1))
    # Zero is allowed: a finished job's series then go at the next poll.
    retention = fields.read("finished_job_retention", lambda n, p: walker.duration(n, p, minimum=0))
    watch_dir = fields.read("watch_dir", lambda n, p: _directory(walker, n, p))
    adaptive: Adaptive = fields.read("adaptive_polling", lambda n, p: build_adaptive(walker, n, p))
    fleet = fields.read("fleet", lambda n, p: build_fleet(walker, n, p))
    return GlobalConfig(
        poll_interval=default.poll_interval if poll is None else poll,
        request_timeout=default.request_timeout if timeout is None else timeout,
        max_concurrency=default.max_concurrency if concurrency is None else concurrency,
        finished_job_retention=default.finished_job_retention if retention is None else retention,
        watch_dir=watch_dir,
        adaptive_polling=resolve(adaptive, None),
        fleet=fleet,
    )


def _directory(walker: Walker, node: Node, path: str) -> str | None:
    """A directory name, resolved against the config's directory, that can be listed now."""
    name = walker.string(node, path)
    if name is None:
        return None
    full = os.path.join(walker.base_dir, name)
    try:
        # Listing is the honest test: a missing path, a file and a lack of permission all show.
        with os.scandir(full):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        walker.problem(node, path, f"cannot use directory {quote(full)}: {reason}")
        return None
    return full
