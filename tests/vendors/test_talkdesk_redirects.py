"""Talkdesk's finished-report redirects end to end: the exporter and a server on loopback.

A done report answers 300, 302 or 303 with ``Location``; the exporter must call it
completed without ever requesting that URL, and its signed query string must reach
no log line and no page.  A 3xx without ``Location`` stays a failed poll.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.simulator.vendors import talkdesk
from tests.harness import TD, Harness, source_yaml

MakeHarness = Callable[..., Awaitable[Harness]]
SIGNED_FILE = "https://td-reports.s3.amazonaws.com/calls.csv?X-Amz-Signature=cafef00dsecret"


def info_labels(h: Harness, source: str, job_id: str) -> dict[str, str]:
    """The labels of the job's ``batchjob_info`` series."""
    (labels,) = (
        dict(labels)
        for (name, labels), _ in h.samples().items()
        if name == "batchjob_info" and dict(labels)["job_id"] == job_id
    )
    assert labels["source"] == source
    return labels


@pytest.mark.parametrize("code", [300, 302, 303])
async def test_a_redirected_report_is_completed_and_its_location_never_requested(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    """A report done as 300/302/303 + Location shows completed; nobody asks the Location."""
    caplog.set_level(logging.DEBUG)
    h = await make_harness()
    job_id = "r-1"
    job = h.sim.add_job(TD, job_id, total=100, rate=4, name="Daily calls", redirect=code)
    await h.start(source_yaml(h.sim, TD, "td", [job_id]))
    await h.advance(10)
    assert h.status("td", job_id) == "running"
    await h.advance(30)
    assert h.status("td", job_id) == "completed"
    assert info_labels(h, "td", job_id)["vendor_status"] == "done"
    assert h.value("batchjob_poll_success", source="td", job_id=job_id) == 1
    answered = [r.status for r in h.sim.requests if r.api == TD]
    assert answered == [200] * (len(answered) - 1) + [code]
    # Finished: never polled again, and the file was never fetched.
    await h.advance(30)
    assert [r.status for r in h.sim.requests if r.api == TD] == answered
    assert [r.raw_path for r in h.sim.requests if "/files/" in r.raw_path] == []
    signature = talkdesk.signature(job)
    assert [r.getMessage() for r in caplog.records if signature in r.getMessage()] == []
    assert [r.getMessage() for r in caplog.records if "X-Amz" in r.getMessage()] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert h.exporter is not None
    assert signature.encode() not in h.exporter.render()


async def no_location(request: web.Request) -> web.Response:
    """Answer like a done report but without ``Location``; the body links the signed file."""
    body = {
        "job": {"id": request.match_info["id"], "status": "done", "name": "Daily calls"},
        "_links": {"files": {"href": SIGNED_FILE}},
    }
    return web.json_response(body, status=int(request.match_info["code"]))


@pytest.fixture
async def bare_redirects() -> AsyncIterator[TestServer]:
    """A loopback server whose report jobs answer 3xx without ``Location`` (a proxy's, say)."""
    app = web.Application()
    app.router.add_get("/{code}/data/reports/calls/jobs/{id}", no_location)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.parametrize("code", [300, 303])
async def test_a_redirect_without_location_fails_the_poll_quoting_nothing(
    make_harness: MakeHarness,
    caplog: pytest.LogCaptureFixture,
    bare_redirects: TestServer,
    code: int,
) -> None:
    """A 3xx without Location is a failed poll; its log line names the code, not the body."""
    caplog.set_level(logging.DEBUG)
    h = await make_harness()
    base_url = str(bare_redirects.make_url(f"/{code}/"))
    await h.start(
        "  - name: td\n"
        "    api: report_job\n"
        f"    base_url: {base_url}\n"
        "    report_type: calls\n"
        "    authorization: {type: Bearer, credentials: t0ken}\n"
        "    jobs: ['x']\n"
    )
    await h.advance(10)
    assert h.status("td", "x") is None
    assert h.value("batchjob_poll_success", source="td", job_id="x") == 0
    assert (
        h.value("batchjob_exporter_poll_failures_total", source="td", reason="unexpected_status")
        == 1
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"job td/x: HTTP {code} without a Location header"]
    assert [r.getMessage() for r in caplog.records if "cafef00d" in r.getMessage()] == []
    assert h.exporter is not None
    assert b"cafef00d" not in h.exporter.render()
