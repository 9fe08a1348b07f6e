"""One source's HTTP session: keep-alive, TLS, credentials, bounded bodies, safe URLs.

Every request ends as a :class:`~exporter.model.Response` or a short failure
reason (``timeout``, ``connection_error``, ...), never an exception, and is
counted in the request metrics by HTTP status or that reason.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from exporter import __version__
from exporter.config.model import SourceConfig, TLSConfig
from exporter.config.tls import load_tls
from exporter.files import Fingerprint, fingerprint
from exporter.model import Response
from exporter.polling.auth import Auth, AuthError, Signer

USER_AGENT = f"batch-job-exporter/{__version__}"
# Far above any documented answer (an errors page, a job); a 50 MB body is refused unread.
MAX_BODY = 8 * 1024 * 1024
_CHUNK = 64 * 1024
# How often a client looks at its TLS files: a rotated secret is used within seconds,
# and a request pays only a clock read in between.
TLS_CHECK_INTERVAL = 5.0
LOG = logging.getLogger(__name__)


class RequestStats(Protocol):
    """Where request outcomes are counted (the exporter's own metrics)."""

    def request(self, source: str, code: str, seconds: float) -> None:
        """Count one request by HTTP status code or failure reason."""
        ...


def path_segment(value: str) -> str:
    """``value`` percent-encoded as exactly one path segment.

    ``/`` is encoded, and so are the dot segments ``.`` and ``..``, which URL
    normalisation would otherwise resolve and so change the path.
    """
    if value in {".", ".."}:
        return value.replace(".", "%2E")
    return quote(value, safe="")


def expand(template: str, job_id: str, params: tuple[tuple[str, str], ...]) -> str:
    """Fill a path template; every placeholder becomes one encoded segment."""
    values = {name: path_segment(v) for name, v in params}
    values["id"] = path_segment(job_id)
    return template.format_map(values)


class TLSFiles:
    """A source's SSL context, rebuilt when a file it was loaded from changes.

    Kubernetes rewrites a mounted secret by swapping a symlink, so a file is
    known by its :class:`~exporter.files.Fingerprint` (resolved path, device,
    inode, size, mtime).  A rebuild that fails
    (a half-written file) keeps the last good context; the next change retries.
    """

    def __init__(self, source: str, tls: TLSConfig | None, monotonic: Callable[[], float]) -> None:
        self._source = source
        self._tls = tls
        self._paths = (
            tuple(p for p in (tls.ca_file, tls.cert_file, tls.key_file) if p) if tls else ()
        )
        self._monotonic = monotonic
        self._seen = self._fingerprints()  # before loading: a change in between shows later
        self.context = load_tls(tls)
        self._next_check = monotonic() + TLS_CHECK_INTERVAL
        self._checking = False

    def recheck(self) -> None:
        """Look at the files at the next request (a reload was asked for)."""
        self._next_check = float("-inf")

    async def current(self) -> ssl.SSLContext:
        """The context for a new request."""
        if self._checking or not self._paths or self._monotonic() < self._next_check:
            return self.context
        # Set before awaiting, so concurrent requests keep using the current context and
        # one check runs at a time (an older result never lands after a newer one).
        self._next_check = self._monotonic() + TLS_CHECK_INTERVAL
        self._checking = True
        try:
            # Off the loop: stat() may block on a network volume, loading a bundle takes a while.
            found = await asyncio.to_thread(self._rebuild)
        finally:
            self._checking = False
        # Recorded only here: a request cancelled while the thread ran must not lose a change.
        if found is not None:
            self._seen, rebuilt = found
            if rebuilt is not None:
                self.context = rebuilt
                LOG.info("source %s: TLS files changed, new connections use them", self._source)
        return self.context

    def _rebuild(self) -> tuple[tuple[Fingerprint | None, ...], ssl.SSLContext | None] | None:
        """The files' fingerprints and a context from them, or ``None`` if nothing changed."""
        seen = self._fingerprints()
        if seen == self._seen:
            return None
        try:
            return seen, load_tls(self._tls)
        except (OSError, ValueError) as exc:
            # Once per change: the same fingerprints are not tried again.
            LOG.warning(
                "source %s: TLS files changed but do not load, still using the old ones: %s",
                self._source,
                exc,
            )
            return seen, None

    def _fingerprints(self) -> tuple[Fingerprint | None, ...]:
        return tuple(fingerprint(path) for path in self._paths)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "tls_error"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "invalid_response"
    return "connection_error"


class SourceClient:
    """HTTP access to one source; an async context manager owning its session."""

    def __init__(
        self,
        source: SourceConfig,
        *,
        timeout: float,
        max_connections: int,
        stats: RequestStats,
        monotonic: Callable[[], float],
        wall: Callable[[], float] = time.time,
        sign: Signer | None = None,
    ) -> None:
        self.source = source
        self._stats = stats
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.tls = TLSFiles(source.name, source.tls_config, monotonic)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.auth = Auth(source, self._post_form, monotonic, sign=sign, wall=wall)

    async def __aenter__(self) -> SourceClient:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, template: str, job_id: str, query: Mapping[str, str] | None = None) -> URL:
        """The absolute URL for a job, the ID kept as one path segment."""
        text = self.source.base_url + expand(template, job_id, self.source.path_params)
        if query:
            text += "?" + "&".join(
                f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items()
            )
        # encoded=True: yarl must not decode %2F or resolve %2E%2E back into the path.
        return URL(text, encoded=True)

    async def get(self, url: URL, headers: Mapping[str, str]) -> Response | str:
        """GET without following redirects (002 answers a ``3xx`` when a report is done).

        A signed source's signature headers are added here, from the path as sent.
        """
        return await self._request("GET", url, headers=headers, signed=True)

    async def _post_form(
        self, url: str, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> Response | str:
        return await self._request("POST", URL(url), headers=headers, data=dict(form))

    async def _request(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str],
        data: dict[str, str] | None = None,
        signed: bool = False,
    ) -> Response | str:
        # Before the session is looked at: awaiting a rebuild must not leave us holding a
        # session that a reload closed meanwhile, nor count the rebuild as request time.
        ssl_context = await self.tls.current()
        session = self._session
        if session is None:  # closed by a reload while a slow poll still held it
            return "client_closed"
        if signed:
            try:
                # Last thing before sending: the vendor refuses a timestamp over a minute old.
                # raw_path is the path on the wire (aiohttp sends raw_path_qs), %2F and all.
                headers = {**headers, **self.auth.signed(url.raw_path)}
            except AuthError as exc:  # the secret file went away since headers() read it
                return exc.reason
        started = time.perf_counter()
        code: str
        result: Response | str
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                # aiohttp pools connections by context: a rebuilt one gets new connections.
                ssl=ssl_context,
                server_hostname=self._server_name(),
            ) as resp:
                code = str(resp.status)
                body = await _read_bounded(resp)
                result = (
                    Response(resp.status, resp.headers, body)
                    if body is not None
                    else "body_too_large"
                )
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            code = result = _failure_reason(exc)
        self._stats.request(self.source.name, code, time.perf_counter() - started)
        return result

    def _server_name(self) -> str | None:
        tls = self.source.tls_config
        return tls.server_name if tls is not None else None


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes | None:
    if resp.content_length is not None and resp.content_length > MAX_BODY:
        return None
    parts: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(_CHUNK):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        parts.append(chunk)
    return b"".join(parts)
