"""The poller's politeness towards a source, path by path, with a fake client on the fake clock.

No HTTP and no scheduler: each test calls :meth:`Poller.poll` itself, scripts
the answers, and checks what was sent when, what the table holds, what was
counted and the delay returned.  Jitter comes from a seeded rng; the expected
values are drawn from a second rng with the same seed, in the same order.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from yarl import URL

from exporter.clock import FakeClock
from exporter.config import SourceConfig
from exporter.jobs.table import JobTable
from exporter.model import ErrorsPage, Response, Snapshot, Status, VendorError
from exporter.polling.asking import AUTH_RETRY
from exporter.polling.auth import AuthError
from exporter.polling.errors_read import MAX_ERROR_PAGES
from exporter.polling.gate import Backoff, SourceGate
from exporter.polling.poller import Poller
from exporter.polling.runtime import Runtime
from exporter.vendors.base import ApiSpec

SEED = 11
INTERVAL = 10.0
SOURCE = "src"
A, B = (SOURCE, "a"), (SOURCE, "b")


def parse_job(resp: Response) -> Snapshot:
    """The fake API's job: ``{"status": ..., "left": ...}``; not JSON is a VendorError."""
    try:
        body = json.loads(resp.body)
    except ValueError:
        raise VendorError("invalid_json", "the job is not JSON") from None
    return Snapshot(Status(body["status"]), body["status"], remaining_items=body.get("left"))


def _parse_errors(resp: Response) -> ErrorsPage:
    """The fake API's errors page: ``{"counts": {code: n}, "next": token}``."""
    body = json.loads(resp.body)
    return ErrorsPage(tuple(sorted(body["counts"].items())), body.get("next"))


SPEC = ApiSpec(
    name="fake_api",
    vendor="Fake",
    default_path="jobs/{id}",
    parse_job=parse_job,
    default_errors_path="jobs/{id}/errors",
    parse_errors_page=_parse_errors,
)


def answer(status: int, body: object = None, **headers: str) -> Response:
    """A scripted answer; ``body`` as JSON (empty without one)."""
    data = b"" if body is None else json.dumps(body).encode()
    return Response(status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


RUNNING = answer(200, {"status": "running", "left": 5})
DONE = answer(200, {"status": "completed", "left": 0})


class Hold:
    """Keeps the calls that reach it waiting until released: that many polls in flight at once.

    The first ``skip`` calls pass straight through.
    """

    def __init__(self, count: int, *, skip: int = 0) -> None:
        self._count = count
        self._skip = skip
        self._waiting = 0
        self.arrived = asyncio.Event()  # set once ``count`` calls are waiting
        self.release = asyncio.Event()

    async def wait(self) -> None:
        """Wait for the release (or, while skipping, not at all)."""
        if self._skip:
            self._skip -= 1
            return
        self._waiting += 1
        if self._waiting == self._count:
            self.arrived.set()
        await self.release.wait()


class FakeAuth:
    """Credentials: plain headers, or an OAuth2 token fetched when there is none.

    Each call takes the next ``script`` step first: an :class:`AuthError` to
    raise (after the ``hold``, if any), or ``None`` to answer as usual.
    """

    def __init__(self, *, oauth: bool) -> None:
        self._oauth = oauth
        self._token: str | None = None
        self.tokens = 0
        self.script: list[AuthError | None] = []
        self.hold: Hold | None = None

    async def headers(self) -> Mapping[str, str]:
        """A bearer token (fetching one if forgotten) or a fixed key; or the scripted error."""
        step = self.script.pop(0) if self.script else None
        if self.hold is not None:
            await self.hold.wait()
        if step is not None:
            raise step
        if not self._oauth:
            return {"X-Key": "k"}
        if self._token is None:
            self.tokens += 1
            self._token = f"t{self.tokens}"
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> bool:
        """Forget the token; whether there was one."""
        had, self._token = self._token is not None, None
        return had


@dataclass
class Sent:
    """One request the fake received."""

    at: float  # monotonic
    path: str
    headers: Mapping[str, str]


class FakeClient:
    """A source that answers from a script, then with ``default``, and notes each request.

    With a ``hold``, each answer waits for its release (the request is noted at once).
    """

    def __init__(self, source: SourceConfig, clock: FakeClock, *, oauth: bool) -> None:
        self.source = source
        self.auth = FakeAuth(oauth=oauth)
        self._clock = clock
        self.script: list[Response | str] = []
        self.default: Response | str = RUNNING
        self.sent: list[Sent] = []
        self.hold: Hold | None = None

    def url(self, template: str, job_id: str, query: Mapping[str, str] | None = None) -> URL:
        """The job's URL (IDs here need no escaping)."""
        text = self.source.base_url + template.format(id=job_id)
        return URL(text + ("?" + urlencode(query) if query else ""))

    async def get(self, url: URL, headers: Mapping[str, str]) -> Response | str:
        """The next scripted answer."""
        self.sent.append(Sent(self._clock.monotonic(), url.path_qs, dict(headers)))
        resp = self.script.pop(0) if self.script else self.default
        if self.hold is not None:
            await self.hold.wait()
        return resp


@dataclass
class Stats:
    """The poller's counters, counted exactly."""

    limited: Counter[str] = field(default_factory=Counter)
    waited: dict[str, float] = field(default_factory=dict)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)

    def rate_limited(self, source: str) -> None:
        """Count a 429/503."""
        self.limited[source] += 1

    def rate_limit_wait(self, source: str, seconds: float) -> None:
        """Count closed seconds."""
        self.waited[source] = self.waited.get(source, 0.0) + seconds

    def poll_failed(self, source: str, reason: str) -> None:
        """Count a failed poll."""
        self.failed[source, reason] += 1


