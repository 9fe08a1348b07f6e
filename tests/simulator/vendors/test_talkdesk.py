"""Talkdesk's simulated token and report job endpoints, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from exporter.simulator import TALKDESK, SimCredentials, Simulator
from exporter.simulator.vendors import SPARED_TARGETS, talkdesk
from exporter.simulator.vendors.talkdesk import TalkdeskCredentials, TalkdeskOptions
from tests.simulator.helpers import (
    DEMO_CLIENT,
    FORM,
    GRANT,
    T0,
    TD_ERROR_KEYS,
    TD_JOB_KEYS,
    TD_JOBS,
    FakeClock,
    basic,
    call,
    make,
    token,
)


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
    """Statuses go created, processing, uploading, sending, then done as a 300 with Location."""
    sim.add_job(TALKDESK, "j-1", total=100, rate=10.0, start_delay=5, name="Daily calls")
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    url = sim.url + TD_JOBS + "j-1"
    seen = []
    for step in (0, 5, 9, 0.5, 1):
        clock.advance(step)
        answer = await call(http, url, headers=auth)
        seen.append((answer.status, answer.json()["job"]["status"]))
    assert seen == [
        (200, "created"),
        (200, "processing"),
        (200, "uploading"),
        (200, "sending"),
        (300, "done"),
    ]
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
    creds = SimCredentials(TalkdeskCredentials(token_ttl=60))
    async with Simulator(clock=clock, credentials=creds) as sim:
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


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_talkdesk_redirect_option_answers_that_code_to_a_signed_url(
    sim: Simulator, http: aiohttp.ClientSession, code: int
) -> None:
    """A done job with ``redirect=<code>`` answers that code, Location its signed file URL."""
    job = sim.add_job(TALKDESK, "r-1", redirect=code)
    job.finish()
    answer = await call(
        http,
        sim.url + TD_JOBS + "r-1",
        headers={"Authorization": "Bearer " + await token(http, sim)},
    )
    signature = talkdesk.signature(job)
    assert len(signature) == 64
    assert (answer.status, answer.json()["job"]["status"]) == (code, "done")
    assert answer.headers["Location"] == (
        f"{sim.url}talkdesk/data/reports/calls/files/r-1"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature={signature}"
    )


async def test_talkdesk_running_job_with_a_redirect_answers_200(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """The redirect only changes the finished answer: a running job still answers 200."""
    sim.add_job(TALKDESK, "r-1", rate=0.01, redirect=303)
    answer = await call(
        http,
        sim.url + TD_JOBS + "r-1",
        headers={"Authorization": "Bearer " + await token(http, sim)},
    )
    assert (answer.status, answer.json()["job"]["status"]) == (200, "processing")
    assert "Location" not in answer.headers


async def test_talkdesk_signed_location_serves_the_file_and_is_recorded(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A client that follows the 303 fetches the file, and the request log shows it did."""
    sim.add_job(TALKDESK, "r-1", redirect=303).finish()
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    async with http.get(sim.url + TD_JOBS + "r-1", headers=auth) as followed:
        assert (followed.status, await followed.text()) == (200, talkdesk.REPORT_FILE)
        assert followed.content_type == "text/csv"
        assert [r.status for r in followed.history] == [303]
    paths = [r.raw_path.partition("?")[0] for r in sim.requests if r.api == TALKDESK]
    assert paths == ["/" + TD_JOBS + "r-1", "/talkdesk/data/reports/calls/files/r-1"]


