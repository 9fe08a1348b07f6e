"""Politeness and resilience end to end: Retry-After, backoff, bad bodies, auth, secrets."""

from __future__ import annotations

import base64
import email.utils
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from exporter.polling.asking import AUTH_RETRY
from exporter.simulator import Fault
from exporter.simulator.vendors.fullstory import FullstoryCredentials
from exporter.simulator.vendors.talkdesk import TOKEN_TARGET, TalkdeskCredentials
from tests.harness import EVO, FS, TD, Harness, source_yaml

MakeHarness = Callable[..., Awaitable[Harness]]


async def start_fs(h: Harness, n: int, global_: str = "  max_concurrency: 1\n") -> None:
    """Watch ``n`` long-running Fullstory jobs, one request in flight at a time."""
    ids = [f"j{i}" for i in range(n)]
    for job_id in ids:
        h.sim.add_job(FS, job_id, total=100_000, rate=1)
    await h.start(source_yaml(h.sim, FS, "fs", ids), global_)


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_no_request_inside_the_retry_after_window(
    make_harness: MakeHarness, form: str
) -> None:
    """After a 429, nothing at all is sent to that source until Retry-After has passed."""
    h = await make_harness()
    await start_fs(h, 5)
    await h.advance(10)
    assert len(h.requests(FS)) == 5
    now = h.clock.time()
    value = "30" if form == "seconds" else email.utils.formatdate(now + 30, usegmt=True)
    h.sim.set_fault(FS, Fault("rate_limit", retry_after=value, count=1))
    await h.advance(10)
    limited = [r.time for r in h.sim.requests if r.status == 429]
    assert len(limited) == 1
    await h.advance(60)
    # Seconds count from the answer; an HTTP-date names the second the window ends.
    end = limited[0] + 30 if form == "seconds" else now + 30
    assert [t for t in h.requests(FS) if limited[0] < t < end] == []
    after = [t for t in h.requests(FS) if t > limited[0]]
    # The waiting jobs come back spread over the interval, the first at the next 1 s step.
    assert (after[0], len(after)) == (end + 1, 20)
    assert h.value("batchjob_exporter_rate_limited_total", source="fs") == 1
    assert h.value("batchjob_exporter_poll_failures_total", source="fs", reason="rate_limited") == 1


async def test_time_under_retry_after_is_counted(make_harness: MakeHarness) -> None:
    """The seconds the source stays closed by Retry-After windows are counted, no more."""
    h = await make_harness()
    await start_fs(h, 3)
    await h.advance(10)
    assert h.value("batchjob_exporter_rate_limited_seconds_total", source="fs") == 0
    h.sim.set_fault(FS, Fault("rate_limit", retry_after="30", count=3))
    await h.advance(120)
    limited = sorted(r.time for r in h.sim.requests if r.status == 429)
    assert len(limited) == 3
    # Each 429 closed the source until its time + 30 s: the length of the windows' union.
    expected, end = 0.0, float("-inf")
    for start in limited:
        expected += start + 30 - max(start, end)
        end = start + 30
    assert expected == 90
    assert h.value("batchjob_exporter_rate_limited_seconds_total", source="fs") == expected


async def test_503_with_retry_after_is_a_rate_limit_and_without_it_a_backoff(
    make_harness: MakeHarness,
) -> None:
    """503 + Retry-After closes the gate for that long; a bare 503 backs the source off."""
    h = await make_harness()
    await start_fs(h, 3)
    await h.advance(10)
    h.sim.set_fault(FS, Fault("unavailable", retry_after="45", count=1))
    await h.advance(10)
    first = next(r.time for r in h.sim.requests if r.status == 503)
    await h.advance(60)
    assert [t for t in h.requests(FS) if first < t < first + 45] == []
    assert min(t for t in h.requests(FS) if t > first) == first + 46  # at the next step
    h.sim.set_fault(FS, Fault("unavailable", count=1))
    await h.advance(20)
    bare = [r.time for r in h.sim.requests if r.status == 503][1]
    # Backed off under a second, then spread over the interval by the seeded jitter.
    assert min(t for t in h.requests(FS) if t > bare) == bare + 5
    assert h.value("batchjob_exporter_rate_limited_total", source="fs") == 1
    assert h.value("batchjob_exporter_poll_failures_total", source="fs", reason="server_error") == 1


