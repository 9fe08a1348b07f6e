"""The ``--web.config.file``: exporter-toolkit's format for TLS, basic auth and headers.

Every key the toolkit documents is either honoured or refused with a "not
supported" problem saying why (docs/web-config.md lists which); unknown keys,
bad values and certificates that do not load are problems with their line,
all reported at once, as for the main config.  Hashes are never quoted back.
``tls_server_config`` is read in :mod:`exporter.config._webtls`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from yaml.nodes import Node

# TLSServerConfig and server_context are part of this API (WebConfig.tls is one, the server
# builds its context with the other); other packages may not import the private module.
__all__ = [
    "ConfigError",
    "TLSServerConfig",
    "WebConfig",
    "load_web_config",
    "parse_web_config",
    "server_context",
]

from exporter.config._nodes import Walker
from exporter.config._webtls import TLSServerConfig, server_context, tls_server_config
from exporter.config._yaml import ConfigError, compose_root, raise_problems, safe_compose
from exporter.config.tls import TLSFileError

# The headers the toolkit lets a web config add, and the values it accepts (None: any).
HEADERS: Mapping[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The web config in force: no TLS and no authentication unless the file says so."""

    tls: TLSServerConfig | None = None
    basic_auth_users: tuple[tuple[str, str], ...] = ()  # (user, bcrypt hash), sorted
    headers: tuple[tuple[str, str], ...] = ()

    def files(self) -> tuple[str, ...]:
        """The certificate files it names."""
        return self.tls.files() if self.tls else ()


def load_web_config(path: str) -> WebConfig:
    """Read, validate and try the web config at ``path``; :class:`ConfigError` if unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not valid UTF-8"]) from None
    return parse_web_config(text, path)


def parse_web_config(text: str, filename: str) -> WebConfig:
    """Validate a web config given as text, its certificates loaded; every problem at once."""
    walker = Walker(base_dir=os.path.dirname(filename))
    root = compose_root(text, walker, safe_compose, empty="the file is empty")
    config = WebConfig()
    if root is not None:
        config = _web(walker, root, filename)
    raise_problems(walker, filename)
    return config


def _web(walker: Walker, root: Node, filename: str) -> WebConfig:
    keys = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
    fields = walker.mapping(root, "", keys)
    if fields is None:
        return WebConfig()
    if "rate_limit" in fields.entries:
        why = "not supported: use --web.max-connections and the scrape interval instead"
        walker.problem(fields.key_node("rate_limit"), fields.at("rate_limit"), why)
    tls = fields.read("tls_server_config", lambda n, p: tls_server_config(walker, n, p))
    users = fields.read("basic_auth_users", lambda n, p: _users(walker, n, p)) or ()
    headers = fields.read("http_server_config", lambda n, p: _http(walker, n, p)) or ()
    if tls is not None and not walker.problems:
        try:
            server_context(tls)
        except TLSFileError as exc:
            where = fields.key_node("tls_server_config")
            walker.problem(where, f"tls_server_config.{exc.key}", exc.message)
    return WebConfig(tls=tls, basic_auth_users=users, headers=headers)


def _users(walker: Walker, node: Node, path: str) -> tuple[tuple[str, str], ...]:
    fields = walker.mapping(node, path, None)
    out = []
    for user, (key_node, value) in (fields.entries if fields else {}).items():
        where = fields.at(user) if fields else path
        if not user or ":" in user:
            walker.problem(key_node, where, "a user name must be non-empty and without ':'")
            continue
        digest = walker.string(value, where, expected="a bcrypt hash")
        if digest is not None and not BCRYPT.fullmatch(digest):
            walker.problem(value, where, "not a bcrypt hash (make one with htpasswd -nBC 10)")
        elif digest is not None:
            out.append((user, digest))
    return tuple(sorted(out))


def _http(walker: Walker, node: Node, path: str) -> tuple[tuple[str, str], ...]:
    fields = walker.mapping(node, path, ("headers", "http2"))
    if fields is None:
        return ()
    http2 = fields.read("http2", walker.boolean)
    if http2:
        message = "not supported: the exporter serves HTTP/1.1 only (clients fall back); set false"
        walker.problem(fields.key_node("http2"), fields.at("http2"), message)
    headers = fields.get("headers")
    if headers is None:
        return ()
    entries = walker.mapping(headers, fields.at("headers"), tuple(HEADERS))
    out = []
    for name, (_, value) in (entries.entries if entries else {}).items():
        where = f"{fields.at('headers')}.{name}"
        text = walker.string(value, where, allow_empty=True)
        allowed = HEADERS[name]
        if text is None or not text:
            continue
        if not text.isprintable():
            walker.problem(value, where, "must be printable text on one line")
        elif allowed is not None and text.lower() not in allowed:
            walker.problem(value, where, f"must be one of {', '.join(allowed)}")
        else:
            out.append((name, text))
    return tuple(out)
