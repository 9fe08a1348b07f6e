"""Evocalize's simulated report and errors endpoints, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, Simulator
from exporter.simulator.vendors import evocalize
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
