"""The vendor API simulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from yarl import URL

from exporter.simulator import (
    DEMO_JOBS,
    EVOCALIZE,
    FULLSTORY,
    TALKDESK,
    Fault,
    SimCredentials,
    Simulator,
)
from exporter.simulator.__main__ import main, parse_listen, serve

T0 = 1_700_000_000.0
EVO_HEADERS = {"X-Evocalize-Client-Key": "evo-demo-key", "X-Evocalize-Client-Key-Id": "evo-demo-id"}
FS_HEADERS = {"Authorization": "Basic fs-demo-key"}
EVO_REPORT = "evocalize/management/v1/items/report/"
FS_BATCH = "fullstory/v2/events/batch/"
TD_JOBS = "talkdesk/data/reports/calls/jobs/"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FORM_HEADER = b"Content-Type: application/x-www-form-urlencoded\r\n"
# Keys of the seeds' examples: the contract the exporter parses.
EVO_REPORT_KEYS = {
    "totalItems",
    "remainingItems",
    "completedItems",
    "successfulItems",
    "errorItems",
    "isCompleted",
}
FS_JOB_KEYS = {"id", "status", "created", "finished"}
TD_JOB_KEYS = {"id", "name", "timezone", "status", "format", "timespan"}
TD_ERROR_KEYS = {"code", "message", "description", "fields"}
RFC3339_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class FakeClock:
    """A wall clock that only moves when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        """Return the fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the fake time forward."""
        self.now += seconds


@dataclass(frozen=True)
class Answer:
    """What the simulator answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)


@pytest.fixture
def clock() -> FakeClock:
    """Give each test its own fake clock."""
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    """Run a simulator on a free loopback port for one test."""
    async with Simulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """Open an HTTP client session for one test."""
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | str | None = None,
) -> Answer:
    """Send one request to ``url`` exactly as written (no normalisation) and read the answer."""
    async with http.request(
        method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
    ) as response:
        return Answer(response.status, response.headers, await response.read())


def basic(user: str, password: str) -> dict[str, str]:
    """Build a Basic ``Authorization`` header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def token(http: aiohttp.ClientSession, sim: Simulator, scope: str | None = None) -> str:
    """Get a Talkdesk access token with the demo credentials."""
    body = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
    answer = await call(
        http,
        f"{sim.url}talkdesk/oauth/token",
        method="POST",
        headers={**basic("td-demo-client", "td-demo-secret"), **FORM},
        data=body,
    )
    assert answer.status == 200
    value = answer.json()["access_token"]
    assert isinstance(value, str)
    return value


# -- lifecycle ---------------------------------------------------------------------


async def test_urls_and_lifecycle(clock: FakeClock) -> None:
    """The URL has a trailing slash, base URLs add the vendor prefix, close is idempotent."""
    simulator = Simulator(clock=clock)
    with pytest.raises(RuntimeError, match="not started"):
        _ = simulator.url
    async with simulator as started:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", started.url)
        assert started.base_url(EVOCALIZE) == started.url + "evocalize/"
        assert started.base_url(FULLSTORY) == started.url + "fullstory/"
        assert started.base_url(TALKDESK) == started.url + "talkdesk/"
        with pytest.raises(ValueError, match="unknown api"):
            started.base_url("nope")
        with pytest.raises(RuntimeError, match="already started"):
            await started.start()
    await simulator.close()
    with pytest.raises(ValueError, match="errors_page_size"):
        Simulator(errors_page_size=0)


async def test_wildcard_host_shows_loopback_and_busy_port_raises(clock: FakeClock) -> None:
    """Listening on 0.0.0.0 gives a usable loopback URL; a busy port raises ``OSError``."""
    async with Simulator(clock=clock) as first:
        port = int(first.url.rsplit(":", 1)[1].rstrip("/"))
        second = Simulator(clock=clock)
        with pytest.raises(OSError, match="address"):
            await second.start("127.0.0.1", port)
        await second.close()
    wild = Simulator(clock=clock)
    await wild.start("0.0.0.0", 0)  # noqa: S104 - checking how a wildcard address is shown
    try:
        assert wild.url.startswith("http://127.0.0.1:")
    finally:
        await wild.close()


# -- Evocalize ---------------------------------------------------------------------