@dataclass
class Rig:
    """A poller over one fake source and its jobs, and what it touches."""

    clock: FakeClock
    table: JobTable
    client: FakeClient
    runtime: Runtime[FakeClient]
    stats: Stats
    poller: Poller

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [s.path for s in self.client.sent]


def rig(
    *,
    jobs: tuple[str, ...] = ("a", "b"),
    oauth: bool = False,
    max_rate: float | None = None,
    max_error_pages: int = MAX_ERROR_PAGES,
) -> Rig:
    """Jobs of one source on a fake clock; one seeded rng for the gate and the poller."""
    clock = FakeClock()
    rng = random.Random(SEED)
    source = SourceConfig(
        name=SOURCE, api=SPEC.name, base_url="https://vendor.test/", path=SPEC.default_path,
        poll_interval=INTERVAL, max_requests_per_second=max_rate,
    )  # fmt: skip
    client = FakeClient(source, clock, oauth=oauth)
    gate = SourceGate(max_rate=max_rate, backoff=Backoff(), rng=rng)
    runtime = Runtime(SPEC, client, gate, INTERVAL)
    table = JobTable(retention=600)
    for job_id in jobs:
        table.add((SOURCE, job_id), SPEC.name)
    stats = Stats()
    poller = Poller(
        {SOURCE: runtime}, table, clock=clock, rng=rng, stats=stats,
        max_error_pages=max_error_pages,
    )  # fmt: skip
    return Rig(clock, table, client, runtime, stats, poller)


def spread(rng: random.Random, wait: float) -> float:
    """What the gate's spread of ``wait`` over one interval draws next."""
    return wait + rng.random() * INTERVAL


def backoff(rng: random.Random, failures: int, base: float = 1.0) -> float:
    """What an exponential backoff after ``failures`` draws next (jitter in [0.5, 1))."""
    return base * 2.0 ** (failures - 1) * (0.5 + rng.random() / 2)


def closed_left(start: float, window: float, now: float) -> float:
    """What the gate says is left of a window opened at ``start``, in its own float arithmetic."""
    return start + window - now


