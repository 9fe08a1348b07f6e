"""Fullstory's simulated batch import endpoint, over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, FULLSTORY, Simulator
from exporter.simulator.vendors import fullstory
from exporter.simulator.vendors.fullstory import rfc3339
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
