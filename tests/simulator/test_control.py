"""The simulator's ``/_sim/`` control endpoints."""

from __future__ import annotations

import json

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, FULLSTORY, TALKDESK, Simulator
from tests.simulator.helpers import (
    FS_BATCH,
    FS_HEADERS,
    T0,
    FakeClock,
    call,
)


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


async def test_a_jobs_json_carries_its_vendors_options(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Keys beyond the generic settings are the vendor's options, answered with their defaults."""
    body = {"api": TALKDESK, "id": "r", "total": 5, "name": "Daily calls", "redirect": 303}
    add = await call(http, sim.url + "_sim/jobs", method="POST", data=json.dumps(body))
    assert (add.status, add.json()) == (
        201,
        {
            "api": TALKDESK,
            "id": "r",
            "created": T0,
            "total": 5,
            "rate": 10.0,
            "error_every": 0,
            "outcome": "completed",
            "report_type": "calls",
            "name": "Daily calls",
            "redirect": 303,
            "forced_outcome": None,
            "forced_at": None,
        },
    )
    job = sim.find_job(TALKDESK, "r")
    assert job is not None
    assert dict(job.options) == {"report_type": "calls", "name": "Daily calls", "redirect": 303}
    body = {"api": FULLSTORY, "id": "f", "loop_token": True}
    add = await call(http, sim.url + "_sim/jobs", method="POST", data=json.dumps(body))
    assert (add.status, add.json()["loop_token"], add.json()["omit_zeros"]) == (201, True, False)
    body = {"api": EVOCALIZE, "id": "e"}
    add = await call(http, sim.url + "_sim/jobs", method="POST", data=json.dumps(body))
    assert set(add.json()) == {
        "api",
        "id",
        "created",
        "total",
        "rate",
        "error_every",
        "outcome",
        "forced_outcome",
        "forced_at",
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"api": TALKDESK, "id": "x", "colour": "red"},
            f"unknown {TALKDESK} job options: colour (it takes: report_type, name, redirect)",
        ),
        (
            {"api": FULLSTORY, "id": "x", "name": "n", "redirect": 303},
            f"unknown {FULLSTORY} job options: name, redirect "
            "(it takes: omit_zeros, string_counts, loop_token)",
        ),
        (
            {"api": EVOCALIZE, "id": "x", "name": "n"},
            f"unknown {EVOCALIZE} job options: name (it takes none)",
        ),
        (
            {"api": TALKDESK, "id": "x", "redirect": 304},
            "redirect must be one of 300, 301, 302, 303, 307, 308, got 304",
        ),
    ],
)
async def test_options_the_vendor_does_not_take_are_a_400_naming_those_it_does(
    sim: Simulator, http: aiohttp.ClientSession, body: dict[str, object], error: str
) -> None:
    """The job's vendor checks its options: an unknown one or a bad value is refused."""
    answer = await call(http, sim.url + "_sim/jobs", method="POST", data=json.dumps(body))
    assert (answer.status, answer.json()) == (400, {"error": error})
    assert sim.find_job(str(body["api"]), "x") is None


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
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "redirect": "303"}'),
        ("POST", "_sim/jobs", '{"api": "report_job", "id": "x", "job_id": "y"}'),
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