async def test_evocalize_report_shape_and_progress(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The report has exactly the seed's keys and its counts follow the clock."""
    sim.add_job(EVOCALIZE, "r-1", total=100, rate=10.0, error_every=10)
    url = sim.url + EVO_REPORT + "r-1"
    first = await call(http, url, headers=EVO_HEADERS)
    assert first.status == 200
    assert first.headers["Content-Type"].startswith("application/json")
    assert set(first.json()) == {"data"}
    assert set(first.json()["data"]) == EVO_REPORT_KEYS
    assert first.json()["data"]["completedItems"] == 0
    clock.advance(5)
    assert (await call(http, url, headers=EVO_HEADERS)).json()["data"] == {
        "totalItems": 100,
        "remainingItems": 50,
        "completedItems": 50,
        "successfulItems": 45,
        "errorItems": 5,
        "isCompleted": False,
    }
    clock.advance(5)
    done = (await call(http, url, headers=EVO_HEADERS)).json()["data"]
    assert done["isCompleted"] is True
    assert done["remainingItems"] == 0
    assert done["errorItems"] == 10


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Evocalize-Client-Key": "evo-demo-key"},
        {"X-Evocalize-Client-Key-Id": "evo-demo-id"},
        {**EVO_HEADERS, "X-Evocalize-Client-Key": "wrong"},
        {**EVO_HEADERS, "X-Evocalize-Client-Key-Id": "wrong"},
    ],
)
async def test_evocalize_rejects_missing_or_wrong_keys(
    sim: Simulator, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """Both key headers must match, else 401 with a ``message``/``code`` body."""
    sim.add_job(EVOCALIZE, "r-1")
    for suffix in ("", "/errors"):
        answer = await call(http, sim.url + EVO_REPORT + "r-1" + suffix, headers=headers)
        assert answer.status == 401
        assert answer.json() == {"message": "access is unauthorized", "code": "unauthorized"}


async def test_evocalize_unknown_report_is_404(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """An unknown report ID answers 404 ``resource_not_found`` on both endpoints."""
    for suffix in ("", "/errors"):
        answer = await call(http, sim.url + EVO_REPORT + "nope" + suffix, headers=EVO_HEADERS)
        assert answer.status == 404
        assert set(answer.json()) == {"message", "code"}
        assert answer.json()["code"] == "resource_not_found"


async def test_evocalize_errors_pages_with_tokens(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Errors come ``errors_page_size`` at a time; tokens appear only when there is a page."""
    sim.add_job(EVOCALIZE, "r-1", total=50, rate=10.0, error_every=10)
    clock.advance(60)
    url = sim.url + EVO_REPORT + "r-1/errors"
    pages: list[dict[str, Any]] = []
    next_url = url
    while True:
        answer = await call(http, next_url, headers=EVO_HEADERS)
        assert answer.status == 200
        page = answer.json()
        pages.append(page)
        if "nextPageToken" not in page:
            break
        next_url = f"{url}?pageToken={page['nextPageToken']}"
    assert [len(page["data"]) for page in pages] == [2, 2, 1]
    assert set(pages[0]) == {"data", "nextPageToken"}
    assert set(pages[1]) == {"data", "nextPageToken", "previousPageToken"}
    assert set(pages[2]) == {"data", "previousPageToken"}
    assert pages[2]["previousPageToken"] == pages[0]["nextPageToken"]
    items = [item for page in pages for item in page["data"]]
    assert [item["input"]["id"] for item in items] == [f"user_{n}" for n in (10, 20, 30, 40, 50)]
    assert all({"input", "errorMessage"} <= set(item) for item in items)
    assert all(set(item) <= {"input", "errorMessage", "restErrorCode"} for item in items)
    assert "restErrorCode" not in items[2]
    assert len({item["restErrorCode"] for item in items if "restErrorCode" in item}) >= 2


async def test_evocalize_errors_empty_and_bad_token(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """No errors is ``{"data": []}``; a blank token is page one; a forged one is a 400."""
    sim.add_job(EVOCALIZE, "clean", total=10, error_every=0)
    clock.advance(10)
    url = sim.url + EVO_REPORT + "clean/errors"
    assert (await call(http, url, headers=EVO_HEADERS)).json() == {"data": []}
    assert (await call(http, url + "?pageToken=", headers=EVO_HEADERS)).json() == {"data": []}
    for forged in ("not-a-token", "b2Zmc2V0Ong=", "%FF%FE"):
        answer = await call(http, f"{url}?pageToken={forged}", headers=EVO_HEADERS)
        assert answer.status == 400
        assert set(answer.json()) == {"message", "code"}


async def test_errors_page_size_is_configurable(
    clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """``errors_page_size`` sets how many errors one page holds."""
    async with Simulator(clock=clock, errors_page_size=3) as sim:
        sim.add_job(EVOCALIZE, "r", total=10, error_every=1)
        clock.advance(10)
        page = (await call(http, sim.url + EVO_REPORT + "r/errors", headers=EVO_HEADERS)).json()
        assert len(page["data"]) == 3
        assert "nextPageToken" in page


# -- Fullstory ---------------------------------------------------------------------


async def test_fullstory_processing_completed_and_failed(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """``errors`` only for FAILED, ``finished`` only once finished, RFC 3339 with millis."""
    sim.add_job(FULLSTORY, "ok", total=100, rate=10.0, error_every=10)
    sim.add_job(FULLSTORY, "bad", total=100, rate=10.0, error_every=10, outcome="failed")
    clock.advance(5.5)
    running = (await call(http, sim.url + FS_BATCH + "ok", headers=FS_HEADERS)).json()
    assert set(running) == {"imports", "job"}
    assert running["imports"] == 50
    assert set(running["job"]) == {"id", "status", "created"}
    assert running["job"]["status"] == "PROCESSING"
    assert running["job"]["created"] == "2023-11-14T22:13:20.000Z"
    clock.advance(10)
    done = (await call(http, sim.url + FS_BATCH + "ok", headers=FS_HEADERS)).json()
    assert set(done) == {"imports", "job"}
    assert done["imports"] == 90
    assert set(done["job"]) == FS_JOB_KEYS
    assert done["job"]["status"] == "COMPLETED"
    assert done["job"]["finished"] == "2023-11-14T22:13:30.000Z"
    failed = (await call(http, sim.url + FS_BATCH + "bad", headers=FS_HEADERS)).json()
    assert set(failed) == {"imports", "errors", "job"}
    assert (failed["imports"], failed["errors"]) == (90, 10)
    assert failed["job"]["status"] == "FAILED"
    assert all(RFC3339_MILLIS.match(failed["job"][key]) for key in ("created", "finished"))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic wrong"}, {"Authorization": "Bearer fs-demo-key"}],
)
async def test_fullstory_rejects_bad_auth(
    sim: Simulator, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """Only ``Basic <api key>`` is accepted; otherwise the seed's 401 body."""
    sim.add_job(FULLSTORY, "x")
    answer = await call(http, sim.url + FS_BATCH + "x", headers=headers)
    assert answer.status == 401
    assert answer.json() == {"message": "access is unauthorized", "code": "unauthorized"}


async def test_fullstory_unknown_and_deleted_jobs_are_404(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Unknown IDs and finished ``deleted`` jobs answer the seed's 404 body."""
    sim.add_job(FULLSTORY, "gone", outcome="deleted")
    sim.add_job(EVOCALIZE, "gone", outcome="deleted")
    assert (await call(http, sim.url + FS_BATCH + "gone", headers=FS_HEADERS)).status == 200
    clock.advance(100)
    for url, headers in ((FS_BATCH, FS_HEADERS), (EVO_REPORT, EVO_HEADERS)):
        assert (await call(http, sim.url + url + "gone", headers=headers)).status == 404
    answer = await call(http, sim.url + FS_BATCH + "nope", headers=FS_HEADERS)
    assert answer.status == 404
    assert answer.json() == {
        "message": "Requested resource does not exist",
        "code": "resource_not_found",
    }


# -- Talkdesk ----------------------------------------------------------------------


async def test_talkdesk_token_grant(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """The client-credentials grant returns a bearer token and counts the grants."""
    url = sim.url + "talkdesk/oauth/token"
    headers = {**basic("td-demo-client", "td-demo-secret"), **FORM}
    answer = await call(
        http, url, method="POST", headers=headers, data="grant_type=client_credentials"
    )
    assert answer.status == 200
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        3600,
        "data-reports:read",
    )
    scoped = await call(
        http, url, method="POST", headers=headers, data="grant_type=client_credentials&scope=x%3Ay"
    )
    assert scoped.json()["scope"] == "x:y"
    assert scoped.json()["access_token"] != body["access_token"]
    assert sim.token_requests == 2


GRANT = "grant_type=client_credentials"
DEMO_CLIENT = basic("td-demo-client", "td-demo-secret")


@pytest.mark.parametrize(
    ("headers", "data", "expected"),
    [
        (basic("td-demo-client", "wrong"), GRANT, (401, "invalid_client")),
        (basic("someone", "td-demo-secret"), GRANT, (401, "invalid_client")),
        ({"Authorization": "Basic %%%"}, GRANT, (401, "invalid_client")),
        ({}, GRANT, (401, "invalid_client")),
        (DEMO_CLIENT, "grant_type=password", (400, "unsupported_grant_type")),
        (DEMO_CLIENT, "scope=x", (400, "unsupported_grant_type")),
    ],
)
async def test_talkdesk_token_refusals(
    sim: Simulator,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    data: str,
    expected: tuple[int, str],
) -> None:
    """Wrong client credentials are a 401, a wrong grant a 400, both JSON with ``code``."""
    url = sim.url + "talkdesk/oauth/token"
    answer = await call(http, url, method="POST", headers={**headers, **FORM}, data=data)
    assert (answer.status, answer.json()["code"]) == expected
    assert set(answer.json()) == TD_ERROR_KEYS
    assert sim.token_requests == 0


async def test_talkdesk_token_needs_a_form_body(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A JSON token request is refused with 400 ``invalid_request``."""
    answer = await call(
        http,
        sim.url + "talkdesk/oauth/token",
        method="POST",
        headers={**basic("td-demo-client", "td-demo-secret"), "Content-Type": "application/json"},
        data='{"grant_type": "client_credentials"}',
    )
    assert answer.status == 400
    assert answer.json()["code"] == "invalid_request"


async def test_talkdesk_job_lifecycle_ends_in_300_with_location(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Statuses go created, processing, uploading, then done as a 300 with ``Location``."""
    sim.add_job(TALKDESK, "j-1", total=100, rate=10.0, start_delay=5, name="Daily calls")
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    url = sim.url + TD_JOBS + "j-1"
    seen = []
    for step in (0, 5, 9.5, 1):
        clock.advance(step)
        answer = await call(http, url, headers=auth)
        seen.append((answer.status, answer.json()["job"]["status"]))
    assert seen == [(200, "created"), (200, "processing"), (200, "uploading"), (300, "done")]
    assert answer.headers["Location"] == "/data/reports/calls/files/j-1"
    body = answer.json()
    assert set(body) == {"job", "_links"}
    assert set(body["job"]) == TD_JOB_KEYS
    assert body["job"]["name"] == "Daily calls"
    assert (body["job"]["timezone"], body["job"]["format"]) == ("Europe/Lisbon", "csv")
    assert body["job"]["timespan"] == {"from": "2023-11-13T00:00:00", "to": "2023-11-14T00:00:00"}
    assert body["_links"] == {
        "self": {"href": sim.url + TD_JOBS + "j-1"},
        "files": {"href": sim.url + "talkdesk/data/reports/calls/files/j-1"},
    }


@pytest.mark.parametrize("outcome", ["failed", "canceled", "deleted"])
async def test_talkdesk_unsuccessful_outcomes_are_200(
    sim: Simulator, http: aiohttp.ClientSession, outcome: str
) -> None:
    """Failed, canceled and deleted jobs answer 200 with the lower-case status."""
    job = sim.add_job(TALKDESK, "j", total=100, rate=0.01)
    job.finish(outcome)
    answer = await call(
        http, sim.url + TD_JOBS + "j", headers={"Authorization": "Bearer " + await token(http, sim)}
    )
    assert answer.status == 200
    assert answer.json()["job"]["status"] == outcome
    assert "Location" not in answer.headers


async def test_talkdesk_tokens_expire_by_the_clock(
    clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """A token works until ``token_ttl`` has passed; unknown or missing tokens are 401."""
    async with Simulator(clock=clock, credentials=SimCredentials(token_ttl=60)) as sim:
        sim.add_job(TALKDESK, "j", rate=0.1)
        url = sim.url + TD_JOBS + "j"
        auth = {"Authorization": "Bearer " + await token(http, sim)}
        clock.advance(59)
        assert (await call(http, url, headers=auth)).status == 200
        clock.advance(1)
        for headers in (auth, {"Authorization": "Bearer nope"}, {}, {"Authorization": "Basic x"}):
            answer = await call(http, url, headers=headers)
            assert answer.status == 401
            assert set(answer.json()) == TD_ERROR_KEYS


async def test_talkdesk_unknown_type_or_id_is_404(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A wrong report type or job ID answers 404 with ``code``, ``message``, ``fields``."""
    sim.add_job(TALKDESK, "j", report_type="calls")
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    for path in ("talkdesk/data/reports/agents/jobs/j", TD_JOBS + "nope"):
        answer = await call(http, sim.url + path, headers=auth)
        assert answer.status == 404
        assert set(answer.json()) == TD_ERROR_KEYS
        assert answer.json()["fields"] == []


# -- paths -------------------------------------------------------------------------


async def test_encoded_slashes_stay_inside_one_id(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``a%2F..%2Fb`` is the single ID ``a/../b`` on every API, and is recorded as such."""
    for api in (EVOCALIZE, FULLSTORY, TALKDESK):
        sim.add_job(api, "a/../b")
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    for path, headers in ((EVO_REPORT, EVO_HEADERS), (FS_BATCH, FS_HEADERS), (TD_JOBS, auth)):
        answer = await call(http, sim.url + path + "a%2F..%2Fb", headers=headers)
        assert answer.status == 200
        assert sim.requests[-1].job_id == "a/../b"
        assert sim.requests[-1].raw_path == "/" + path + "a%2F..%2Fb"
    errors = await call(http, sim.url + EVO_REPORT + "a%2F..%2Fb/errors", headers=EVO_HEADERS)
    assert errors.status == 200
    sim.find_job(TALKDESK, "a/../b").finish()  # type: ignore[union-attr]
    done = await call(http, sim.url + TD_JOBS + "a%2F..%2Fb", headers=auth)
    assert done.headers["Location"] == "/data/reports/calls/files/a%2F..%2Fb"


@pytest.mark.parametrize(
    "path",
    [
        EVO_REPORT + "a/../b",
        EVO_REPORT + "a/b",
        EVO_REPORT + "a/errors/x",
        EVO_REPORT + "./a",
        EVO_REPORT + "a/",
        EVO_REPORT.replace("report/", "report//a"),
        FS_BATCH + "a/../b",
        TD_JOBS + "a/../b",
        "evocalize/",
        "",
        "nope/at/all",
    ],
)
async def test_extra_or_odd_raw_segments_are_404(
    sim: Simulator, http: aiohttp.ClientSession, path: str
) -> None:
    """A raw path with extra, empty or dot segments is a 404, never another job."""
    for api in (EVOCALIZE, FULLSTORY, TALKDESK):
        for job_id in ("a", "b", "a/../b"):
            sim.add_job(api, job_id)
    answer = await call(http, sim.url + path, headers={**EVO_HEADERS, **FS_HEADERS})
    assert answer.status == 404
    assert sim.requests[-1].raw_path == "/" + path
    assert sim.requests[-1].status == 404


async def raw_http(sim: Simulator, head: bytes, body: bytes = b"") -> bytes:
    """Send one hand-written request (request line and headers) and return the raw answer."""
    url = URL(sim.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        length = f"Content-Length: {len(body)}\r\n".encode()
        writer.write(head + b"Host: x\r\nConnection: close\r\n" + length + b"\r\n" + body)
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_undecodable_bytes_are_refused_not_crashed(sim: Simulator) -> None:
    """Non-UTF-8 bytes in credentials or in the token form get a 4xx, never a 500."""
    for api in (EVOCALIZE, FULLSTORY, TALKDESK):
        sim.add_job(api, "x")
    evo = b"GET /" + EVO_REPORT.encode() + b"x HTTP/1.1\r\n"
    token_url = b"POST /talkdesk/oauth/token HTTP/1.1\r\n"
    client = DEMO_CLIENT["Authorization"].encode()
    cases = [
        (
            evo + b"X-Evocalize-Client-Key: \xff\xfe\r\nX-Evocalize-Client-Key-Id: \xff\r\n",
            b"",
            401,
        ),
        (b"GET /" + FS_BATCH.encode() + b"x HTTP/1.1\r\nAuthorization: Basic \xff\r\n", b"", 401),
        (b"GET /" + TD_JOBS.encode() + b"x HTTP/1.1\r\nAuthorization: Bearer \xff\r\n", b"", 401),
        (token_url + b"Authorization: Basic \xc3\xa9\xff\r\n", b"", 401),
        (token_url + b"Authorization: " + client + b"\r\n" + FORM_HEADER, b"\xff\xfe=\xfd", 400),
    ]
    for head, body, status in cases:
        answer = await raw_http(sim, head, body)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]


async def test_wrong_method_is_405(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A known path with the wrong method answers 405 with ``Allow``."""
    sim.add_job(EVOCALIZE, "r")
    answer = await call(http, sim.url + EVO_REPORT + "r", method="POST", headers=EVO_HEADERS)
    assert (answer.status, answer.headers["Allow"]) == (405, "GET")
    token_get = await call(http, sim.url + "talkdesk/oauth/token")
    assert (token_get.status, token_get.headers["Allow"]) == (405, "POST")


async def test_requests_are_recorded_in_order(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Each request is recorded with clock time, monotonic time, raw path, API, ID and status."""
    sim.add_job(EVOCALIZE, "r")
    before = time.monotonic()
    await call(http, sim.url + EVO_REPORT + "r/errors?pageToken=&x=%20", headers=EVO_HEADERS)
    clock.advance(7)
    await call(http, sim.url + FS_BATCH + "zz")
    await token(http, sim)
    first, second, third = sim.requests
    assert (first.time, first.method, first.api, first.job_id, first.status) == (
        T0,
        "GET",
        EVOCALIZE,
        "r",
        200,
    )
    assert first.raw_path == "/" + EVO_REPORT + "r/errors?pageToken=&x=%20"
    assert (second.time, second.api, second.job_id, second.status) == (T0 + 7, FULLSTORY, "zz", 401)
    assert (third.method, third.api, third.job_id, third.status) == (
        "POST",
        "report_job_token",
        None,
        200,
    )
    assert before <= first.monotonic <= second.monotonic <= third.monotonic <= time.monotonic()


# -- faults ------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["2", "Wed, 21 Oct 2015 07:28:00 GMT", None])
@pytest.mark.parametrize(("kind", "status"), [("rate_limit", 429), ("unavailable", 503)])
async def test_retry_after_is_sent_verbatim(
    sim: Simulator, http: aiohttp.ClientSession, kind: str, status: int, retry_after: str | None
) -> None:
    """429 and 503 faults carry ``Retry-After`` exactly as given, or none."""
    sim.add_job(FULLSTORY, "x")
    sim.set_fault(FULLSTORY, Fault(kind, retry_after=retry_after))
    answer = await call(http, sim.url + FS_BATCH + "x", headers=FS_HEADERS)
    assert answer.status == status
    assert answer.headers.get("Retry-After") == retry_after
    assert set(answer.json()) == {"message", "code"}
    if kind == "rate_limit":
        assert answer.json()["code"] == "too_many_requests"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("server_error", 500, "server_error"),
        ("not_found", 404, "resource_not_found"),
        ("unauthorized", 401, "unauthorized"),
    ],
)
async def test_error_faults_use_each_vendors_body(
    sim: Simulator, http: aiohttp.ClientSession, kind: str, status: int, code: str
) -> None:
    """Error faults answer with the vendor's error shape even for a healthy job."""
    for api in (EVOCALIZE, FULLSTORY, TALKDESK):
        sim.add_job(api, "x")
    sim.set_fault("*", Fault(kind))
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    for path, keys in (
        (EVO_REPORT + "x", {"message", "code"}),
        (EVO_REPORT + "x/errors", {"message", "code"}),
        (FS_BATCH + "x", {"message", "code"}),
        (TD_JOBS + "x", TD_ERROR_KEYS),
    ):
        answer = await call(http, sim.url + path, headers={**EVO_HEADERS, **FS_HEADERS, **auth})
        assert answer.status == status
        assert set(answer.json()) == keys
        assert answer.json()["code"] == code


async def test_html_truncated_and_huge_faults(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """HTML pages, half a JSON body and oversized bodies all come as 200s."""
    sim.add_job(EVOCALIZE, "x")
    url = sim.url + EVO_REPORT + "x"
    normal = await call(http, url, headers=EVO_HEADERS)
    sim.set_fault(EVOCALIZE, Fault("html", count=1))
    html = await call(http, url, headers=EVO_HEADERS)
    assert (html.status, html.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert html.body.startswith(b"<!DOCTYPE html>")
    sim.set_fault(EVOCALIZE, Fault("truncated_json", count=1))
    cut = await call(http, url, headers=EVO_HEADERS)
    assert cut.status == 200
    assert cut.body == normal.body[: len(normal.body) // 2]
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        cut.json()
    for size, expected in ((5000, 5000), (5, 5), (0, 1 << 20)):
        sim.set_fault(EVOCALIZE, Fault("huge", size=size, count=1))
        huge = await call(http, url, headers=EVO_HEADERS)
        assert (huge.status, len(huge.body)) == (200, expected)
        assert huge.headers["Content-Length"] == str(expected)
        assert huge.body.startswith(b'{"data": "x'[:expected])
    assert (await call(http, url, headers=EVO_HEADERS)).body == normal.body


async def test_truncated_json_cuts_a_300_too(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A truncated Talkdesk answer is a 200 whose body is half the usual one."""
    sim.add_job(TALKDESK, "x").finish()
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    normal = await call(http, sim.url + TD_JOBS + "x", headers=auth)
    sim.set_fault(TALKDESK, Fault("truncated_json"))
    cut = await call(http, sim.url + TD_JOBS + "x", headers=auth)
    assert (normal.status, cut.status) == (300, 200)
    assert cut.body == normal.body[: len(normal.body) // 2]


async def test_slow_fault_delays_then_answers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """A slow fault waits ``delay`` seconds before the normal answer."""
    sim.add_job(FULLSTORY, "x")
    sim.set_fault(FULLSTORY, Fault("slow", delay=0.2, count=1))
    started = time.monotonic()
    answer = await call(http, sim.url + FS_BATCH + "x", headers=FS_HEADERS)
    assert time.monotonic() - started >= 0.2
    assert answer.status == 200
    assert answer.json()["job"]["id"] == "x"


async def test_client_giving_up_on_a_slow_answer_is_recorded_as_499(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A request the client abandons is recorded with status 499 once the server notices."""
    sim.add_job(FULLSTORY, "x")
    sim.set_fault(FULLSTORY, Fault("slow", delay=30))
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(
            sim.url + FS_BATCH + "x", headers=FS_HEADERS, timeout=aiohttp.ClientTimeout(total=0.1)
        ):
            pass  # pragma: no cover - the answer never comes in time
    for _ in range(100):
        if sim.requests[-1].status:
            break
        await asyncio.sleep(0.02)
    assert sim.requests[-1].status == 499


async def test_counted_fault_clears_itself_and_star_spares_the_token_endpoint(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``count`` faults hit that many requests; ``*`` hits job APIs but not the token grant."""
    sim.add_job(FULLSTORY, "x")
    sim.add_job(TALKDESK, "x")
    sim.set_fault("*", Fault("rate_limit", count=2))
    url = sim.url + FS_BATCH + "x"
    statuses = [(await call(http, url, headers=FS_HEADERS)).status for _ in range(3)]
    assert statuses == [429, 429, 200]
    sim.set_fault("*", Fault("unavailable"))
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    assert (await call(http, sim.url + TD_JOBS + "x", headers=auth)).status == 503
    sim.clear_faults()
    assert (await call(http, sim.url + TD_JOBS + "x", headers=auth)).status == 200


async def test_token_endpoint_fault_target(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """Faults on ``report_job_token`` hit only the OAuth2 token endpoint."""
    sim.add_job(TALKDESK, "x")
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    sim.set_fault("report_job_token", Fault("server_error", count=1))
    answer = await call(
        http,
        sim.url + "talkdesk/oauth/token",
        method="POST",
        headers={**basic("td-demo-client", "td-demo-secret"), **FORM},
        data="grant_type=client_credentials",
    )
    assert answer.status == 500
    assert set(answer.json()) == TD_ERROR_KEYS
    assert (await call(http, sim.url + TD_JOBS + "x", headers=auth)).status == 200
    await token(http, sim)
    assert sim.token_requests == 2
    with pytest.raises(ValueError, match="fault target"):
        sim.set_fault("elsewhere", Fault("html"))


# -- control endpoints ---------------------------------------------------------------


async def test_control_endpoints_drive_jobs_and_faults(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Jobs and faults can be managed over HTTP, and the request log read back."""
    add = await call(
        http,
        sim.url + "_sim/jobs",
        method="POST",
        data=json.dumps({"api": FULLSTORY, "id": "a/b", "total": 10, "rate": 1, "error_every": 2}),
    )
    assert add.status == 201
    assert add.json()["created"] == T0
    clock.advance(4)
    fs_url = sim.url + FS_BATCH + "a%2Fb"
    assert (await call(http, fs_url, headers=FS_HEADERS)).json()["imports"] == 2
    finish = await call(
        http,
        sim.url + "_sim/jobs/batch_import_job/a%2Fb/finish",
        method="POST",
        data='{"outcome": "failed"}',
    )
    assert (finish.status, finish.json()["forced_outcome"]) == (200, "failed")
    assert (await call(http, fs_url, headers=FS_HEADERS)).json()["job"]["status"] == "FAILED"
    fault = await call(
        http,
        sim.url + "_sim/faults/*",
        method="PUT",
        data='{"kind": "rate_limit", "retry_after": "7"}',
    )
    assert fault.status == 200
    limited = await call(http, fs_url, headers=FS_HEADERS)
    assert (limited.status, limited.headers["Retry-After"]) == (429, "7")
    assert (await call(http, sim.url + "_sim/faults", method="DELETE")).status == 204
    assert (await call(http, fs_url, headers=FS_HEADERS)).status == 200
    log = (await call(http, sim.url + "_sim/requests")).json()
    assert [entry["status"] for entry in log] == [200, 200, 429, 200]
    assert log[0] == {
        "time": T0 + 4,
        "monotonic": log[0]["monotonic"],
        "method": "GET",
        "raw_path": "/fullstory/v2/events/batch/a%2Fb",
        "api": FULLSTORY,
        "job_id": "a/b",
        "status": 200,
    }
    assert (
        await call(http, sim.url + "_sim/jobs/batch_import_job/a%2Fb", method="DELETE")
    ).status == 204
    assert (await call(http, fs_url, headers=FS_HEADERS)).status == 404
    plain = await call(http, sim.url + "_sim/jobs/report_job/r/finish", method="POST")
    assert plain.status == 404
    sim.add_job(TALKDESK, "r", outcome="canceled")
    assert (await call(http, sim.url + "_sim/jobs/report_job/r/finish", method="POST")).json()[
        "forced_outcome"
    ] == "canceled"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "_sim/jobs", "not json"),
        ("POST", "_sim/jobs", "[1, 2]"),
        ("POST", "_sim/jobs", "[" * 100_000),
        ("POST", "_sim/jobs", b"\xff\xfe"),
        ("POST", "_sim/jobs", '{"api": "report_job"}'),
        ("POST", "_sim/jobs", '{"api": "nope", "id": "x"}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "colour": "red"}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "total": "many"}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "total": true}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "rate": -1}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "rate": NaN}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "outcome": "boom"}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "start_delay": "soon"}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "start_delay": 1e400}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "name": 5}'),
        ("POST", "_sim/jobs/report_job/j/finish", '{"outcome": "boom"}'),
        ("POST", "_sim/jobs/report_job/j/finish", '{"outcome": 1}'),
        ("POST", "_sim/jobs/report_job/j/finish", '{"when": 1}'),
        ("PUT", "_sim/faults/nowhere", '{"kind": "html"}'),
        ("PUT", "_sim/faults/*", "{}"),
        ("PUT", "_sim/faults/*", '{"kind": "explode"}'),
        ("PUT", "_sim/faults/*", '{"kind": "html", "count": 0}'),
        ("PUT", "_sim/faults/*", '{"kind": "html", "extra": 1}'),
        ("PUT", "_sim/faults/*", '{"kind": "slow", "delay": "long"}'),
    ],
)
async def test_control_bad_input_is_400(
    sim: Simulator, http: aiohttp.ClientSession, method: str, path: str, body: str | bytes
) -> None:
    """Malformed or invalid control requests answer 400 with a JSON ``error``."""
    sim.add_job(TALKDESK, "j")
    answer = await call(http, sim.url + path, method=method, data=body)
    assert answer.status == 400
    assert set(answer.json()) == {"error"}
    assert sim.find_job(TALKDESK, "x") is None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "_sim/jobs", 405),
        ("GET", "_sim/jobs/report_job/j", 405),
        ("GET", "_sim/jobs/report_job/j/finish", 405),
        ("POST", "_sim/faults", 405),
        ("GET", "_sim/faults/*", 405),
        ("POST", "_sim/requests", 405),
        ("GET", "_sim/nothing", 404),
        ("DELETE", "_sim/jobs/report_job/none", 404),
        ("POST", "_sim/jobs/report_job/none/finish", 404),
        ("DELETE", "_sim/faults/a/b", 404),
    ],
)
async def test_control_unknown_paths_and_methods(
    sim: Simulator, http: aiohttp.ClientSession, method: str, path: str, status: int
) -> None:
    """Unknown control paths are 404 and wrong methods 405, both JSON; none is recorded."""
    sim.add_job(TALKDESK, "j")
    answer = await call(http, sim.url + path, method=method)
    assert answer.status == status
    assert set(answer.json()) == {"error"}
    assert sim.requests == []


# -- the command line ----------------------------------------------------------------


def test_cli_serves_until_sigterm_and_exits_cleanly() -> None:
    """``python -m exporter.simulator`` prints its URL, serves, and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0", "--demo-jobs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no URL line within 20 s"
        line = proc.stdout.readline()
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:\d+/)\n", line)
        assert match, line
        job_id = DEMO_JOBS[EVOCALIZE][0]
        with socket.create_connection(
            (URL(match[1]).host or "", URL(match[1]).port or 0), timeout=5
        ) as conn:
            request = (
                f"GET /{EVO_REPORT}{job_id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                "X-Evocalize-Client-Key: evo-demo-key\r\n"
                "X-Evocalize-Client-Key-Id: evo-demo-id\r\n\r\n"
            )
            conn.sendall(request.encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert b'"totalItems"' in reply
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


async def test_serve_in_process_stops_on_a_signal(capsys: pytest.CaptureFixture[str]) -> None:
    """``serve`` prints its URL line and returns once SIGINT arrives."""
    task = asyncio.create_task(serve("127.0.0.1", 0, demo=True))
    try:
        for _ in range(200):
            out = capsys.readouterr().out
            if out or task.done():
                break
            await asyncio.sleep(0.01)
        assert re.fullmatch(r"simulator listening on http://127\.0\.0\.1:\d+/\n", out)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(task, timeout=5)
    finally:
        if not task.done():
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


def test_main_reports_a_busy_port_and_parses_listen() -> None:
    """``main`` returns 1 when it cannot listen; ``--listen`` takes HOST:PORT or [v6]:PORT."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--listen", f"127.0.0.1:{port}"]) == 1
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("localhost:0") == ("localhost", 0)
    for bad in ("8080", ":80", "host:", "host:x", "host:70000"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_listen(bad)
    with pytest.raises(SystemExit):
        main(["--listen", "nonsense"])
