"""Fullstory's simulated batch imports and their errors listings, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, FULLSTORY, Simulator
from exporter.simulator.vendors import fullstory
from exporter.simulator.vendors.fullstory import FullstoryOptions, rfc3339
from tests.simulator.helpers import (
    EVO_HEADERS,
    EVO_REPORT,
    FS_BATCH,
    FS_HEADERS,
    FS_JOB_KEYS,
    RFC3339_MILLIS,
    T0,
    FakeClock,
    call,
    make,
)


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


# -- the job model as Fullstory shows it ---------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "fs_status"),
    [
        ("completed", "COMPLETED"),
        ("failed", "FAILED"),
        ("canceled", "FAILED"),
        ("deleted", "FAILED"),
    ],
)
def test_outcomes_map_to_upper_case_final_statuses(outcome: str, fs_status: str) -> None:
    """Each outcome has an upper-case final status; until then the job is PROCESSING."""
    assert fullstory.status(make(api=FULLSTORY, outcome=outcome), T0 + 100) == fs_status
    assert fullstory.status(make(api=FULLSTORY, outcome=outcome), T0 + 1) == "PROCESSING"


def test_rfc3339_has_millis_and_z() -> None:
    """Timestamps look like the Fullstory seed: ``2019-04-18T14:36:11.123Z``."""
    assert rfc3339(1555598171.123) == "2019-04-18T14:36:11.123Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"


# -- the errors listing -----------------------------------------------------------------


async def read_listing(
    http: aiohttp.ClientSession, url: str, *, limit: int = 50
) -> list[dict[str, object]]:
    """Every page of a listing, following ``next_page_token`` (at most ``limit`` pages)."""
    pages: list[dict[str, object]] = []
    token: object = None
    while len(pages) < limit:
        query = "" if token is None else f"?page_token={token}"
        answer = await call(http, url + query, headers=FS_HEADERS)
        assert answer.status == 200
        pages.append(answer.json())
        token = pages[-1].get("next_page_token")
        if token is None:
            break
    return pages


async def test_a_failed_imports_listing_pages_its_failures_with_a_string_total(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Two per page, ``code`` and ``message`` (every third without a code), total as a string."""
    sim.add_job(FULLSTORY, "bad", total=50, rate=100.0, error_every=10, outcome="failed")
    clock.advance(1)
    pages = await read_listing(http, sim.url + FS_BATCH + "bad/errors")
    assert len(pages) == 3
    paged = {"results", "total_records", "next_page_token"}
    assert [set(body) for body in pages] == [paged, paged, {"results", "total_records"}]
    assert {body["total_records"] for body in pages} == {"5"}
    results = [item for body in pages for item in body["results"]]  # type: ignore[attr-defined]
    codes = [fullstory.VENDOR.error_code(i) for i in range(5)]
    assert [item.get("code") for item in results] == codes
    assert codes == [
        "duplicate_event",
        "invalid_argument",
        None,
        "invalid_argument",
        "type_conflict",
    ]
    assert [set(item) for item in results] == [
        {"message", "code", "event"},
        {"message", "code", "event"},
        {"message", "event"},
        {"message", "code", "event"},
        {"message", "code", "event"},
    ]
    assert results[0]["message"] == "Event 10 was already imported"
    counts: dict[str, int] = {}
    for item in results:
        code = str(item.get("code") or "unknown")
        counts[code] = counts.get(code, 0) + 1
    assert counts == {
        "duplicate_event": 1,
        "invalid_argument": 2,
        "type_conflict": 1,
        "unknown": 1,
    }
    assert fullstory.VENDOR.error_code_counts(5) == {
        "duplicate_event": 1,
        "invalid_argument": 2,
        "type_conflict": 1,
        None: 1,
    }