async def together(
    r: Rig, hold: Hold, *keys: tuple[str, str], meanwhile: Callable[[], object] = lambda: None
) -> list[float | None]:
    """Poll ``keys`` at once; once all are held, call ``meanwhile`` and release; their delays."""
    polls = [asyncio.ensure_future(r.poller.poll(key)) for key in keys]
    arrived = asyncio.ensure_future(hold.arrived.wait())
    try:
        await asyncio.wait([arrived, *polls], return_when=asyncio.FIRST_COMPLETED)
        assert hold.arrived.is_set(), "a poll ended before reaching the hold"
        meanwhile()
        hold.release.set()
        return list(await asyncio.gather(*polls))
    finally:
        for task in (arrived, *polls):
            task.cancel()


def poll_success(r: Rig, key: tuple[str, str]) -> bool | None:
    """The job's poll_success in the table."""
    entry = r.table.get(key)
    assert entry is not None
    return entry.poll_success


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_a_429_closes_the_source_and_nothing_is_sent_inside_its_window(form: str) -> None:
    """Retry-After (seconds or an HTTP-date) closes the source; other jobs wait unsent."""
    r = rig()
    expect = random.Random(SEED)
    start = r.clock.monotonic()
    value = "30" if form == "seconds" else email.utils.formatdate(r.clock.time() + 30, usegmt=True)
    r.client.script = [answer(429, Retry_After=value)]
    assert await r.poller.poll(A) == spread(expect, 30)
    r.clock.advance(10)
    assert await r.poller.poll(B) == spread(expect, 20)  # deferred: the window has 20 s left
    r.clock.advance(19.5)
    assert await r.poller.poll(A) == spread(expect, 0.5)
    assert [s.at for s in r.client.sent] == [start]
    r.clock.advance(0.5)
    assert await r.poller.poll(B) == INTERVAL
    assert [s.at for s in r.client.sent] == [start, start + 30]
    assert (r.stats.limited, r.stats.waited) == (Counter({SOURCE: 1}), {SOURCE: 30.0})
    assert r.stats.failed == Counter({(SOURCE, "rate_limited"): 1})
    assert (poll_success(r, A), poll_success(r, B)) == (False, True)


async def test_a_503_without_retry_after_backs_the_source_off() -> None:
    """A bare 503 is a server error: a jittered backoff, not counted as a rate limit."""
    r = rig()
    expect = random.Random(SEED)
    r.client.script = [answer(503)]
    now = r.clock.monotonic()
    window = backoff(expect, 1)
    assert await r.poller.poll(A) == spread(expect, window)
    left = closed_left(now, window, now)
    assert r.runtime.gate.closed_for(now) == left
    assert await r.poller.poll(B) == spread(expect, left)  # deferred, unsent
    assert len(r.client.sent) == 1
    assert (r.stats.limited, r.stats.waited) == (Counter(), {})
    assert r.stats.failed == Counter({(SOURCE, "server_error"): 1})


async def test_server_errors_back_off_exponentially_with_seeded_jitter() -> None:
    """Each 5xx in a row doubles the closed window; a good answer starts it over."""
    r = rig(jobs=("a",))
    expect = random.Random(SEED)
    r.client.script = [answer(500), answer(502), RUNNING, answer(500)]
    first = backoff(expect, 1)
    assert await r.poller.poll(A) == spread(expect, first)
    r.clock.advance(first)
    now = r.clock.monotonic()
    second = backoff(expect, 2)
    assert await r.poller.poll(A) == spread(expect, second)
    assert r.runtime.gate.closed_for(now) == closed_left(now, second, now)
    r.clock.advance(second)
    assert await r.poller.poll(A) == INTERVAL
    again = backoff(expect, 1)
    assert await r.poller.poll(A) == spread(expect, again)
    assert r.stats.failed == Counter({(SOURCE, "server_error"): 3})
    assert len(r.client.sent) == 4


