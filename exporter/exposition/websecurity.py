"""The web config in force on every listener: TLS per connection, basic auth, extra headers.

One :class:`WebSecurity` is shared by the listeners.  It re-reads the
``--web.config.file`` and the certificates it names when they change (looked
at no more than once a second, when a connection or request comes), so a
rotated certificate is served to new connections without a restart; a broken
new version keeps the last good one, with one log line per change.

Basic auth checks a bcrypt hash in a worker thread (a cost-10 hash takes
~70 ms) and caches the verdict under an HMAC of the credentials with a key
made at start, so the cache never holds a password and a scrape pays bcrypt
once.  An unknown user is checked against a dummy hash, so the time taken does
not tell which user names exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import bcrypt
from aiohttp import web

from exporter.config.tls import TLSFileError
from exporter.config.web import ConfigError, WebConfig, load_web_config, server_context
from exporter.files import Fingerprint, fingerprint

LOG = logging.getLogger("exporter.web")

RECHECK_SECONDS = 1.0
CACHE_SIZE = 1024
# A real cost-10 bcrypt hash of a random string: unknown users cost what known ones do.
DUMMY_HASH = b"$2b$10$pyvPX/MB0IknYdApnyEsuOQK33VB4ahfj.YJmGitSATGCkTJa/vJ2"
SAN_KINDS = ("DNS", "IP Address", "email", "URI")
# Set on a request that basic auth let in: the user's name.
WEB_USER = web.RequestKey("web_user", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorResponse = Callable[[int, str], web.Response]


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The TLS a new connection gets: a context, and which client SANs may connect."""

    context: ssl.SSLContext
    allowed_sans: frozenset[str] = frozenset()

    def allows(self, peercert: object) -> bool:
        """Whether the verified client certificate names an allowed SAN (any, if none set)."""
        if not self.allowed_sans:
            return True
        names = peercert.get("subjectAltName", ()) if isinstance(peercert, dict) else ()
        return any(kind in SAN_KINDS and value in self.allowed_sans for kind, value in names)


class WebSecurity:
    """The shared, current web config; changed only by :meth:`refresh`."""

    def __init__(
        self,
        path: str | None,
        config: WebConfig,
        *,
        monotonic: Callable[[], float],
        load: Callable[[str], WebConfig] = load_web_config,
        checkpw: Callable[[bytes, bytes], bool] | None = None,
    ) -> None:
        self._path = path
        self._load = load
        self._checkpw = checkpw or _checkpw
        self._monotonic = monotonic
        self._checked = monotonic()
        self._key = os.urandom(32)
        self._cache: dict[bytes, bool] = {}
        self._stamps = self._fingerprints(config)
        self._apply(config)

    @classmethod
    def plain(cls, monotonic: Callable[[], float]) -> WebSecurity:
        """No web config: no TLS, no authentication, no extra headers."""
        return cls(None, WebConfig(), monotonic=monotonic)

    @property
    def config(self) -> WebConfig:
        """The web config in force (after a refresh)."""
        self.refresh()
        return self._config

    @property
    def authenticates(self) -> bool:
        """Whether basic auth is required (``basic_auth_users`` is not empty)."""
        return bool(self.config.basic_auth_users)

    def tls(self) -> ServerTLS | None:
        """The TLS for a connection arriving now, or ``None`` for plain HTTP."""
        self.refresh()
        return self._tls

    def refresh(self) -> None:
        """Re-read the web config if it or one of its files changed; keep the last good one."""
        now = self._monotonic()
        if self._path is None or now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        stamps = self._fingerprints(self._config)
        if stamps == self._stamps:
            return
        self._stamps = stamps  # a broken version is told once, not every second
        try:
            config = self._load(self._path)
            self._apply(config)
        except (ConfigError, TLSFileError) as exc:
            why = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
            LOG.error("web config change refused, the last good one stays: %s", why)
            return
        self._stamps = self._fingerprints(config)
        LOG.info("web config reloaded from %s", self._path)

    async def authenticate(self, header: str | None) -> str | None:
        """The user an ``Authorization: Basic`` header proves, or ``None``."""
        users = dict(self._config.basic_auth_users)
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        known = users.get(user)
        hashed = known.encode() if known else DUMMY_HASH
        message = b"\0".join((user.encode(), password.encode(), hashed))
        key = hmac.new(self._key, message, hashlib.sha256).digest()
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = await asyncio.to_thread(self._checkpw, password.encode(), hashed)
            verdict = verdict and known is not None
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = verdict
        return user if verdict else None

    def cached_keys(self) -> list[bytes]:
        """The keys of the verdict cache (HMACs of credentials, never a password)."""
        return list(self._cache)

    def prepare(
        self,
        app: web.Application,
        *,
        open_paths: Collection[str],
        error_response: ErrorResponse,
        bypass: Callable[[web.Request], bool] | None = None,
    ) -> None:
        """Guard ``app``: basic auth outside ``open_paths`` (unless ``bypass``), extra headers."""

        @web.middleware
        async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in open_paths or not self.authenticates:
                return await handler(request)
            if bypass is not None and bypass(request):
                return await handler(request)
            user = await self.authenticate(request.headers.get("Authorization"))
            if user is None:
                resp = error_response(401, "unauthorized")
                resp.headers["WWW-Authenticate"] = 'Basic realm="batch-job-exporter"'
                return resp
            request[WEB_USER] = user
            return await handler(request)

        async def headers(_: web.Request, response: web.StreamResponse) -> None:
            # Set last, so a header of the web config replaces the page's own (its CSP).
            for name, value in self._config.headers:
                response.headers[name] = value

        app.middlewares.append(basic_auth)
        app.on_response_prepare.append(headers)

    def _apply(self, config: WebConfig) -> None:
        """Switch to ``config``; :class:`TLSFileError` (and no switch) if its files fail now."""
        tls = config.tls
        self._tls = (
            None
            if tls is None
            else ServerTLS(server_context(tls), frozenset(tls.client_allowed_sans))
        )
        self._config = config
        self._cache.clear()

    def _fingerprints(self, config: WebConfig) -> tuple[Fingerprint | None, ...]:
        paths = () if self._path is None else (self._path, *config.files())
        return tuple(fingerprint(p) for p in paths)


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt cannot read: the config check makes this rare
        return False
