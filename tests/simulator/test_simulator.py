"""The vendor API simulator over real HTTP on loopback: lifecycle, paths, the command line."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest
from yarl import URL

from exporter.simulator import DEMO_JOBS, EVOCALIZE, FULLSTORY, TALKDESK, Simulator
from exporter.simulator.__main__ import main, parse_listen, serve
from tests.simulator.helpers import (
    DEMO_CLIENT,
    EVO_HEADERS,
    EVO_REPORT,
    FORM_HEADER,
    FS_BATCH,
    FS_HEADERS,
    T0,
    TD_JOBS,
    FakeClock,
    call,
    raw_http,
    token,
)

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
