"""Signed requests as they go on the wire: the headers, the fake clock's second, the raw path.

A loopback server records each request's raw target and headers; every
expected signature is computed here with hashlib over the exact string.  The
end-to-end tests run the exporter against the simulator, which checks
signatures with its own code.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from exporter.clock import FakeClock
from exporter.config import Config, ConfigError, RequestSignature, Secret, SourceConfig
from exporter.model import Response
from exporter.polling.asking import AUTH_RETRY
from exporter.polling.auth import AuthError
from exporter.polling.client import SourceClient
from exporter.polling.pool import SourcePool
from exporter.simulator import SimCredentials
from exporter.simulator.vendors.evocalize import EvocalizeCredentials
from exporter.vendors import REGISTRY, evocalize
from tests.harness import EVO, Harness, source_yaml

MakeHarness = Callable[..., Awaitable[Harness]]

KEY_ID = "a5646c38-fc29-11e9-8f0b-362b9e155667"
SECRET = "s3cret-one"  # noqa: S105 - a fake secret
# Not the same length: a rewrite changes the file's fingerprint even within one mtime tick.
ROTATED = "s3cret-two-longer"
REPORT = "management/v1/items/report/{id}"
ERRORS = "management/v1/items/report/{id}/errors"


@dataclass
class Seen:
    """What the loopback server received: each request's raw target and headers."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request and answer a small report."""
        self.requests.append((request.raw_path, dict(request.headers)))
        return web.json_response({"data": {"isCompleted": False}})


@dataclass
class Stats:
    """Request outcomes the client counts."""

    codes: list[str] = field(default_factory=list)

    def request(self, source: str, code: str, seconds: float) -> None:
        """Count one request."""
        del source, seconds
        self.codes.append(code)


