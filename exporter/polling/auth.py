"""Request credentials from Prometheus-style config: headers, basic auth, OAuth2, signatures.

Secrets are read when used, through a cache that re-checks the file's
:class:`~exporter.files.Fingerprint` at most once a second, so a rotated
Kubernetes secret (a swapped ``..data`` symlink) is picked up without a restart
and without a file read per request.  Nothing here logs a secret's value.

A signed source (Evocalize's ``evocalize_signature``) gets its signature per
request from :meth:`Auth.signed`, which the client calls with the path exactly
as it goes on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from exporter.config.model import OAuth2, Secret, SourceConfig
from exporter.files import Fingerprint, stat_file
from exporter.model import Response

# Fetch a token: (url, form fields, headers) -> response, or a failure reason.
TokenPost = Callable[[str, Mapping[str, str], Mapping[str, str]], Awaitable["Response | str"]]
# An API's request signing (ApiSpec.sign): (path as sent, Unix seconds, key ID, secret) -> headers.
Signer = Callable[[str, int, str, str], tuple[tuple[str, str], ...]]

RECHECK_SECONDS = 1.0
# A token is renewed this long before the expiry its issuer announced.
TOKEN_MARGIN = 60.0
# RFC 6749 makes expires_in optional; without it, renew often rather than use a dead token.
DEFAULT_TOKEN_TTL = 300.0
# The answers that refuse credentials, from an API and a token endpoint alike.
AUTH_REFUSED = frozenset({401, 403})
# RFC 6749 5.2: a 400 with one of these says the client credentials themselves are refused,
# as a 401 does; retrying soon cannot help.  OAuth servers name it ``error``, Talkdesk ``code``.
REFUSED_GRANT_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client"})


def token_refused(resp: Response) -> bool:
    """Whether a token endpoint's answer refuses the credentials (not a passing failure)."""
    if resp.status in AUTH_REFUSED:
        return True
    body = resp.json_object() if resp.status == 400 else None
    if body is None:
        return False
    return any(
        isinstance(v := body.get(key), str) and v in REFUSED_GRANT_ERRORS
        for key in ("error", "code")
    )


