"""Injected faults on the simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, FULLSTORY, TALKDESK, Fault, Simulator
from tests.simulator.helpers import (
    EVO_HEADERS,
    EVO_REPORT,
    FORM,
    FS_BATCH,
    FS_HEADERS,
    TD_ERROR_KEYS,
    TD_JOBS,
    basic,
    call,
    token,
)


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


EVO_CODES = {
    "server_error": "EV_INTERNAL_SERVER_ERROR",
    "resource_not_found": "EV_OBJECT_NOT_FOUND",
    "unauthorized": "EV_UNAUTHORIZED_INVALID_KEY",
}


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
    headers = {**EVO_HEADERS, **FS_HEADERS, **auth}
    for path in (EVO_REPORT + "x", EVO_REPORT + "x/errors"):
        answer = await call(http, sim.url + path, headers=headers)
        assert answer.status == status
        (error,) = answer.json()["errors"]  # Evocalize's envelope, with its own codes
        assert (set(answer.json()), set(error)) == ({"errors"}, {"message", "code"})
        assert error["code"] == EVO_CODES[code]
    for path, keys in ((FS_BATCH + "x", {"message", "code"}), (TD_JOBS + "x", TD_ERROR_KEYS)):
        answer = await call(http, sim.url + path, headers=headers)
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


async def test_an_every_fault_hits_one_request_in_so_many(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``every=3`` fails the 3rd, 6th, ... request; with ``count=1`` only the first of those."""
    sim.add_job(FULLSTORY, "x")
    url = sim.url + FS_BATCH + "x"
    sim.set_fault(FULLSTORY, Fault("server_error", every=3))
    statuses = [(await call(http, url, headers=FS_HEADERS)).status for _ in range(7)]
    assert statuses == [200, 200, 500, 200, 200, 500, 200]
    sim.set_fault(FULLSTORY, Fault("server_error", every=2, count=1))
    statuses = [(await call(http, url, headers=FS_HEADERS)).status for _ in range(5)]
    assert statuses == [200, 500, 200, 200, 200]


@pytest.mark.parametrize("every", [0, -1, True, 1.5])
def test_every_must_be_a_positive_integer(every: object) -> None:
    """A fault's ``every`` is a positive integer."""
    with pytest.raises(ValueError, match="every must be a positive integer"):
        Fault("server_error", every=every)  # type: ignore[arg-type]


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