@pytest.fixture
async def server() -> AsyncIterator[tuple[URL, Seen]]:
    """A loopback HTTP server under ``/evo/`` that records what it receives."""
    seen = Seen()
    app = web.Application()
    app.router.add_get("/{tail:.*}", seen.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    yield URL(f"http://127.0.0.1:{port}/evo/"), seen
    await runner.cleanup()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A secret file holding SECRET."""
    path = tmp_path / "evocalize-secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


def evo_source(base_url: URL, secret: Secret | None) -> SourceConfig:
    """An Evocalize source at ``base_url``, signed with ``secret`` unless it is ``None``."""
    return SourceConfig(
        name="evo",
        api=evocalize.SPEC.name,
        base_url=str(base_url),
        path=REPORT,
        poll_interval=30.0,
        errors_path=ERRORS,
        signature=None if secret is None else RequestSignature(KEY_ID, secret),
    )


def signed_client(src: SourceConfig, clock: FakeClock, stats: Stats) -> SourceClient:
    """A client of ``src`` that signs with Evocalize's function on the fake clock."""
    return SourceClient(
        src,
        timeout=5.0,
        max_connections=2,
        stats=stats,
        monotonic=clock.monotonic,
        wall=clock.time,
        sign=evocalize.SPEC.sign,
    )


def expected(path: str, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    """The three signature headers, the signature computed by hand."""
    digest = hashlib.sha256(f"{path}\n{timestamp}\n{secret}".encode()).hexdigest()
    return {
        "X-Evocalize-Client-Key-Id": KEY_ID,
        "X-Evocalize-Timestamp": str(timestamp),
        "X-Evocalize-Signature": digest,
    }


SIGNATURE_HEADERS = ("X-Evocalize-Client-Key-Id", "X-Evocalize-Timestamp", "X-Evocalize-Signature")


def signature_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The signature headers among those a request carried."""
    return {name: headers[name] for name in SIGNATURE_HEADERS if name in headers}


async def poll(client: SourceClient, template: str, job_id: str, **query: str) -> Response | str:
    """What the poller does: the credentials headers first, then the GET."""
    headers = await client.auth.headers()
    return await client.get(client.url(template, job_id, query or None), headers)


async def test_a_hostile_id_is_signed_as_its_percent_encoded_path(
    server: tuple[URL, Seen], secret_file: Path, clock: FakeClock
) -> None:
    """The signature covers the path exactly as sent: ``a%2Fb%20c``, never ``a/b c``."""
    url, seen = server
    clock.advance(0.75)  # a fractional wall time: the header carries its whole second
    async with signed_client(evo_source(url, Secret(file=str(secret_file))), clock, Stats()) as c:
        answer = await poll(c, REPORT, "a/b c")
    assert isinstance(answer, Response)
    assert answer.status == 200
    ((raw_path, headers),) = seen.requests
    assert raw_path == "/evo/management/v1/items/report/a%2Fb%20c"
    now = int(clock.time())
    assert now == 1_700_001_000
    assert signature_of(headers) == expected(raw_path, now)
    assert "X-Evocalize-Client-Key" not in headers


async def test_the_query_is_not_signed(
    server: tuple[URL, Seen], secret_file: Path, clock: FakeClock
) -> None:
    """An errors page's ``?pageToken=`` goes on the wire but not into the signature."""
    url, seen = server
    async with signed_client(evo_source(url, Secret(file=str(secret_file))), clock, Stats()) as c:
        await poll(c, ERRORS, "r 1", pageToken="t/=&")
    ((raw_path, headers),) = seen.requests
    assert raw_path == "/evo/management/v1/items/report/r%201/errors?pageToken=t%2F%3D%26"
    path = "/evo/management/v1/items/report/r%201/errors"
    assert signature_of(headers) == expected(path, int(clock.time()))


async def test_each_request_is_signed_at_the_clocks_second(
    server: tuple[URL, Seen], clock: FakeClock
) -> None:
    """The timestamp follows the exporter's wall clock, request by request."""
    url, seen = server
    async with signed_client(evo_source(url, Secret(inline=SECRET)), clock, Stats()) as c:
        start = int(clock.time())
        for step in (0.0, 0.5, 0.5, 59.0, 3600.0):
            clock.advance(step)
            await poll(c, REPORT, "r")
    stamps = [int(headers["X-Evocalize-Timestamp"]) for _, headers in seen.requests]
    assert [stamp - start for stamp in stamps] == [0, 0, 1, 60, 3660]
    path = "/evo/management/v1/items/report/r"
    assert [signature_of(h) for _, h in seen.requests] == [expected(path, s) for s in stamps]


async def test_a_rotated_secret_file_signs_within_a_second(
    server: tuple[URL, Seen], secret_file: Path, clock: FakeClock
) -> None:
    """A rewritten secret file is read again once its fingerprint changes (checked each second)."""
    url, seen = server
    async with signed_client(evo_source(url, Secret(file=str(secret_file))), clock, Stats()) as c:
        await poll(c, REPORT, "r")
        secret_file.write_text(ROTATED + "\n", encoding="utf-8")  # noqa: ASYNC240 - a tiny file
        clock.advance(1.0)
        await poll(c, REPORT, "r")
    path, now = "/evo/management/v1/items/report/r", int(clock.time())
    assert signature_of(seen.requests[0][1]) == expected(path, now - 1)
    assert signature_of(seen.requests[1][1]) == expected(path, now, ROTATED)


async def test_an_unreadable_secret_fails_before_any_request(
    server: tuple[URL, Seen], secret_file: Path, clock: FakeClock
) -> None:
    """A secret file gone: ``headers()`` raises AuthError, and a GET sends nothing."""
    url, seen = server
    stats = Stats()
    async with signed_client(evo_source(url, Secret(file=str(secret_file))), clock, stats) as c:
        headers = await c.auth.headers()
        secret_file.unlink()  # noqa: ASYNC240 - a tiny local file
        clock.advance(1.0)
        with pytest.raises(AuthError) as refused:
            await c.auth.headers()
        assert refused.value.reason == "secret_unreadable"
        assert str(refused.value) == f"cannot read file {secret_file}: No such file or directory"
        assert await c.get(c.url(REPORT, "r"), headers) == "secret_unreadable"
    assert (seen.requests, stats.codes) == ([], [])


async def test_an_unsigned_source_sends_no_signature(
    server: tuple[URL, Seen], clock: FakeClock
) -> None:
    """Without ``evocalize_signature`` the client adds nothing, even with a signer."""
    url, seen = server
    async with signed_client(evo_source(url, None), clock, Stats()) as c:
        await poll(c, REPORT, "r")
    assert signature_of(seen.requests[0][1]) == {}


async def test_the_pool_signs_with_the_apis_function_and_the_clocks_time(
    server: tuple[URL, Seen], clock: FakeClock
) -> None:
    """Clients the pool builds sign with the registry's ``sign`` at the clock's wall time."""
    url, seen = server
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(1))
    try:
        await pool.update(Config(sources=(evo_source(url, Secret(inline=SECRET)),)))
        await poll(pool.runtimes["evo"].client, REPORT, "r")
    finally:
        await pool.close()
    path = "/evo/management/v1/items/report/r"
    assert signature_of(seen.requests[0][1]) == expected(path, int(clock.time()))


async def test_a_signature_for_an_api_that_does_not_sign_is_refused(clock: FakeClock) -> None:
    """A model built by hand with a signature on another API cannot set up its client."""
    src = SourceConfig(
        name="fs",
        api="batch_import_job",
        base_url="http://127.0.0.1:9/",
        path="v2/events/batch/{id}",
        poll_interval=30.0,
        signature=RequestSignature(KEY_ID, Secret(inline=SECRET)),
    )
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(1))
    with pytest.raises(ConfigError) as caught:
        await pool.update(Config(sources=(src,)))
    assert caught.value.problems == (
        "sources: fs: cannot set up its HTTP client: API batch_import_job does not sign requests",
    )
    await pool.close()