class AuthError(Exception):
    """Credentials could not be obtained; ``reason`` is a metric-safe word.

    ``response`` is the token endpoint's answer when it sent one, so the caller
    can honour a 429's Retry-After or a 401 like any other answer.  ``shared``
    marks a failure handed to a poll that waited for another poll's fetch: that
    poll has already reported it.
    """

    def __init__(
        self, reason: str, message: str, response: Response | None = None, *, shared: bool = False
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.response = response
        self.shared = shared


class SecretCache:
    """Current values of secrets; files are re-read only when they change."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._files: dict[str, tuple[float, Fingerprint, str]] = {}

    def get(self, secret: Secret) -> str:
        """The secret's value now; an unreadable file raises :class:`AuthError`."""
        if secret.file is None:
            return secret.read()
        now = self._monotonic()
        cached = self._files.get(secret.file)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            return cached[2]
        try:
            stamp, _ = stat_file(secret.file)
            value = cached[2] if cached is not None and cached[1] == stamp else secret.read()
        except OSError as exc:
            raise AuthError(
                "secret_unreadable", f"cannot read {secret.describe()}: {exc.strerror}"
            ) from None
        self._files[secret.file] = (now, stamp, value)
        return value


@dataclass(slots=True)
class _Token:
    value: str
    renew_at: float


class Auth:
    """The headers one source's requests carry."""

    def __init__(
        self,
        source: SourceConfig,
        post: TokenPost,
        monotonic: Callable[[], float],
        *,
        sign: Signer | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if source.signature is not None and sign is None:
            raise ValueError(f"API {source.api} does not sign requests")
        self._source = source
        self._post = post
        self._monotonic = monotonic
        self._sign = sign
        self._wall = wall
        self._secrets = SecretCache(monotonic)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._fetches = 0
        self._fetch_failed: AuthError | None = None

    async def headers(self) -> dict[str, str]:
        """Every header to send; may fetch an OAuth2 token first."""
        src = self._source
        out: dict[str, str] = {}
        for header in src.http_headers:
            values = [*header.values, *(self._secrets.get(s) for s in header.secrets)]
            out[header.name] = ", ".join(values)
        if src.authorization is not None:
            creds = self._secrets.get(src.authorization.credentials)
            out["Authorization"] = f"{src.authorization.type} {creds}"
        elif src.basic_auth is not None:
            pw = src.basic_auth.password
            out["Authorization"] = _basic(
                src.basic_auth.username, self._secrets.get(pw) if pw else ""
            )
        elif src.oauth2 is not None:
            out["Authorization"] = f"Bearer {await self._bearer(src.oauth2)}"
        if src.signature is not None:
            # Read here too, so an unreadable secret fails as every other credential does
            # (AuthError, before the request); the signature itself needs the path.
            self._secrets.get(src.signature.secret)
        return out

    def signed(self, path: str) -> dict[str, str]:
        """The signature headers of one request for ``path`` (raw, as sent) now; may be none.

        The timestamp is the wall clock's whole Unix seconds.  An unreadable
        secret raises :class:`AuthError`.
        """
        signature = self._source.signature
        if signature is None or self._sign is None:
            return {}
        secret = self._secrets.get(signature.secret)
        return dict(self._sign(path, int(self._wall()), signature.key_id, secret))

    def invalidate(self) -> bool:
        """Forget the OAuth2 token after the API refused it; whether there was one."""
        had, self._token = self._token is not None, None
        return had

    async def _bearer(self, oauth: OAuth2) -> str:
        token = self._token
        if token is not None and self._monotonic() < token.renew_at:
            return token.value
        fetches = self._fetches
        # One fetch serves every poll that was waiting for it, a refusal too: a poll asking
        # again right after a 429 or a 401 would do so inside the window it just opened.
        async with self._token_lock:
            failed = self._fetch_failed
            if failed is not None and self._fetches != fetches:
                raise AuthError(failed.reason, str(failed), failed.response, shared=True)
            token = self._token
            if token is None or self._monotonic() >= token.renew_at:
                self._fetch_failed = None  # a cancelled fetch must not leave an old failure
                try:
                    token = self._token = await self._fetch_token(oauth)
                except AuthError as exc:
                    self._fetch_failed = exc
                    raise
                finally:
                    self._fetches += 1  # counts finished fetches, so waiters can tell one ended
        return token.value

    async def _fetch_token(self, oauth: OAuth2) -> _Token:
        form = {"grant_type": "client_credentials", **dict(oauth.endpoint_params)}
        if oauth.scopes:
            form["scope"] = " ".join(oauth.scopes)
        auth = _basic(oauth.client_id, self._secrets.get(oauth.client_secret))
        answer = await self._post(oauth.token_url, form, {"Authorization": auth})
        if isinstance(answer, str):
            raise AuthError("oauth2_token", f"token request failed: {answer}")
        if answer.status != 200:
            raise AuthError("oauth2_token", f"token endpoint answered HTTP {answer.status}", answer)
        body = answer.json_object() or {}
        value = body.get("access_token")
        expires = body.get("expires_in", DEFAULT_TOKEN_TTL)
        if not isinstance(value, str) or not value or not isinstance(expires, (int, float, str)):
            raise AuthError("oauth2_token", "token endpoint sent no access_token")
        try:
            ttl = float(expires)
        except (ValueError, OverflowError):
            raise AuthError("oauth2_token", "token endpoint sent no access_token") from None
        margin = min(TOKEN_MARGIN, ttl / 10)
        return _Token(value, self._monotonic() + max(ttl - margin, 1.0))


def _basic(user: str, password: str) -> str:
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