async def test_refused_credentials_hold_the_source_and_log_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """401 then 403: the source is asked once per 300 s, with one error line in all."""
    r = rig()
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    start = r.clock.monotonic()
    r.client.script = [answer(401, {"code": "E401", "message": "bad key"}), answer(403)]
    assert await r.poller.poll(A) == spread(expect, AUTH_RETRY)
    r.clock.advance(100)
    assert await r.poller.poll(B) == spread(expect, AUTH_RETRY - 100)
    r.clock.advance(AUTH_RETRY - 100)
    assert await r.poller.poll(A) == spread(expect, AUTH_RETRY)
    assert [s.at for s in r.client.sent] == [start, start + AUTH_RETRY]
    errors = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert errors == ["source src: credentials refused (HTTP 401) E401: bad key"]
    assert r.stats.failed == Counter({(SOURCE, "unauthorized"): 2})
    failing = [r.runtime.auth_failing]
    r.clock.advance(AUTH_RETRY)
    assert await r.poller.poll(A) == INTERVAL
    assert [*failing, r.runtime.auth_failing] == [True, False]
    infos = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.INFO]
    assert infos == ["source src: credentials accepted again"]


async def test_a_401_with_an_oauth2_token_renews_it_once() -> None:
    """A refused token is fetched again and the request resent, once: a second 401 is final."""
    r = rig(oauth=True)
    expect = random.Random(SEED)
    r.client.script = [answer(401), RUNNING]
    assert await r.poller.poll(A) == INTERVAL
    assert [s.headers for s in r.client.sent] == [
        {"Authorization": "Bearer t1"},
        {"Authorization": "Bearer t2"},
    ]
    r.client.script = [answer(401), answer(401)]
    assert await r.poller.poll(B) == spread(expect, AUTH_RETRY)
    assert (len(r.client.sent), r.client.auth.tokens) == (4, 3)
    assert r.stats.failed == Counter({(SOURCE, "unauthorized"): 1})


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The poller's log lines at exactly ``level``."""
    return [
        rec.getMessage()
        for rec in caplog.records
        if rec.name == "exporter.polling.poller" and rec.levelno == level
    ]


