"""The registration API: an app adds and removes jobs on its running sidecar."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config.web import WebConfig
from exporter.exposition.guard import HttpLimits
from exporter.exposition.websecurity import WebSecurity
from exporter.intake.registration import (
    ApiError,
    JobsApiServer,
    parse_job_path,
    parse_labels,
    unprotected,
)
from exporter.jobs.shard import Shard
from exporter.state.statefile import StorageError
from exporter.state.storage import SqliteStore
from tests.harness import FS, Harness, source_yaml
from tests.state.test_storage import rows

MakeHarness = Callable[..., Awaitable[Harness]]
ApiFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_api(
    make_harness: MakeHarness,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Harness, str]]]]:
    """A running exporter with one Fullstory source and its API on port 0, closed afterwards."""
    servers: list[JobsApiServer] = []

    async def make(
        token_file: str | None = None, max_jobs: int = 10_000, limits: HttpLimits | None = None
    ) -> tuple[Harness, str]:
        h = await make_harness()
        h.sim.add_job(FS, "cfg", total=10_000, rate=1)
        await h.start(source_yaml(h.sim, FS, "fs", ["cfg"]), max_jobs=max_jobs)
        assert h.exporter is not None
        api = JobsApiServer(
            h.exporter.watchlist,
            host="127.0.0.1",
            port=0,
            monotonic=h.clock.monotonic,
            token_file=token_file,
            limits=limits,
        )
        await api.start()
        servers.append(api)
        return h, f"http://127.0.0.1:{api.port}/api/v1"

    yield make
    for api in servers:
        await api.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for the test."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_register_poll_list_and_remove(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]], http: aiohttp.ClientSession
) -> None:
    """PUT watches a job (201, then 200), it gets polled, GET lists it, DELETE drops it."""
    h, base = await make_api()
    h.sim.add_job(FS, "a/../b", total=10_000, rate=1)
    url = f"{base}/sources/fs/jobs/a%2F..%2Fb"
    async with http.put(url, json={"labels": {"team": "growth"}}) as resp:
        assert resp.status == 201
    async with http.put(url) as resp:
        assert resp.status == 200
    await h.advance(6)
    assert h.value("batchjob_poll_success", source="fs", job_id="a/../b") == 1
    info = [
        dict(labels)
        for (name, labels), _ in h.samples().items()
        if name == "batchjob_info" and dict(labels)["job_id"] == "a/../b"
    ]
    assert info[0]["origin"] == "api"
    assert info[0]["team"] == "growth"
    async with http.get(f"{base}/jobs") as resp:
        jobs = (await resp.json())["jobs"]
    by_id = {job["id"]: job for job in jobs}
    assert by_id["a/../b"]["origin"] == "api"
    assert by_id["a/../b"]["status"] == "running"
    assert by_id["cfg"]["origin"] == "config"
    async with http.delete(url) as resp:
        assert resp.status == 204
    async with http.delete(url) as resp:
        assert resp.status == 404
    assert h.value("batchjob_poll_success", source="fs", job_id="a/../b") is None


@pytest.mark.parametrize(
    "case",
    [
        ("PUT", "/sources/nope/jobs/x", None, 404, "unknown source 'nope'"),
        (
            "PUT",
            "/sources/fs/jobs/" + "x" * 257,
            None,
            400,
            "job ID is 257 characters long, at most 256",
        ),
        ("PUT", "/sources/fs/jobs/%0A", None, 400, 'job ID "\\n" contains a control character'),
        ("PUT", "/sources/fs/jobs/x", b"{not json", 400, "body is not JSON"),
        (
            "PUT",
            "/sources/fs/jobs/x",
            b'{"labels": {"job_id": "y"}}',
            400,
            "label job_id is the exporter's own (reserved: api, code, format, job_id, name,"
            " origin, source, status, timezone, vendor_status)",
        ),
        (
            "PUT",
            "/sources/fs/jobs/x",
            b'{"labels": {"team": 3}}',
            400,
            "label team: value must be a string of at most 1024 characters",
        ),
        ("PUT", "/sources/fs/jobs/x", b'{"other": 1}', 400, 'body must be {"labels": {...}}'),
        ("PUT", "/sources/fs/jobs/x", b"x" * 100_000, 413, "body larger than 65536 bytes"),
        ("POST", "/sources/fs/jobs/x", None, 405, "use PUT or DELETE"),
        ("POST", "/jobs", None, 405, "use GET"),
        ("PUT", "/sources/fs/x", None, 404, "no such endpoint"),
        (
            "DELETE",
            "/sources/fs/jobs/cfg",
            None,
            409,
            "job comes from the config, not the API; remove it there",
        ),
    ],
)
async def test_bad_requests_get_json_errors(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]],
    http: aiohttp.ClientSession,
    case: tuple[str, str, bytes | None, int, str],
) -> None:
    """Unknown sources, bad IDs, bad bodies, wrong methods, config jobs: clear JSON errors."""
    method, path, body, status, error = case
    _, base = await make_api()
    async with http.request(method, base + path, data=body) as resp:
        assert resp.status == status
        assert await resp.json() == {"error": error}


async def test_cap_on_jobs_per_source(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]], http: aiohttp.ClientSession
) -> None:
    """Beyond the per-source cap a registration is refused with 507, never a crash."""
    _, base = await make_api(max_jobs=2)
    async with http.put(f"{base}/sources/fs/jobs/one") as resp:
        assert resp.status == 201
    async with http.put(f"{base}/sources/fs/jobs/two") as resp:
        assert resp.status == 507


async def test_bearer_token_is_required_and_rotatable(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """With a token file, requests need 'Bearer <token>'; a new file counts within a second."""
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    h, base = await make_api(token_file=str(token))

    async def status(sent: str | None) -> tuple[int, object]:
        headers = {} if sent is None else {"Authorization": f"Bearer {sent}"}
        async with http.get(f"{base}/jobs", headers=headers) as resp:
            body = await resp.json()
            return resp.status, body.get("error", "ok")

    refused = (401, "missing or wrong bearer token")
    assert await status(None) == refused
    assert await status("wrong") == refused
    assert await status("t0ken") == (200, "ok")
    # Another file under the name, as a rotated Kubernetes secret is.
    (tmp_path / "token.new").write_text("n3w\n")
    (tmp_path / "token.new").replace(token)
    h.clock.advance(0.75)  # the file is re-checked at most once a second
    assert await status("t0ken") == (200, "ok")
    h.clock.advance(0.25)
    assert await status("t0ken") == refused
    assert await status("n3w") == (200, "ok")
    token.unlink()
    h.clock.advance(1.0)
    assert await status("n3w") == (503, "the API token file cannot be read")


def test_path_parsing_decodes_after_splitting() -> None:
    """An encoded slash stays inside the ID; extra segments are not an endpoint."""
    assert parse_job_path("/api/v1/sources/fs/jobs/a%2Fb") == ("fs", "a/b")
    with pytest.raises(ApiError):
        parse_job_path("/api/v1/sources/fs/jobs/a/b")
    assert parse_labels(b"  ") == ()
    assert parse_labels(b'{"labels": {"b": "2", "a": "1"}}') == (("a", "1"), ("b", "2"))


async def raw_answer(base: str, raw: bytes) -> tuple[str, dict[str, object]]:
    """Send raw bytes to the API's listener: the status line and the JSON body of the answer."""
    port = int(base.split(":")[2].split("/", maxsplit=1)[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert "Content-Type: application/json; charset=utf-8" in lines
    doc: dict[str, object] = json.loads(body)
    return lines[0], doc


async def test_a_request_line_too_long_to_parse_gets_a_json_error(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]],
) -> None:
    """Over aiohttp's 8 KiB request line the answer is still the API's JSON error."""
    _, base = await make_api()
    status, doc = await raw_answer(base, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.0 400 Bad Request"
    assert str(doc["error"]).startswith("Got more than 8190 bytes")


async def test_a_body_slower_than_the_body_timeout_gets_408(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]],
) -> None:
    """A PUT that announces 20 bytes and sends 2 is answered 408 once the timeout passes."""
    _, base = await make_api(limits=HttpLimits(body_timeout=0.2))
    raw = b"PUT /api/v1/sources/fs/jobs/x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{}"
    status, doc = await raw_answer(base, raw)
    assert status == "HTTP/1.1 408 Request Timeout"
    assert doc == {"error": "body not received within 0.2s"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_any_body_gives_labels_or_a_400(body: bytes) -> None:
    """Whatever a client sends as a PUT body: labels, or an ApiError 400, nothing else."""
    status = 200
    try:
        labels = parse_labels(body)
    except ApiError as exc:
        status, labels = exc.status, ()
    assert status in (200, 400)
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in labels)


