"""The web config in force on every listener: TLS per connection, basic auth, extra headers.

One :class:`WebSecurity` is shared by the listeners.  It re-reads the
``--web.config.file`` and the certificates it names when they change (looked
at no more than once a second, when a connection or request comes), so a
rotated certificate is served to new connections without a restart; a broken
new version keeps the last good one, with one log line per change.

Basic auth checks a bcrypt hash in one of two threads of its own (a cost-10
hash takes ~70 ms), at most a few new credentials at once (beyond, refused
without a check), and caches the verdict under an HMAC of the credentials with
a key made at start, so the cache never holds a password and a scrape pays
bcrypt once.  An unknown user is checked against a configured user's hash, so
the time taken does not tell which user names exist.  A reload reads its files
in a worker thread; the version in force serves meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Self

import bcrypt
from aiohttp import web

from exporter.config.tls import TLSFileError
from exporter.config.web import ConfigError, WebConfig, load_web_config, server_context
from exporter.files import Fingerprint, fingerprint

LOG = logging.getLogger("exporter.web")

RECHECK_SECONDS = 1.0
CACHE_SIZE = 1024
BCRYPT_THREADS = 2
# New credentials being checked at once; beyond, a request is refused without a check.
MAX_PENDING = 8
BCRYPT_MAX = 72
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
    # The allowed IP addresses parsed, so 2001:db8::1 matches OpenSSL's 2001:DB8:0:0:0:0:0:1.
    _ips: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = field(
        init=False, default=frozenset()
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ips", frozenset(filter(None, map(_ip, self.allowed_sans))))

    def allows(self, peercert: object) -> bool:
        """Whether the verified client certificate names an allowed SAN (any, if none set)."""
        if not self.allowed_sans:
            return True
        names = peercert.get("subjectAltName", ()) if isinstance(peercert, dict) else ()
        for kind, value in names:
            if kind not in SAN_KINDS:
                continue
            if value in self.allowed_sans or (kind == "IP Address" and _ip(value) in self._ips):
                return True
        return False


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class WebSecurity:
    """The shared, current web config; changed only by its own reloads (see :meth:`refresh`).

    ``require_users`` (the registration API listens beyond loopback with no
    token) refuses a new version without ``basic_auth_users``; turning TLS on
    or off needs a restart too, as with the toolkit.  Use as an async context
    manager, or call :meth:`close`: it owns the bcrypt threads.
    """

    def __init__(
        self,
        path: str | None,
        config: WebConfig,
        *,
        monotonic: Callable[[], float],
        load: Callable[[str], WebConfig] = load_web_config,
        checkpw: Callable[[bytes, bytes], bool] | None = None,
        require_users: bool = False,
    ) -> None:
        self._path = path
        self._load = load
        self._checkpw = checkpw or _checkpw
        self._monotonic = monotonic
        self._require_users = require_users
        self._checked = monotonic()
        self._key = os.urandom(32)
        # Verdicts by HMAC of the credentials, oldest first; bad ones apart, so a flood of
        # wrong passwords cannot push out the right one.
        self._good: dict[bytes, None] = {}
        self._bad: dict[bytes, None] = {}
        self._pending = 0
        # Its own threads: bcrypt must not starve the loop's default pool (DNS, gzip, reloads).
        self._bcrypt = ThreadPoolExecutor(max_workers=BCRYPT_THREADS, thread_name_prefix="bcrypt")
        self._reloading: asyncio.Task[None] | None = None
        self._refused: str | None = None  # the last refusal told, so it is told once
        self._stamps = self._fingerprints(config)
        self._apply(config, _context(config))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop a reload in flight and the bcrypt threads."""
        task, self._reloading = self._reloading, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    @classmethod
    def plain(cls, monotonic: Callable[[], float]) -> WebSecurity:
        """No web config: no TLS, no authentication, no extra headers."""
        return cls(None, WebConfig(), monotonic=monotonic)

    @property
    def config(self) -> WebConfig:
        """The web config in force."""
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
        """Start a reload, in a thread, if the file or one it names changed since the last one.

        Looks (a few ``stat`` calls) at most once a second.  A version that is
        refused keeps the last good one, is told once, and is tried again each
        second: the certificate it names may only arrive later.
        """
        now = self._monotonic()
        if self._path is None or now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        if self._reloading is not None or self._fingerprints(self._config) == self._stamps:
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload(self._path))
        self._reloading.add_done_callback(self._reloaded)

    async def settle(self) -> None:
        """Wait for a reload in flight (tests, and a caller that must see the new version)."""
        if self._reloading is not None:
            await asyncio.gather(self._reloading, return_exceptions=True)

    async def _reload(self, path: str) -> None:
        try:
            config, context = await asyncio.to_thread(self._build, path)
        except (ConfigError, TLSFileError, _Refused) as exc:
            why = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
            if why != self._refused:
                LOG.error("web config change refused, the last good one stays: %s", why)
                self._refused = why
            return
        self._refused = None
        self._stamps = self._fingerprints(config)
        self._apply(config, context)
        LOG.info("web config reloaded from %s", path)

    def _reloaded(self, task: asyncio.Task[None]) -> None:
        self._reloading = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            LOG.error("reloading the web config failed", exc_info=exc)

    def _build(self, path: str) -> tuple[WebConfig, ssl.SSLContext | None]:
        """Load and check a new version (in a worker thread: it reads files)."""
        config = self._load(path)
        if (config.tls is None) != (self._config.tls is None):
            raise _Refused("turning TLS on or off takes a restart")
        if self._require_users and not config.basic_auth_users:
            raise _Refused(
                "basic_auth_users cannot be emptied while the registration API relies on it "
                "(a non-loopback address without --api.token-file)"
            )
        return config, _context(config)

    async def authenticate(self, header: str | None) -> str | None:
        """The user an ``Authorization: Basic`` header proves, or ``None``."""
        users = self._config.basic_auth_users
        credentials = _credentials(header)
        if credentials is None or not users:
            return None
        user, password = credentials
        known = dict(users).get(user)
        # An unknown user is checked against a real user's hash: the same cost, so the time
        # taken does not tell which names exist; the verdict is False whatever it says.
        hashed = (known or users[0][1]).encode()
        secret = password.encode()[:BCRYPT_MAX]  # bcrypt reads 72 bytes, as htpasswd and Go do
        key = hmac.new(self._key, b"\0".join((user.encode(), secret, hashed)), "sha256").digest()
        if key in self._good:
            return user
        if key in self._bad:
            return None
        if self._pending >= MAX_PENDING:  # a flood of new guesses: refuse, do not queue
            return None
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            verdict = await loop.run_in_executor(self._bcrypt, self._checkpw, secret, hashed)
        finally:
            self._pending -= 1
        verdict = verdict and known is not None
        _remember(self._good if verdict else self._bad, key)
        return user if verdict else None

    def cached_keys(self) -> list[bytes]:
        """The keys of the verdict caches (HMACs of credentials, never a password)."""
        return [*self._good, *self._bad]

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

    def _apply(self, config: WebConfig, context: ssl.SSLContext | None) -> None:
        tls = config.tls
        self._tls = (
            None
            if tls is None or context is None
            else ServerTLS(context, frozenset(tls.client_allowed_sans))
        )
        self._config = config
        self._good.clear()
        self._bad.clear()

    def _fingerprints(self, config: WebConfig) -> tuple[Fingerprint | None, ...]:
        paths = () if self._path is None else (self._path, *config.files())
        return tuple(fingerprint(p) for p in paths)


def _credentials(header: str | None) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic`` value, or ``None`` if it is not one."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _context(config: WebConfig) -> ssl.SSLContext | None:
    """The server TLS context of ``config`` (:class:`TLSFileError` if its files fail now)."""
    return None if config.tls is None else server_context(config.tls)


def _remember(cache: dict[bytes, None], key: bytes) -> None:
    if len(cache) >= CACHE_SIZE:
        del cache[next(iter(cache))]  # the oldest
    cache[key] = None


class _Refused(Exception):
    """A new web config that loads but may not replace the one in force."""


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt cannot read: the config check makes this rare
        return False