@pytest.mark.parametrize("reason", ["timeout", "connection_error"])
async def test_a_transport_failure_backs_the_source_off_and_counts_its_reason(
    reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No answer at all: a jittered source backoff; the poll failed once, by the client's reason."""
    r = rig()
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    start = r.clock.monotonic()
    r.client.script = [reason]
    window = backoff(expect, 1)
    assert await r.poller.poll(A) == spread(expect, window)
    left = closed_left(start, window, start)
    assert r.runtime.gate.closed_for(start) == left
    assert await r.poller.poll(B) == spread(expect, left)  # deferred, unsent
    r.clock.advance(window)
    assert await r.poller.poll(B) == INTERVAL
    assert [s.at for s in r.client.sent] == [start, start + window]
    assert r.stats.failed == Counter({(SOURCE, reason): 1})
    assert (r.stats.limited, r.stats.waited) == (Counter(), {})
    assert (poll_success(r, A), poll_success(r, B)) == (False, True)
    assert logged(caplog, logging.WARNING) == [
        f"source src: request failed ({reason}); backing off {window:.1f}s"
    ]


async def test_a_503_with_retry_after_closes_the_source_like_a_429() -> None:
    """A 503 that says when to come back is a rate limit: its window, counted as one."""
    r = rig()
    expect = random.Random(SEED)
    start = r.clock.monotonic()
    r.client.script = [answer(503, Retry_After="20")]
    assert await r.poller.poll(A) == spread(expect, 20)
    r.clock.advance(5)
    assert await r.poller.poll(B) == spread(expect, closed_left(start, 20, start + 5))
    r.clock.advance(15)
    assert await r.poller.poll(B) == INTERVAL
    assert [s.at for s in r.client.sent] == [start, start + 20]
    assert (r.stats.limited, r.stats.waited) == (Counter({SOURCE: 1}), {SOURCE: 20.0})
    assert r.stats.failed == Counter({(SOURCE, "rate_limited"): 1})
    assert (poll_success(r, A), poll_success(r, B)) == (False, True)


@pytest.mark.parametrize(("first", "second"), [(30, 40), (40, 30)])
async def test_concurrent_429s_count_only_what_each_adds_to_the_window(
    first: int, second: int
) -> None:
    """Two polls in flight both answered 429: each is counted, their wait is the one window."""
    r = rig()
    expect = random.Random(SEED)
    start = r.clock.monotonic()
    r.client.hold = hold = Hold(2)
    r.client.script = [answer(429, Retry_After=str(first)), answer(429, Retry_After=str(second))]
    delays = await together(r, hold, A, B)
    assert delays == [spread(expect, first), spread(expect, second)]
    assert r.runtime.gate.closed_for(start) == closed_left(start, 40, start)
    assert [s.at for s in r.client.sent] == [start, start]
    assert (r.stats.limited, r.stats.waited) == (Counter({SOURCE: 2}), {SOURCE: 40.0})
    assert r.stats.failed == Counter({(SOURCE, "rate_limited"): 2})


async def test_a_job_body_that_does_not_parse_fails_the_poll_and_keeps_the_last_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A VendorError fails the job's poll by its reason; the source stays open, values stay."""
    r = rig(jobs=("a",))
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    seen_at = r.clock.time()
    r.client.script = [RUNNING, Response(200, {}, b"<html>busy</html>")]
    assert await r.poller.poll(A) == INTERVAL
    r.clock.advance(INTERVAL)
    assert await r.poller.poll(A) == max(INTERVAL, backoff(expect, 1))
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.snapshot, entry.last_success) == (parse_job(RUNNING), seen_at)
    assert entry.poll_success is False
    assert (r.runtime.gate.closed_for(r.clock.monotonic()), r.runtime.gate.failures) == (0.0, 0)
    assert r.stats.failed == Counter({(SOURCE, "invalid_json"): 1})
    assert logged(caplog, logging.WARNING) == ["job src/a: the job is not JSON"]
    r.clock.advance(INTERVAL)
    assert await r.poller.poll(A) == INTERVAL
    assert (poll_success(r, A), len(r.client.sent)) == (True, 3)


def token_error(status: int | None = None, *, shared: bool = False, **headers: str) -> AuthError:
    """What the real Auth raises for a token endpoint's answer (``None``: no answer at all)."""
    if status is None:
        return AuthError("oauth2_token", "token request failed: timeout", shared=shared)
    message = f"token endpoint answered HTTP {status}"
    return AuthError("oauth2_token", message, answer(status, **headers), shared=shared)


async def test_a_shared_token_failure_with_the_gate_open_fails_the_poll_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another poll's failed fetch, already reported: this job fails, nothing else is counted."""
    r = rig(oauth=True)
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    r.client.auth.script = [token_error(500, shared=True)]
    assert await r.poller.poll(A) == spread(expect, 0.0)
    now = r.clock.monotonic()
    assert (r.runtime.gate.closed_for(now), r.runtime.gate.failures) == (0.0, 0)
    assert r.stats.failed == Counter({(SOURCE, "oauth2_token"): 1})
    assert (r.stats.limited, r.stats.waited) == (Counter(), {})
    assert [rec.getMessage() for rec in caplog.records] == []
    assert await r.poller.poll(B) == INTERVAL  # the source was not closed
    assert (len(r.client.sent), poll_success(r, A)) == (1, False)