@pytest.mark.parametrize(
    ("host", "token", "basic_auth", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("127.3.4.5", False, False, False),
        ("::1", False, False, False),
        ("localhost", False, False, False),
        ("", False, False, True),
        ("0.0.0.0", False, False, True),  # noqa: S104 - the very address the check refuses
        ("10.1.2.3", False, False, True),
        ("api.example", False, False, True),
        ("0.0.0.0", True, False, False),  # noqa: S104 - allowed with a token
        ("", False, True, False),
    ],
)
def test_the_api_refuses_other_interfaces_without_authentication(
    host: str, token: bool, basic_auth: bool, refused: bool
) -> None:
    """Loopback may go without authentication; anything else needs a token or basic auth."""
    why = unprotected(host, 10114, token=token, basic_auth=basic_auth)
    assert (why is not None) is refused
    if why is not None:
        assert why.startswith(f"refusing to serve the registration API on {host or '*'}:10114")
        assert "--api.token-file" in why
        assert "basic_auth_users" in why


async def test_either_the_bearer_token_or_basic_auth_lets_a_request_in(
    make_harness: MakeHarness, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """With both set, a right token or a right password is enough; neither gets 401 JSON."""
    h = await make_harness()
    h.sim.add_job(FS, "cfg", total=10, rate=1)
    await h.start(source_yaml(h.sim, FS, "fs", ["cfg"]))
    assert h.exporter is not None
    token = tmp_path / "token"
    token.write_text("t0ken")
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    web = WebConfig(basic_auth_users=(("app", hashed),))
    security = WebSecurity(None, web, monotonic=h.clock.monotonic)
    async with JobsApiServer(
        h.exporter.watchlist,
        host="127.0.0.1",
        port=0,
        monotonic=h.clock.monotonic,
        token_file=str(token),
        security=security,
    ) as api:
        url = f"http://127.0.0.1:{api.port}/api/v1/jobs"
        cases = [
            ({"Authorization": "Bearer t0ken"}, 200),
            ({"Authorization": "Basic " + base64.b64encode(b"app:pw").decode()}, 200),
            ({"Authorization": "Bearer wrong"}, 401),
            ({"Authorization": "Basic " + base64.b64encode(b"app:no").decode()}, 401),
            ({}, 401),
        ]
        for headers, status in cases:
            async with http.get(url, headers=headers) as resp:
                assert resp.status == status, headers
                assert resp.content_type == "application/json"


async def test_the_bearer_scheme_is_case_insensitive(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]],
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    """``bearer TOKEN`` is as good as ``Bearer TOKEN`` (RFC 9110: schemes ignore case)."""
    token = tmp_path / "token"
    token.write_text("t0ken")
    _, base = await make_api(token_file=str(token))
    for value, status in (("bearer t0ken", 200), ("BEARER t0ken", 200), ("Bearer t0ke", 401)):
        async with http.get(f"{base}/jobs", headers={"Authorization": value}) as resp:
            assert resp.status == status, value