# -- end to end: the exporter against the simulator that checks signatures ------------------

SIGNED_ONLY = SimCredentials(EvocalizeCredentials(modes=frozenset({"signature"})))
WRONG = "wrong-secret-4821"  # a fake secret that no log line may show


def signed_yaml(h: Harness, secret_file: Path, jobs: list[str]) -> str:
    """An Evocalize source block signing with the secret in ``secret_file``."""
    ids = "".join(f"      - {job_id!r}\n" for job_id in jobs)
    key_id = h.sim.credentials.of(EvocalizeCredentials).key_id
    return (
        f"  - name: evo\n    api: {EVO}\n    base_url: {h.sim.base_url(EVO)!r}\n"
        f"    evocalize_signature:\n      key_id: {key_id}\n"
        f"      secret_file: {str(secret_file)!r}\n    jobs:\n{ids}"
    )


async def test_a_signed_source_passes_the_simulator_that_checks_it(
    make_harness: MakeHarness,
) -> None:
    """The simulator's snippet signs; report and paged errors of a hostile ID all pass."""
    h = await make_harness(credentials=SIGNED_ONLY)
    h.sim.add_job(EVO, "a/b c", total=20, rate=1, error_every=5)
    text = source_yaml(h.sim, EVO, "evo", ["a/b c"])
    assert "evocalize_signature" in text
    assert "X-Evocalize-Client-Key" not in text
    await h.start(text)
    await h.advance(30, step=10)
    assert h.status("evo", "a/b c") == "completed"
    counted = {
        dict(labels)["code"]: value
        for (name, labels), value in h.samples().items()
        if name == "batchjob_errors_by_code"
    }
    assert sum(counted.values()) == 4
    report = "/evocalize/management/v1/items/report/a%2Fb%20c"
    # The report until it is finished, then its errors listing: two pages, each one signed.
    assert [(r.raw_path, r.status) for r in h.sim.requests] == [
        (report, 200),
        (report, 200),
        (report + "/errors", 200),
        (report + "/errors?pageToken=b2Zmc2V0OjI%3D", 200),
    ]


async def test_a_wrong_secret_is_refused_once_held_then_healed_never_shown(
    make_harness: MakeHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong secret: one clear error line, the 401 hold, then the fixed file signs."""
    h = await make_harness(credentials=SIGNED_ONLY)
    h.sim.add_job(EVO, "r", total=100_000, rate=1)
    secret = tmp_path / "evocalize-secret"
    secret.write_text(WRONG + "\n")
    caplog.set_level(logging.DEBUG)
    await h.start(signed_yaml(h, secret, ["r"]))
    await h.advance(AUTH_RETRY * 2, step=10)
    times = h.requests(EVO)
    assert [b - a for a, b in itertools.pairwise(times)] == [AUTH_RETRY + 10]
    assert [r.status for r in h.sim.requests] == [401, 401]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "source evo: credentials refused (HTTP 401) EV_UNAUTHORIZED_INVALID_SIGNATURE: "
        "Signature provided in X-Evocalize-Signature is not valid."
    ]
    assert h.value("batchjob_poll_success", source="evo", job_id="r") == 0
    good = h.sim.credentials.of(EvocalizeCredentials).secret
    secret.write_text(good + "\n")
    await h.advance(AUTH_RETRY, step=10)
    assert h.value("batchjob_poll_success", source="evo", job_id="r") == 1
    assert [r.status for r in h.sim.requests][-1] == 200
    assert "source evo: credentials accepted again" in caplog.text
    assert h.exporter is not None
    page = h.exporter.render()
    for value in (WRONG, good):
        assert not any(value in f"{r.getMessage()} {r.args}" for r in caplog.records)
        assert value.encode() not in page
