"""``global.fleet``: the Redis a fleet of exporters shares, the fleet's name and its size.

The Redis URL is a secret (``redis://:password@host``): it is checked here
but never quoted back, and a message names only the key, the file or the
environment variable it came from.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from yaml.nodes import Node

from exporter.config._nodes import Walker, quote
from exporter.config._security import secret
from exporter.config.model import FleetConfig, Secret

_KEYS = ("redis_url", "redis_url_file", "redis_url_env", "name", "size")
# The name is the key prefix: no braces (the prefix's own hash tag) and nothing a shell quotes.
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
SCHEMES = ("redis", "rediss", "unix")


def build_fleet(walker: Walker, node: Node, path: str) -> FleetConfig | None:
    """The fleet at ``node`` (``global.fleet``); ``None`` after recording its problems."""
    fields = walker.mapping(node, path, _KEYS)
    if fields is None:
        return None
    url = secret(walker, fields, "redis_url", required=True)
    if url is not None:
        option = next(key for key in _KEYS[:3] if fields.get(key) is not None)
        value_node = fields.entries[option][1]
        problem = url_problem(_current(url))
        if problem is not None:
            walker.problem(value_node, fields.at(option), _where(url) + problem)
            url = None
    name = walker.required(fields, "name", walker.string, "the prefix of the fleet's Redis keys")
    if name is not None and not _NAME.fullmatch(name):
        message = f"must consist of letters, digits and _.:- only, got {quote(name)}"
        walker.problem(fields.entries["name"][1], fields.at("name"), message)
        name = None
    size = fields.read("size", lambda n, p: walker.integer(n, p, minimum=1))
    if url is None or name is None or (fields.get("size") is not None and size is None):
        return None
    return FleetConfig(redis_url=url, name=name, size=size)


def url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, without quoting any of it; ``None`` when it is usable."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in SCHEMES:
        return "must be a redis://, rediss:// or unix:// URL"
    if parts.scheme == "unix":
        return None if parts.path else "must name the socket's path (unix:///path/to/redis.sock)"
    if not parts.hostname:
        return "must include a host"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return "may have only a database number as its path (redis://host:6379/0)"
    return None


def _current(url: Secret) -> str:
    """The URL as it reads now; a file that cannot be read reads as empty (already reported)."""
    try:
        return url.read()
    except OSError:
        return ""


def _where(url: Secret) -> str:
    """Where the URL came from, for a message that must not quote it."""
    if url.file is not None:
        return f"the URL in file {quote(url.file)} "
    if url.env is not None:
        return f"the URL in environment variable {url.env} "
    return ""