async def test_a_job_of_another_shard_is_answered_421_with_its_owner(
    make_harness: MakeHarness, http: aiohttp.ClientSession
) -> None:
    """Sharded without a fleet, a PUT for another shard's job says which shard to ask."""
    h = await make_harness()
    await h.start(source_yaml(h.sim, FS, "fs", []), shard=Shard(0, 2))
    assert h.exporter is not None
    other = next(f"j{n}" for n in range(50) if not Shard(0, 2).owns(("fs", f"j{n}")))
    async with JobsApiServer(
        h.exporter.watchlist, host="127.0.0.1", port=0, monotonic=h.clock.monotonic
    ) as api:
        url = f"http://127.0.0.1:{api.port}/api/v1/sources/fs/jobs/{other}"
        async with http.put(url) as resp:
            assert resp.status == 421
            assert await resp.json() == {
                "error": "job falls to shard 1 of 2, not this one (0): register it there"
            }


async def test_a_change_is_on_disk_before_it_is_acknowledged(
    make_harness: MakeHarness, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """PUT and DELETE answer after the state file has the change, long before its next flush."""
    db = str(tmp_path / "state.db")
    h = await make_harness()
    # An hour on the fake clock, which the test never advances: only the API's writes happen.
    store = SqliteStore(db, flush_interval=3600, clock=h.clock)
    await h.start(source_yaml(h.sim, FS, "fs", []), store=store)
    assert h.exporter is not None
    h.sim.add_job(FS, "j1", total=10, rate=1)
    async with JobsApiServer(
        h.exporter.watchlist,
        host="127.0.0.1",
        port=0,
        monotonic=h.clock.monotonic,
        persist=store.flush,
    ) as api:
        url = f"http://127.0.0.1:{api.port}/api/v1/sources/fs/jobs/j1"
        async with http.put(url) as resp:
            assert resp.status == 201
        assert [(source, job) for source, job, _ in rows(db)] == [("fs", "j1")]
        async with http.delete(url) as resp:
            assert resp.status == 204
        assert rows(db) == []


async def test_a_change_the_disk_refuses_is_answered_503(
    make_api: Callable[..., Awaitable[tuple[Harness, str]]], http: aiohttp.ClientSession
) -> None:
    """A write that fails is not acknowledged: 503 with the reason; a PUT or DELETE retry writes."""
    h, _ = await make_api()
    assert h.exporter is not None
    tries: list[int] = []

    async def full_disk() -> None:
        tries.append(1)
        raise StorageError("cannot write state.db: database or disk is full")

    async with JobsApiServer(
        h.exporter.watchlist,
        host="127.0.0.1",
        port=0,
        monotonic=h.clock.monotonic,
        persist=full_disk,
    ) as api:
        url = f"http://127.0.0.1:{api.port}/api/v1/sources/fs/jobs/j1"
        for _ in range(2):
            async with http.put(url) as resp:
                assert resp.status == 503
                assert await resp.json() == {
                    "error": "the change is made but not saved, retry: "
                    "cannot write state.db: database or disk is full"
                }
        assert h.exporter.watchlist.origin_of("fs", "j1") == "api"
        # The retry of a DELETE meets no job, but is not answered 404 before it is on disk.
        for _ in range(2):
            async with http.delete(url) as resp:
                assert resp.status == 503
    assert tries == [1, 1, 1, 1]
    assert h.exporter.watchlist.origin_of("fs", "j1") is None