async def test_the_listing_answers_202_while_the_import_is_processing(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Asked too early the listing says 202 with an empty body; once finished it lists."""
    sim.add_job(FULLSTORY, "slow", total=100, rate=10.0, error_every=10, outcome="failed")
    clock.advance(5)
    early = await call(http, sim.url + FS_BATCH + "slow/errors", headers=FS_HEADERS)
    assert (early.status, early.json()) == (202, {})
    clock.advance(10)
    late = await call(http, sim.url + FS_BATCH + "slow/errors", headers=FS_HEADERS)
    assert (late.status, late.json()["total_records"]) == (200, "10")


async def test_a_completed_imports_listing_is_empty(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """COMPLETED means no failures: no results, a total of "0", no next page."""
    sim.add_job(FULLSTORY, "ok", total=10, rate=100.0, error_every=2)
    clock.advance(1)
    answer = await call(http, sim.url + FS_BATCH + "ok/errors", headers=FS_HEADERS)
    assert (answer.status, answer.json()) == (200, {"results": [], "total_records": "0"})


async def test_users_imports_answer_like_events_imports(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """``v2/users/batch/{id}`` and its listing answer as the events paths do for the job."""
    sim.add_job(FULLSTORY, "u", total=20, rate=100.0, error_every=5, outcome="failed")
    clock.advance(1)
    users = sim.url + "fullstory/v2/users/batch/u"
    for suffix in ("", "/errors"):
        got = await call(http, users + suffix, headers=FS_HEADERS)
        want = await call(http, sim.url + FS_BATCH + "u" + suffix, headers=FS_HEADERS)
        assert (got.status, got.json()) == (want.status, want.json())
    assert (await call(http, users, headers=FS_HEADERS)).json()["errors"] == 4


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("bad/errors?page_token=bm9wZQ==", FS_HEADERS, 400),
        ("bad/errors?page_token=%FF", FS_HEADERS, 400),
        ("bad/errors", {"Authorization": "Basic wrong"}, 401),
        ("nope/errors", FS_HEADERS, 404),
    ],
    ids=["foreign-token", "undecodable-token", "bad-key", "unknown-job"],
)
async def test_the_listing_refuses_bad_tokens_keys_and_jobs(
    sim: Simulator,
    http: aiohttp.ClientSession,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    """A token it did not issue is a 400, a wrong key a 401, an unknown job a 404."""
    sim.add_job(FULLSTORY, "bad", total=10, rate=100.0, error_every=2, outcome="failed")
    sim.finish_job(FULLSTORY, "bad")
    answer = await call(http, sim.url + FS_BATCH + path, headers=headers)
    assert answer.status == status
    assert set(answer.json()) == {"message", "code"}


# -- proto3 habits and a listing bug a job asks for by its options ----------------------


def test_a_job_without_options_has_none_of_the_habits() -> None:
    """No options: zeros sent, counts as numbers, a listing that ends; an ID asks for nothing."""
    assert FullstoryOptions.of(make(api=FULLSTORY, id="omit-zeros+j1")) == FullstoryOptions(
        omit_zeros=False, string_counts=False, loop_token=False
    )


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"omit_zeros": 1}, TypeError, "omit_zeros must be true or false"),
        ({"string_counts": "yes"}, TypeError, "string_counts must be true or false"),
        ({"loop_token": None}, TypeError, "loop_token must be true or false"),
        ({"omit-zeros": True}, ValueError, "it takes: omit_zeros, string_counts, loop_token"),
        ({"redirect": 303}, ValueError, f"unknown {FULLSTORY} job options: redirect"),
    ],
)
def test_bad_fullstory_options_are_refused(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    """``add_job`` refuses an unknown option or a value that is not a bool, and adds nothing."""
    sim = Simulator(clock=lambda: T0)
    with pytest.raises(error, match=match):
        sim.add_job(FULLSTORY, "j", **options)
    assert sim.find_job(FULLSTORY, "j") is None


async def test_omit_zeros_leaves_zero_counts_out_of_job_and_listing(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """proto3: 0 imports and 0 errors are not sent, running or finished; an empty listing is {}."""
    job_id = "empty"
    sim.add_job(
        FULLSTORY, job_id, total=10, rate=1.0, outcome="failed", start_delay=5, omit_zeros=True
    )
    running = (await call(http, sim.url + FS_BATCH + job_id, headers=FS_HEADERS)).json()
    assert set(running) == {"job"}
    sim.finish_job(FULLSTORY, job_id)
    done = (await call(http, sim.url + FS_BATCH + job_id, headers=FS_HEADERS)).json()
    assert (set(done), done["imports"], done["job"]["status"]) == ({"imports", "job"}, 10, "FAILED")
    listing = await call(http, sim.url + FS_BATCH + job_id + "/errors", headers=FS_HEADERS)
    assert (listing.status, listing.json()) == (200, {})


async def test_string_counts_sends_counts_as_decimal_strings(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """proto3's int64 habit: ``imports`` and ``errors`` come as strings, zeros still sent."""
    job_id = "s"
    sim.add_job(
        FULLSTORY,
        job_id,
        total=20,
        rate=100.0,
        error_every=20,
        outcome="failed",
        string_counts=True,
    )
    clock.advance(1)
    body = (await call(http, sim.url + FS_BATCH + job_id, headers=FS_HEADERS)).json()
    assert (body["imports"], body["errors"]) == ("19", "1")
    sim.add_job(FULLSTORY, job_id, total=5, rate=100.0, outcome="failed", string_counts=True)
    clock.advance(1)
    body = (await call(http, sim.url + FS_BATCH + job_id, headers=FS_HEADERS)).json()
    assert (body["imports"], body["errors"]) == ("5", "0")


async def test_loop_token_repeats_the_same_next_page_token_forever(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A looping listing names the same next token on every page, even past its failures."""
    job_id = "l"
    sim.add_job(
        FULLSTORY, job_id, total=10, rate=100.0, error_every=5, outcome="failed", loop_token=True
    )
    clock.advance(1)
    pages = await read_listing(http, sim.url + FS_BATCH + job_id + "/errors", limit=5)
    assert len(pages) == 5
    assert len({body["next_page_token"] for body in pages}) == 1
    assert [len(body["results"]) for body in pages] == [2, 0, 0, 0, 0]  # type: ignore[arg-type]
