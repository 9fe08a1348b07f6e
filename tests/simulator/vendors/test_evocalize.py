"""Evocalize's simulated report and errors endpoints, over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, SimCredentials, Simulator
from exporter.simulator.vendors import evocalize, source_config
from exporter.simulator.vendors.evocalize import EvocalizeCredentials
from tests.simulator.helpers import (
    EVO_HEADERS,
    EVO_REPORT,
    EVO_REPORT_KEYS,
    T0,
    FakeClock,
    call,
    make,
)


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


MISSING = {"code": "EV_UNAUTHORIZED_MISSING_HEADERS", "message": evocalize.CODES[evocalize.MISSING]}
BAD_SECRET = {
    "code": "EV_UNAUTHORIZED_INVALID_SECRET",
    "message": "Secret provided in X-Evocalize-Client-Key is not valid.",
}
BAD_KEY = {"code": "EV_UNAUTHORIZED_INVALID_KEY", "message": "Provided Client Key Id is invalid."}
BAD_SIGNATURE = {
    "code": "EV_UNAUTHORIZED_INVALID_SIGNATURE",
    "message": "Signature provided in X-Evocalize-Signature is not valid.",
}
EXPIRED = {
    "code": "EV_UNAUTHORIZED_EXPIRED_REQUEST",
    "message": "Request timestamp is over 1 minute old.",
}
AHEAD = {
    "code": "EV_UNAUTHORIZED_EXPIRED_REQUEST",
    "message": "Request timestamp is over 1 minute ahead: Unix seconds, not milliseconds.",
}
SIM_SECRET = "evo-demo-secret"  # noqa: S105 - the simulator's documented demo secret
OTHER_SECRET = "not-the-secret"  # noqa: S105 - a fake secret


def signed(path: str, timestamp: str, secret: str = SIM_SECRET) -> dict[str, str]:
    """Sign a GET of ``path`` (as sent) by hand: SHA-256 of path, timestamp and secret."""
    digest = hashlib.sha256(f"{path}\n{timestamp}\n{secret}".encode()).hexdigest()
    return {
        "X-Evocalize-Client-Key-Id": "evo-demo-id",
        "X-Evocalize-Timestamp": timestamp,
        "X-Evocalize-Signature": digest,
    }


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, MISSING),
        ({"X-Evocalize-Client-Key": "evo-demo-key"}, MISSING),
        ({"X-Evocalize-Client-Key-Id": "evo-demo-id"}, MISSING),
        ({**EVO_HEADERS, "X-Evocalize-Client-Key": "wrong"}, BAD_SECRET),
        ({**EVO_HEADERS, "X-Evocalize-Client-Key-Id": "wrong"}, BAD_KEY),
    ],
)
async def test_evocalize_rejects_missing_or_wrong_keys(
    sim: Simulator, http: aiohttp.ClientSession, headers: dict[str, str], error: dict[str, str]
) -> None:
    """Both key headers must match, else 401 with the vendor's envelope and code."""
    sim.add_job(EVOCALIZE, "r-1")
    for suffix in ("", "/errors"):
        answer = await call(http, sim.url + EVO_REPORT + "r-1" + suffix, headers=headers)
        assert answer.status == 401
        assert answer.json() == {"errors": [error]}


async def test_evocalize_unknown_report_is_404(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """An unknown report ID answers 404 ``EV_OBJECT_NOT_FOUND`` on both endpoints."""
    for suffix in ("", "/errors"):
        answer = await call(http, sim.url + EVO_REPORT + "nope" + suffix, headers=EVO_HEADERS)
        assert answer.status == 404
        assert answer.json() == {
            "errors": [
                {"code": "EV_OBJECT_NOT_FOUND", "message": "Unable to locate requested resource."}
            ]
        }


async def test_evocalize_signed_requests_pass_with_the_raw_path(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A signature over the percent-encoded path (no query) lets a hostile ID's report in."""
    sim.add_job(EVOCALIZE, "a/b c", total=10, error_every=1)
    clock.advance(10)
    path = "/" + EVO_REPORT + "a%2Fb%20c"
    stamp = str(int(T0 + 10))
    report = await call(http, sim.url[:-1] + path, headers=signed(path, stamp))
    assert (report.status, report.json()["data"]["totalItems"]) == (200, 10)
    errors = path + "/errors"
    page = await call(http, f"{sim.url[:-1]}{errors}?pageToken=", headers=signed(errors, stamp))
    assert (page.status, len(page.json()["data"])) == (200, 2)
    decoded = await call(
        http, sim.url[:-1] + path, headers=signed("/" + EVO_REPORT + "a/b c", stamp)
    )
    assert (decoded.status, decoded.json()) == (401, {"errors": [BAD_SIGNATURE]})


@pytest.mark.parametrize(
    ("age", "error"),
    [
        (60, None),
        (61, EXPIRED),
        (-60, None),
        (-61, AHEAD),
    ],
)
async def test_evocalize_signature_timestamp_is_good_for_a_minute(
    sim: Simulator, http: aiohttp.ClientSession, age: int, error: dict[str, str] | None
) -> None:
    """A timestamp up to 60 s old (or ahead) passes; one more second is refused."""
    sim.add_job(EVOCALIZE, "r-1")
    path = "/" + EVO_REPORT + "r-1"
    answer = await call(http, sim.url[:-1] + path, headers=signed(path, str(int(T0) - age)))
    if error is None:
        assert answer.status == 200
    else:
        assert (answer.status, answer.json()) == (401, {"errors": [error]})


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"X-Evocalize-Signature": "0" * 64}, BAD_SIGNATURE),
        ({"X-Evocalize-Client-Key-Id": "wrong"}, BAD_KEY),
        ({"X-Evocalize-Timestamp": str(int(T0 * 1000))}, AHEAD),
        ({"X-Evocalize-Timestamp": "9" * 5000}, AHEAD),
        ({"X-Evocalize-Timestamp": "1.7e9"}, EXPIRED),
        ({"X-Evocalize-Timestamp": "-1"}, EXPIRED),
    ],
)
async def test_evocalize_refuses_a_bad_signature(
    sim: Simulator, http: aiohttp.ClientSession, change: dict[str, str], error: dict[str, str]
) -> None:
    """A wrong signature, key ID or timestamp is a 401 with the vendor's code for it."""
    sim.add_job(EVOCALIZE, "r-1")
    path = "/" + EVO_REPORT + "r-1"
    headers = {**signed(path, str(int(T0))), **change}
    answer = await call(http, sim.url[:-1] + path, headers=headers)
    assert (answer.status, answer.json()) == (401, {"errors": [error]})