async def test_talkdesk_file_needs_a_finished_report_and_its_signature(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A forged or missing signature is a 403; a running, failed or unknown report a 404."""
    running = sim.add_job(TALKDESK, "r-1", rate=0.01, redirect=303)
    sim.add_job(TALKDESK, "f-1", rate=0.01, redirect=303).finish("failed")
    files = sim.url + "talkdesk/data/reports/"

    def signed(job_id: str, kind: str = "calls") -> str:
        """The file URL of ``job_id`` with the signature its report would have."""
        sig = talkdesk.signature(make(api=TALKDESK, id=job_id))
        return f"{files}{kind}/files/{job_id}?X-Amz-Signature={sig}"

    urls = [signed("r-1"), signed("f-1"), signed("nope")]
    seen = [await call(http, url) for url in urls]
    running.finish()
    urls = [files + "calls/files/r-1?X-Amz-Signature=forged", files + "calls/files/r-1"]
    urls.append(signed("r-1", kind="agents"))
    seen += [await call(http, url) for url in urls]
    assert [(a.status, a.json()["code"]) for a in seen] == [
        (404, "not_found"),
        (404, "not_found"),
        (404, "not_found"),
        (403, "forbidden"),
        (403, "forbidden"),
        (404, "not_found"),
    ]
    assert [set(a.json()) for a in seen] == [TD_ERROR_KEYS] * len(seen)
    assert (await call(http, signed("r-1"))).body == talkdesk.REPORT_FILE.encode()


# -- the job model as Talkdesk shows it ----------------------------------------------


def test_talkdesk_goes_created_processing_uploading_sending_done() -> None:
    """Statuses follow the job's life: ``uploading`` from 90% of items, ``sending`` from 95%."""
    job = make(api=TALKDESK, total=100, rate=10.0, created=T0 + 10)
    assert talkdesk.status(job, T0) == "created"
    assert talkdesk.status(job, T0 + 10) == "processing"
    assert talkdesk.status(job, T0 + 18.9) == "processing"
    assert talkdesk.status(job, T0 + 19) == "uploading"
    assert talkdesk.status(job, T0 + 19.49) == "uploading"
    assert talkdesk.status(job, T0 + 19.5) == "sending"
    assert talkdesk.status(job, T0 + 19.99) == "sending"
    assert talkdesk.status(job, T0 + 20) == "done"


async def test_talkdesk_report_type_option_picks_the_path(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """A job of another ``report_type`` answers on that type's path, and its links name it."""
    sim.add_job(TALKDESK, "a", report_type="agents", name="Agents")
    auth = {"Authorization": "Bearer " + await token(http, sim)}
    agents = sim.url + "talkdesk/data/reports/agents/jobs/a"
    answer = await call(http, agents, headers=auth)
    assert (answer.status, answer.json()["job"]["name"]) == (200, "Agents")
    assert answer.json()["_links"]["self"] == {"href": agents}
    assert (await call(http, sim.url + TD_JOBS + "a", headers=auth)).status == 404


def test_a_job_without_options_has_talkdesks_defaults() -> None:
    """No options: the ``calls`` report type, the name ``Calls report``, the reference 300."""
    assert TalkdeskOptions.of(make(api=TALKDESK)) == TalkdeskOptions(
        report_type="calls", name="Calls report", redirect=300
    )
    assert talkdesk.REPORT_TYPE == "calls"


@pytest.mark.parametrize("code", [300, 301, 302, 303, 307, 308])
def test_redirect_takes_the_reference_300_and_the_follow_able_codes(code: int) -> None:
    """Every code a finished report can answer is a valid ``redirect``."""
    assert TalkdeskOptions(redirect=code).redirect == code


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"redirect": 304}, ValueError, "redirect must be one of 300, 301, 302, 303, 307, 308"),
        ({"redirect": 399}, ValueError, "redirect must be one of"),
        ({"redirect": "303"}, ValueError, "redirect must be one of"),
        ({"redirect": True}, ValueError, "redirect must be one of"),
        ({"report_type": ""}, ValueError, "report_type must be a non-empty string"),
        ({"report_type": 3}, ValueError, "report_type must be a non-empty string"),
        ({"name": 3}, TypeError, "name must be a string"),
        ({"omit_zeros": True}, ValueError, "it takes: report_type, name, redirect"),
    ],
)
def test_bad_talkdesk_options_are_refused(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    """``add_job`` refuses an unknown option or a bad value, and adds nothing."""
    sim = Simulator(clock=lambda: T0)
    with pytest.raises(error, match=match):
        sim.add_job(TALKDESK, "j", **options)
    assert sim.find_job(TALKDESK, "j") is None


@pytest.mark.parametrize(
    ("outcome", "td_status"),
    [("completed", "done"), ("failed", "failed"), ("canceled", "canceled"), ("deleted", "deleted")],
)
def test_outcomes_map_to_lower_case_final_statuses(outcome: str, td_status: str) -> None:
    """Each outcome has a lower-case final status."""
    assert talkdesk.status(make(api=TALKDESK, outcome=outcome), T0 + 100) == td_status


def test_the_token_endpoint_is_a_fault_target_spared_by_star() -> None:
    """``report_job_token`` is Talkdesk's second target, named by its module."""
    assert talkdesk.VENDOR.targets == (TALKDESK, "report_job_token")
    assert talkdesk.VENDOR.targets[1] == talkdesk.TOKEN_TARGET
    assert SPARED_TARGETS == ("report_job_token",)