async def test_server_errors_back_off_the_whole_source(make_harness: MakeHarness) -> None:
    """Repeated 500s space requests out exponentially instead of polling every interval."""
    h = await make_harness()
    await start_fs(h, 4)
    await h.advance(10)
    h.sim.set_fault(FS, Fault("server_error"))
    start = len(h.requests(FS))
    await h.advance(300, step=5)
    failed = h.requests(FS)[start:]
    # Without backoff: 4 jobs every 10 s for 300 s = 120 requests.  With it, the gaps
    # grow (1, 2, 4, ... s jittered, each rounded up to the next 5 s step, plus spread).
    gaps = [b - a for a, b in itertools.pairwise(failed)]
    assert gaps == [5, 5, 5, 5, 10, 25, 40, 105]
    assert h.value("batchjob_exporter_poll_failures_total", source="fs", reason="server_error") == 9
    h.sim.clear_faults()
    await h.advance(400, step=10)
    for i in range(4):
        assert h.value("batchjob_poll_success", source="fs", job_id=f"j{i}") == 1


@pytest.mark.parametrize(
    ("fault", "reason", "last_poll"),
    [
        (Fault("html", count=1), "invalid_json", 34),
        (Fault("truncated_json", count=1), "invalid_json", 34),
        # Too large to read is the client's failure: the source backs off (under 1 s, plus
        # the seeded spread), not the job, so the polls after it come sooner.
        (Fault("huge", size=9 * 1024 * 1024, count=1), "body_too_large", 32),
    ],
)
async def test_a_bad_body_fails_one_poll_and_keeps_the_last_values(
    make_harness: MakeHarness, fault: Fault, reason: str, last_poll: int
) -> None:
    """HTML, truncated JSON or a huge body: poll_success 0, last good values kept, recovery."""
    h = await make_harness()
    created = h.clock.time()
    h.sim.add_job(EVO, "r", total=100_000, rate=1)
    await h.start(source_yaml(h.sim, EVO, "evo", ["r"]))
    await h.advance(10)
    before = h.value("batchjob_remaining_items", source="evo", job_id="r")
    assert before == 100_000 - 4  # first polled 4 s in (the seeded start spread), 1 item/s
    h.sim.set_fault(EVO, fault)
    await h.advance(10)
    assert h.value("batchjob_poll_success", source="evo", job_id="r") == 0
    assert h.value("batchjob_remaining_items", source="evo", job_id="r") == before
    assert h.value("batchjob_exporter_poll_failures_total", source="evo", reason=reason) == 1
    await h.advance(20)
    assert h.value("batchjob_poll_success", source="evo", job_id="r") == 1
    assert h.requests(EVO)[-1] == created + last_poll
    assert h.value("batchjob_remaining_items", source="evo", job_id="r") == 100_000 - last_poll