async def test_polls_waiting_on_a_failed_token_fetch_are_deferred_not_counted_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The fetching poll backs the source off and logs; the one that shared it waits, uncounted."""
    r = rig(oauth=True)
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    start = r.clock.monotonic()
    r.client.auth.hold = hold = Hold(2)
    r.client.auth.script = [token_error(500), token_error(500, shared=True)]
    window = backoff(expect, 1)
    first = spread(expect, window)
    assert await together(r, hold, A, B) == [
        first,
        spread(expect, closed_left(start, window, start)),
    ]
    assert r.client.sent == []
    assert r.stats.failed == Counter({(SOURCE, "oauth2_token"): 1})
    assert (poll_success(r, A), poll_success(r, B)) == (False, None)
    assert logged(caplog, logging.ERROR) == ["source src: token endpoint answered HTTP 500"]


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (token_error(), "source src: token request failed: timeout"),
        (token_error(500), "source src: token endpoint answered HTTP 500"),
        (token_error(400), "source src: token endpoint answered HTTP 400"),
    ],
    ids=["no-answer", "500", "400-not-a-refusal"],
)
async def test_a_failing_token_endpoint_backs_the_source_off_with_one_error_line(
    error: AuthError, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A token fetch that fails without refusing: the gate's backoff, one error line, no request."""
    r = rig(oauth=True)
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    start = r.clock.monotonic()
    r.client.auth.script = [error]
    window = backoff(expect, 1)
    assert await r.poller.poll(A) == spread(expect, window)
    assert (r.runtime.gate.failures, r.runtime.auth_failing) == (1, False)
    assert await r.poller.poll(B) == spread(expect, closed_left(start, window, start))
    r.clock.advance(window)
    assert await r.poller.poll(A) == INTERVAL
    assert [s.at for s in r.client.sent] == [start + window]
    assert r.stats.failed == Counter({(SOURCE, "oauth2_token"): 1})
    assert (r.stats.limited, r.stats.waited) == (Counter(), {})
    assert logged(caplog, logging.ERROR) == [line]


@pytest.mark.parametrize("status", [429, 503])
async def test_a_token_endpoint_rate_limit_closes_the_source_for_its_window(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 (or a 503 with Retry-After) from the token endpoint is the source's rate limit."""
    r = rig(oauth=True)
    expect = random.Random(SEED)
    caplog.set_level(logging.DEBUG, logger="exporter.polling.poller")
    start = r.clock.monotonic()
    r.client.auth.script = [token_error(status, Retry_After="30")]
    assert await r.poller.poll(A) == spread(expect, 30)
    r.clock.advance(10)
    assert await r.poller.poll(B) == spread(expect, closed_left(start, 30, start + 10))
    r.clock.advance(20)
    assert await r.poller.poll(B) == INTERVAL
    assert [s.at for s in r.client.sent] == [start + 30]
    assert (r.stats.limited, r.stats.waited) == (Counter({SOURCE: 1}), {SOURCE: 30.0})
    assert r.stats.failed == Counter({(SOURCE, "rate_limited"): 1})
    assert logged(caplog, logging.ERROR) == []
    assert logged(caplog, logging.WARNING) == [
        f"source src: rate limited (HTTP {status}); no requests for 30.0s"
    ]


async def test_a_401_while_another_poll_closed_the_gate_waits_instead_of_renewing() -> None:
    """The token is forgotten but not fetched again inside the window; the 401 is not counted."""
    r = rig(oauth=True)
    expect = random.Random(SEED)
    start = r.clock.monotonic()
    r.client.hold = hold = Hold(2)
    r.client.script = [answer(429, Retry_After="30"), answer(401)]
    first = spread(expect, 30)
    deferred = spread(expect, closed_left(start, 30, start))
    assert await together(r, hold, A, B) == [first, deferred]
    assert [s.headers for s in r.client.sent] == [{"Authorization": "Bearer t1"}] * 2
    assert (r.stats.limited, r.stats.waited) == (Counter({SOURCE: 1}), {SOURCE: 30.0})
    assert r.stats.failed == Counter({(SOURCE, "rate_limited"): 1})
    assert (poll_success(r, B), r.runtime.auth_failing) == (None, False)
    r.client.hold = None
    r.clock.advance(30)
    assert await r.poller.poll(B) == INTERVAL
    assert r.client.sent[-1] == Sent(start + 30, "/jobs/b", {"Authorization": "Bearer t2"})
    assert r.client.auth.tokens == 2