async def test_evocalize_signature_with_another_secret_is_refused(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Signed with a secret that is not the simulator's: ``EV_UNAUTHORIZED_INVALID_SIGNATURE``."""
    sim.add_job(EVOCALIZE, "r-1")
    path = "/" + EVO_REPORT + "r-1"
    headers = signed(path, str(int(T0)), secret=OTHER_SECRET)
    answer = await call(http, sim.url[:-1] + path, headers=headers)
    assert (answer.status, answer.json()) == (401, {"errors": [BAD_SIGNATURE]})


async def test_evocalize_client_key_wins_over_a_signature(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """With both kinds present the client key decides, as the vendor documents."""
    sim.add_job(EVOCALIZE, "r-1")
    path = "/" + EVO_REPORT + "r-1"
    good, url = signed(path, str(int(T0))), sim.url[:-1] + path
    bad_signature = {**good, "X-Evocalize-Signature": "0" * 64, **EVO_HEADERS}
    assert (await call(http, url, headers=bad_signature)).status == 200
    bad_key = {**good, "X-Evocalize-Client-Key": "wrong"}
    answer = await call(http, url, headers=bad_key)
    assert (answer.status, answer.json()) == (401, {"errors": [BAD_SECRET]})


@pytest.mark.parametrize(
    ("modes", "keys", "signature"),
    [
        (frozenset({"signature"}), BAD_SECRET, None),
        (frozenset({"client_key"}), None, MISSING),
    ],
)
async def test_evocalize_modes_limit_how_a_request_gets_in(
    clock: FakeClock,
    http: aiohttp.ClientSession,
    modes: frozenset[str],
    keys: dict[str, str] | None,
    signature: dict[str, str] | None,
) -> None:
    """Evocalize's ``modes`` turn either way in off; the other still works."""
    creds = SimCredentials(EvocalizeCredentials(modes=modes))
    async with Simulator(clock=clock, credentials=creds) as sim:
        sim.add_job(EVOCALIZE, "r-1")
        path = "/" + EVO_REPORT + "r-1"
        for headers, error in ((EVO_HEADERS, keys), (signed(path, str(int(T0))), signature)):
            answer = await call(http, sim.url[:-1] + path, headers=headers)
            if error is None:
                assert answer.status == 200
            else:
                assert (answer.status, answer.json()) == (401, {"errors": [error]})


def test_evocalize_source_snippet_signs_when_keys_are_off() -> None:
    """The config snippet uses the key headers by default, the signature without them."""
    default = source_config(EVOCALIZE, name="evo", base_url="http://x/", jobs=[])
    assert set(default) == {"name", "api", "base_url", "http_headers", "jobs"}
    creds = SimCredentials(
        EvocalizeCredentials(modes=frozenset({"signature"}), secret=OTHER_SECRET)
    )
    snippet = source_config(EVOCALIZE, name="evo", base_url="http://x/", jobs=[], credentials=creds)
    assert snippet["evocalize_signature"] == {"key_id": "evo-demo-id", "secret": OTHER_SECRET}
    assert "http_headers" not in snippet


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
        assert answer.json() == {
            "errors": [
                {
                    "code": "EV_BAD_REQUEST_MALFORMED",
                    "message": "Malformed request, e.g. a type mismatch.",
                }
            ]
        }


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


# -- the job model as Evocalize shows it ---------------------------------------------


def test_error_items_follow_the_seed_and_slice() -> None:
    """Error items carry the seed's fields and number the failing items."""
    job = make(total=30, rate=10.0, error_every=3)
    items = evocalize.error_items(job, T0 + 100, 1, 4)
    assert len(items) == 3
    assert items[0]["input"] == {
        "id": "user_6",
        "name": "User 6",
        "email": "user6@example.com",
        "groups": [{"id": "seattle_office", "name": "Seattle Office", "role": "group_admin"}],
    }
    assert "restErrorCode" not in items[1]
    assert all(isinstance(item["errorMessage"], str) for item in items)
    assert evocalize.error_items(job, T0 + 100, 9, 20) == evocalize.error_items(
        job, T0 + 100, 9, 10
    )
    assert evocalize.error_items(job, T0 + 0.2, 0, 10) == []