async def test_timeouts_and_refused_connections_fail_the_poll(make_harness: MakeHarness) -> None:
    """A slow vendor times out and a closed port is refused; both count and back off."""
    h = await make_harness()
    h.sim.add_job(EVO, "r", total=100_000, rate=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    dead = source_yaml(h.sim, FS, "dead", ["x"]).replace(
        h.sim.base_url(FS), f"http://127.0.0.1:{closed_port}/"
    )
    await h.start(source_yaml(h.sim, EVO, "evo", ["r"]) + dead, "  request_timeout: 200ms\n")
    h.sim.set_fault(EVO, Fault("slow", delay=2.0, count=1))
    await h.advance(10)
    assert h.value("batchjob_exporter_api_requests_total", source="evo", code="timeout") == 1
    refused = h.value(
        "batchjob_exporter_api_requests_total", source="dead", code="connection_error"
    )
    failures = h.value(
        "batchjob_exporter_poll_failures_total", source="dead", reason="connection_error"
    )
    assert (refused, failures) == (3, 3)  # the first poll, then two after the source's backoff
    assert h.value("batchjob_poll_success", source="dead", job_id="x") == 0


async def test_refused_credentials_log_once_and_retry_slowly(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 gives one error line and the source is not asked again for minutes."""
    h = await make_harness()
    for i in range(3):
        h.sim.add_job(FS, f"j{i}", total=100_000, rate=1)
    text = source_yaml(h.sim, FS, "fs", ["j0", "j1", "j2"]).replace(
        h.sim.credentials.of(FullstoryCredentials).api_key, "wrong-key-123"
    )
    caplog.set_level(logging.DEBUG)
    await h.start(text, "  max_concurrency: 1\n")
    await h.advance(AUTH_RETRY * 3, step=10)
    # The first poll, then one retry after each AUTH_RETRY (at the next 10 s step).
    times = h.requests(FS)
    assert [b - a for a, b in itertools.pairwise(times)] == [AUTH_RETRY + 10] * 2
    refused = [r for r in caplog.records if "credentials refused" in r.getMessage()]
    assert len(refused) == 1
    assert "wrong-key-123" not in caplog.text
    assert h.exporter is not None
    assert b"wrong-key-123" not in h.exporter.render()


async def test_rotated_secret_file_is_picked_up_and_never_shown(
    make_harness: MakeHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fixing a secret file on disk heals the source without a restart; no value is logged."""
    h = await make_harness()
    h.sim.add_job(FS, "j", total=100_000, rate=1)
    secret = tmp_path / "api-key"
    secret.write_text("stale-key-456\n")
    good = h.sim.credentials.of(FullstoryCredentials).api_key
    text = source_yaml(h.sim, FS, "fs", ["j"]).replace(
        f'"credentials": "{good}"', f'"credentials_file": {json.dumps(str(secret))}'
    )
    assert good not in text
    caplog.set_level(logging.DEBUG)
    await h.start(text)
    await h.advance(10)
    assert h.value("batchjob_poll_success", source="fs", job_id="j") == 0
    secret.write_text(good + "\n")
    await h.advance(AUTH_RETRY + 40, step=10)
    assert h.value("batchjob_poll_success", source="fs", job_id="j") == 1
    assert h.exporter is not None
    page = h.exporter.render()
    for value in ("stale-key-456", good):
        assert value not in caplog.text
        assert value.encode() not in page


async def test_oauth2_token_endpoint_failure_fails_the_poll(make_harness: MakeHarness) -> None:
    """A token endpoint that refuses the client fails polls with reason oauth2_token."""
    h = await make_harness()
    h.sim.add_job(TD, "t", total=100_000, rate=1)
    text = source_yaml(h.sim, TD, "td", ["t"]).replace(
        h.sim.credentials.of(TalkdeskCredentials).client_secret, "not-the-secret"
    )
    await h.start(text)
    await h.advance(10)
    assert h.value("batchjob_poll_success", source="td", job_id="t") == 0
    assert h.value("batchjob_exporter_poll_failures_total", source="td", reason="oauth2_token") == 1
    assert len(h.requests(TOKEN_TARGET)) == 1
    assert h.requests(TD) == []


async def test_refused_client_credentials_log_once_and_retry_slowly(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 from the token endpoint is treated like one from the API: one line, slow retries."""
    h = await make_harness()
    for i in range(3):
        h.sim.add_job(TD, f"t{i}", total=100_000, rate=1)
    text = source_yaml(h.sim, TD, "td", ["t0", "t1", "t2"]).replace(
        h.sim.credentials.of(TalkdeskCredentials).client_secret, "not-the-secret-789"
    )
    caplog.set_level(logging.DEBUG)
    await h.start(text, "  max_concurrency: 2\n")
    await h.advance(AUTH_RETRY * 3, step=10)
    times = h.requests(TOKEN_TARGET)
    assert [b - a for a, b in itertools.pairwise(times)] == [AUTH_RETRY + 10] * 2
    assert h.requests(TD) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "credentials refused" in errors[0].getMessage()
    assert "token endpoint" in errors[0].getMessage()
    assert h.value("batchjob_poll_success", source="td", job_id="t0") == 0
    for secret in ("not-the-secret-789", base64.b64encode(b"not-the-secret-789").decode()):
        assert secret not in caplog.text
    assert "Basic " not in caplog.text


async def test_a_429_from_the_token_endpoint_closes_the_source_for_its_window(
    make_harness: MakeHarness,
) -> None:
    """Retry-After on a token answer silences the whole source, token endpoint included."""
    h = await make_harness()
    for i in range(3):
        h.sim.add_job(TD, f"t{i}", total=100_000, rate=1)
    h.sim.set_fault(TOKEN_TARGET, Fault("rate_limit", retry_after="60", count=1))
    await h.start(source_yaml(h.sim, TD, "td", ["t0", "t1", "t2"]), "  max_concurrency: 3\n")
    await h.advance(120, step=2)
    limited = [r.time for r in h.sim.requests if r.status == 429]
    assert len(limited) == 1
    sent = h.requests(TD) + h.requests(TOKEN_TARGET)
    assert not [t for t in sent if limited[0] < t < limited[0] + 60]
    assert h.value("batchjob_exporter_rate_limited_total", source="td") == 1
    assert h.value("batchjob_exporter_rate_limited_seconds_total", source="td") == 60
    for i in range(3):
        assert h.value("batchjob_poll_success", source="td", job_id=f"t{i}") == 1
