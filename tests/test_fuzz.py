"""Hostile clients against a real exporter process: it stays up, answers well and logs quietly.

Raw-socket requests with random methods, paths, headers and bodies (seeded, so a failure
replays) go to both listeners of ``batch-job-exporter --demo``; then the process must be
alive and healthy, every answer a well-formed HTTP response, the log free of tracebacks and
errors, memory bounded, and the bad requests counted.  ``--fuzz-requests=N`` runs longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

START_TIMEOUT = 30.0
ANSWER_TIMEOUT = 5.0
# What the process may grow by over the run: the fuzz must not leak per request.
RSS_GROWTH_MB = 40.0
# aiohttp answers in the version the request named, "HTTP/2.0" (with a 505) included.
STATUS = re.compile(rb"HTTP/\d\.\d (\d{3}) [^\r\n]*\r\n")

METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"get", b"BREW"]
# The first four of each: what the listener serves; then what it does not.
WEB_PATHS = [b"/", b"/metrics", b"/healthz", b"/readyz", b"/-/reload"]
API_PATHS = [
    b"/api/v1/jobs",
    b"/api/v1/sources/fs/jobs/x",
    b"/api/v1/sources/fs/jobs/a%2F..%2F..%2Fetc%2Fpasswd",
    b"/api/v1/sources/td/jobs/%3Cscript%3E",
]
PATHS = [
    b"/api/v1/sources/%00/jobs/%ZZ",
    b"/../../../../etc/passwd",
    b"/%2e%2e/%2e%2e/",
    b"/api/v1/sources/fs/jobs/" + "é☃".encode() * 10,
    b"/\xff\xfe\x80",
    b"*",
    b"http://evil.example/metrics",
]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/0.9"]
BODIES = [
    b"",
    b"{}",
    b'{"labels": {"team": "growth"}}',
    b'{"labels": {"0bad": 1}}',
    b'{"labels": ' * 2000,
    b"\x00\xff" * 100,
    b"[" * 50_000,
]


def fuzz_requests(config: pytest.Config) -> int:
    """How many requests to send (``--fuzz-requests``, default 400)."""
    value: int = config.getoption("fuzz_requests")
    return value


HEADERS = [
    b"X-Big: " + b"b" * 9000,
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999",
    b"No colon here",
    b": empty name",
    b"Authorization: Bearer \x00\x01",
    b"X-Ctl: \x7f\x01",
    b"Host: second.example",
]


def random_request(rng: random.Random, *, api: bool) -> bytes:
    """One request to a listener: a plausible one with none, one or two things broken in it."""
    method = rng.choice(METHODS[:7])
    path = rng.choice(API_PATHS if api else WEB_PATHS)
    version = b"HTTP/1.1"
    body = rng.choice(BODIES[:4])
    headers = [b"Host: 127.0.0.1", b"Accept-Encoding: gzip"]
    length = b"Content-Length: %d" % len(body)
    for mutation in rng.sample(range(9), rng.choices([0, 1, 2], [3, 5, 2])[0]):
        if mutation == 0:
            method = rng.choice([*METHODS[7:], bytes(rng.randrange(256) for _ in range(5))])
        elif mutation == 1:
            path = rng.choice([*PATHS, b"/" + b"a" * rng.choice([8200, 20_000])])
        elif mutation == 2:
            path += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif mutation == 3:
            version = rng.choice([b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/0.9"])
        elif mutation == 4:
            headers.append(rng.choice(HEADERS))
        elif mutation == 5:  # a duplicated length that disagrees with itself
            headers.append(b"Content-Length: %d" % (len(body) + 3))
        elif mutation == 6:  # broken chunking
            length = b"Transfer-Encoding: chunked"
            body = rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nab\r\n0\r\n\r\n"])
        elif mutation == 7:  # a body that does not fit its length, or a hostile one
            body = rng.choice(BODIES[4:])
        else:  # a body shorter than announced: cut off by the body timeout
            length = b"Content-Length: %d" % (len(body) + 10)
    headers.append(length)
    if rng.random() < 0.5:
        headers.append(b"Connection: close")
    return b"%s %s %s\r\n%s\r\n\r\n%s" % (method, path, version, b"\r\n".join(headers), body)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and head of the first answer; fail if it is not one."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT)
    match = STATUS.match(head)
    assert match is not None, head[:200]
    for line in head.split(b"\r\n")[1:-2]:
        assert re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+: [\t\x20-\x7e\x80-\xff]*", line), line
    return int(match[1]), head


async def start(spawned: list[asyncio.subprocess.Process], log: Path) -> tuple[int, int, int]:
    """The demo exporter with its registration API on port 0: (pid, metrics port, API port)."""
    handle = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "--demo",
        "--web.listen-address=127.0.0.1:0",
        "--api.listen-address=127.0.0.1:0",
        "--web.body-timeout=1s",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=handle,
        stderr=handle,
    )
    handle.close()
    spawned.append(proc)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline and proc.returncode is None:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        web = re.search(r"serving /metrics on port (\d+)", text)
        api = re.search(r"registration API on port (\d+)", text)
        if web and api:
            return proc.pid, int(web[1]), int(api[1])
        await asyncio.sleep(0.1)
    text = await asyncio.to_thread(log.read_text, errors="replace")
    pytest.fail(f"the exporter did not start:\n{text[-2000:]}")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def send(port: int, raw: bytes) -> tuple[int, bytes] | None:
    """Send one raw request; the answer, or ``None`` if the server closed without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        # The server may close while we still send; an answer may be in all the same.
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:
            return await read_answer(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
    finally:
        writer.close()


async def test_fuzzed_requests_leave_the_exporter_up_quiet_and_counted(
    spawned: list[asyncio.subprocess.Process], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """400 seeded hostile requests: answers well-formed, no traceback, memory bounded."""
    count = fuzz_requests(request.config)
    log = tmp_path / "exporter.log"
    pid, web, api = await start(spawned, log)
    # Warm up: the first scrapes build the page's caches, which are not a leak.
    for _ in range(3):
        assert (await send(web, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") or (0,))[0] == 200
    before = rss_mb(pid)
    rng = random.Random(20261201)
    statuses: dict[int, int] = {}
    unanswered = 0
    for n in range(count):
        port = web if n % 2 else api
        raw = random_request(rng, api=port == api)
        answer = await send(port, raw)
        if answer is None:
            unanswered += 1
            continue
        status, head = answer
        statuses[status] = statuses.get(status, 0) + 1
        assert 200 <= status < 600, raw[:200]
        assert b"\r\nServer: batch-job-exporter\r\n" in head, head
        if port == api and status >= 400:
            assert b"\r\nContent-Type: application/json" in head, (raw[:200], head)
    after = rss_mb(pid)
    assert spawned[0].returncode is None
    health = await send(web, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health is not None
    assert health[0] == 200
    text = await asyncio.to_thread(log.read_text, errors="replace")
    assert "Traceback" not in text
    assert "level=error" not in text
    assert "level=critical" not in text
    # Some requests are broken in ways only a closed connection answers (a body that never
    # comes is cut off by the body timeout); they are few.
    assert unanswered <= count // 10, statuses
    assert sum(v for k, v in statuses.items() if 400 <= k < 500) >= count // 4, statuses
    # 505 answers "HTTP/2.0" in plain text: the client's fault, not ours.
    assert sum(v for k, v in statuses.items() if k >= 500 and k != 505) == 0, statuses
    assert sum(v for k, v in statuses.items() if k < 300) >= count // 25, statuses
    assert after - before < RSS_GROWTH_MB, (before, after)
    metrics = await scrape(web)
    bad = {
        m[1]: float(m[2])
        for m in re.finditer(
            r'^batchjob_exporter_http_bad_requests_total\{listener="(\w+)"\} (\S+)$',
            metrics,
            re.M,
        )
    }
    assert set(bad) == {"api", "metrics"}
    assert bad["api"] > 0
    assert bad["metrics"] > 0


async def scrape(port: int) -> str:
    """The whole ``/metrics`` page."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT)
    writer.close()
    return data.partition(b"\r\n\r\n")[2].decode()
