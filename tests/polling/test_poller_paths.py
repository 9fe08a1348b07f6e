"""The poller's politeness towards a source, path by path, with a fake client on the fake clock.

No HTTP and no scheduler: each test calls :meth:`Poller.poll` itself, scripts
the answers, and checks what was sent when, what the table holds, what was
counted and the delay returned.  Jitter comes from a seeded rng; the expected
values are drawn from a second rng with the same seed, in the same order.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from yarl import URL

from exporter.clock import FakeClock
from exporter.config import SourceConfig
from exporter.jobs.table import JobTable
from exporter.model import ErrorsPage, Response, Snapshot, Status
from exporter.polling.errors_read import MAX_ERROR_PAGES
from exporter.polling.gate import Backoff, SourceGate
from exporter.polling.poller import AUTH_RETRY, Poller
from exporter.polling.runtime import Runtime
from exporter.vendors.base import ApiSpec

SEED = 11
INTERVAL = 10.0
SOURCE = "src"
A, B = (SOURCE, "a"), (SOURCE, "b")


def parse_job(resp: Response) -> Snapshot:
    """The fake API's job: ``{"status": ..., "left": ...}``."""
    body = json.loads(resp.body)
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


class FakeAuth:
    """Credentials: plain headers, or an OAuth2 token fetched when there is none."""

    def __init__(self, *, oauth: bool) -> None:
        self._oauth = oauth
        self._token: str | None = None
        self.tokens = 0

    async def headers(self) -> Mapping[str, str]:
        """A bearer token (fetching a new one if forgotten), or a fixed key."""
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
    """A source that answers from a script, then with ``default``, and notes each request."""

    def __init__(self, source: SourceConfig, clock: FakeClock, *, oauth: bool) -> None:
        self.source = source
        self.auth = FakeAuth(oauth=oauth)
        self._clock = clock
        self.script: list[Response | str] = []
        self.default: Response | str = RUNNING
        self.sent: list[Sent] = []

    def url(self, template: str, job_id: str, query: Mapping[str, str] | None = None) -> URL:
        """The job's URL (IDs here need no escaping)."""
        text = self.source.base_url + template.format(id=job_id)
        return URL(text + ("?" + urlencode(query) if query else ""))

    async def get(self, url: URL, headers: Mapping[str, str]) -> Response | str:
        """The next scripted answer."""
        self.sent.append(Sent(self._clock.monotonic(), url.path_qs, dict(headers)))
        return self.script.pop(0) if self.script else self.default


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
