"""One request to a source through its gate, and what the answer does to the source.

Retry-After (429, and 503 with it) closes the source for its window, counted
once however many polls meet it; 5xx, timeouts and refused connections back it
off; refused credentials hold it for :data:`AUTH_RETRY` with one log line; an
OAuth2 token is renewed once after a 401.  Anything but an answer to parse
raises :class:`~exporter.polling.outcomes.PollFailed` (or ``Deferred`` when the
gate is closed), so the poller sees answers only.
"""

from __future__ import annotations

import logging
from typing import NoReturn, Protocol

from yarl import URL

from exporter.clock import Clock
from exporter.model import Response
from exporter.polling.auth import AUTH_REFUSED, AuthError, token_refused
from exporter.polling.gate import parse_retry_after
from exporter.polling.outcomes import Deferred, PollFailed
from exporter.polling.runtime import PollClient, Runtime

__all__ = ["AUTH_RETRY", "RATE_LIMIT_CODES", "PollStats", "SourceRequests"]

# The poller's logger: these lines are about its polls, and operators filter on it.
LOG = logging.getLogger("exporter.polling.poller")

# Credentials refused: ask again this rarely, so a wrong key does not hammer the vendor.
AUTH_RETRY = 300.0
RATE_LIMIT_CODES = frozenset({429, 503})
# Jobs put back after a closed window return spread over at most this long.
SPREAD_MAX = 30.0
Src = Runtime[PollClient]


class PollStats(Protocol):
    """The exporter's own counters the poller feeds."""

    def rate_limited(self, source: str) -> None:
        """Count a 429/503 answer."""
        ...

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        """Count seconds a rate-limit answer added to the source's closed window."""
        ...

    def poll_failed(self, source: str, reason: str) -> None:
        """Count a failed poll by reason."""
        ...


class SourceRequests:
    """Sends the poller's requests through each source's gate and applies its manners."""

    def __init__(self, *, clock: Clock, stats: PollStats) -> None:
        self._clock = clock
        self._stats = stats

    async def get(self, src: Src, url: URL) -> Response:
        """One request through the gate; anything but an answer to parse raises PollFailed."""
        gate = src.gate
        wait = gate.acquire(self._clock.monotonic())
        if wait > 0:
            # Not a failure of the job: the source asked us to wait, so we do.
            raise Deferred(self._after(src, wait))
        resp = await self._send(src, url)
        # An OAuth2 token can expire early on the vendor's side: renew it once, right away,
        # rather than treating a stale token like wrong credentials.
        if resp.status == 401 and src.client.auth.invalidate():
            # Another poll may have closed the gate while this one was in flight.
            if wait := gate.closed_for(self._clock.monotonic()):
                raise Deferred(self._after(src, wait))
            resp = await self._send(src, url)
        name = src.client.source.name
        now = self._clock.monotonic()
        if resp.status in RATE_LIMIT_CODES:
            return self._rate_limited(src, resp, now)
        if resp.status in AUTH_REFUSED:
            raise self._refused(src, resp, now, "unauthorized", "")
        if resp.status >= 500:
            window = gate.failure(now)
            LOG.warning("source %s: HTTP %d; backing off %.1fs", name, resp.status, window)
            raise PollFailed("server_error", self._after(src, window))
        if src.auth_failing:
            LOG.info("source %s: credentials accepted again", name)
            src.auth_failing = False
        gate.success()
        return resp

    @staticmethod
    def _after(src: Src, wait: float) -> float:
        """When to come back: after ``wait``, spread so waiting jobs do not return at once.

        A rate-capped source's returning polls queue in its budget, which meters them.
        """
        if src.budget is not None:
            return wait
        return src.gate.spread(wait, min(src.interval, SPREAD_MAX))

    async def _send(self, src: Src, url: URL) -> Response:
        try:
            headers = await src.client.auth.headers()
        except AuthError as exc:
            raise self._auth_failed(src, exc) from None
        resp = await src.client.get(url, headers)
        if isinstance(resp, str):
            window = src.gate.failure(self._clock.monotonic())
            name = src.client.source.name
            LOG.warning("source %s: request failed (%s); backing off %.1fs", name, resp, window)
            raise PollFailed(resp, self._after(src, window))
        return resp

    def _auth_failed(self, src: Src, exc: AuthError) -> Exception:
        """What a failure to get credentials (an OAuth2 token) does to the poll and source."""
        now = self._clock.monotonic()
        resp = exc.response
        if exc.shared:
            # The poll whose token request this was has counted it, logged it and closed the
            # source if it should be: counting it again would double the metrics and backoff.
            wait = src.gate.closed_for(now)
            if wait:
                return Deferred(self._after(src, wait))
            return PollFailed(exc.reason, self._after(src, 0.0))
        if resp is not None and resp.status in RATE_LIMIT_CODES:
            self._rate_limited(src, resp, now)
        if resp is not None and token_refused(resp):
            return self._refused(src, resp, now, exc.reason, " by the OAuth2 token endpoint")
        LOG.error("source %s: %s", src.client.source.name, exc)
        window = src.gate.failure(now)
        return PollFailed(exc.reason, self._after(src, window))

    def _refused(self, src: Src, resp: Response, now: float, reason: str, where: str) -> PollFailed:
        """Credentials refused: one error line, then the source is asked again only rarely."""
        gate = src.gate
        gate.hold(now, max(AUTH_RETRY, src.interval))
        if not src.auth_failing:
            detail = src.spec.error_text(resp) or ""
            LOG.error(
                "source %s: credentials refused%s (HTTP %d) %s",
                src.client.source.name,
                where,
                resp.status,
                detail,
            )
        src.auth_failing = True
        return PollFailed(reason, gate.spread(gate.closed_for(now), src.interval))

    def _rate_limited(self, src: Src, resp: Response, now: float) -> NoReturn:
        name = src.client.source.name
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock.time())
        if resp.status == 503 and retry_after is None:
            window = src.gate.failure(now)
            LOG.warning("source %s: HTTP 503; backing off %.1fs", name, window)
            raise PollFailed("server_error", self._after(src, window))
        self._stats.rate_limited(name)
        closed_before = src.gate.closed_for(now)
        window = src.gate.retry_after(now, retry_after)
        # Only what this answer adds: concurrent 429s share one window, counted once.
        self._stats.rate_limit_wait(name, src.gate.closed_for(now) - closed_before)
        LOG.warning(
            "source %s: rate limited (HTTP %d); no requests for %.1fs", name, resp.status, window
        )
        raise PollFailed("rate_limited", self._after(src, window))
