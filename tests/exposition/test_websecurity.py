"""The web config on a real listener: TLS per connection, client certificates, auth, headers."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web

from exporter.clock import FakeClock
from exporter.config.web import WebConfig, load_web_config
from exporter.exposition.guard import HttpLimits, plain_error
from exporter.exposition.listener import Listener
from exporter.exposition.websecurity import (
    CACHE_SIZE,
    MAX_PENDING,
    RECHECK_SECONDS,
    ServerTLS,
    WebSecurity,
)
from tests.polling.test_client_tls import Pem, issue, make_ca

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
WAIT = 5.0


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Pem]:
    """A CA, a server certificate, a second one for rotation, and a client certificate."""
    ca = make_ca(tmp_path, "ca")
    return {
        "ca": ca,
        "server": issue(tmp_path, ca, "server"),
        "rotated": issue(tmp_path, ca, "rotated"),
        "client": issue(tmp_path, ca, "client", usage="clientAuth"),
    }


def app() -> web.Application:
    """``/`` answers ok and sets its own CSP; ``/healthz`` answers ok."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"Content-Security-Policy": "default-src 'none'"})

    a = web.Application()
    a.router.add_get("/", ok)
    a.router.add_get("/healthz", ok)
    return a


Serve = Callable[..., AbstractAsyncContextManager[Listener]]


@pytest.fixture
def serve() -> Serve:
    """A listener on port 0 guarded by a web security, for an ``async with``."""

    @asynccontextmanager
    async def run(
        security: WebSecurity, limits: HttpLimits | None = None
    ) -> AsyncIterator[Listener]:
        async with (
            security,
            Listener(
                app,
                host="127.0.0.1",
                port=0,
                security=security,
                open_paths=frozenset({"/healthz"}),
                limits=limits,
            ) as listener,
        ):
            yield listener

    return run


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``; the path."""
    path.write_text(text, encoding="utf-8")
    return path


def client_tls(ca: Pem, cert: Pem | None = None) -> ssl.SSLContext:
    """A client context trusting ``ca``, presenting ``cert`` if given."""
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


async def get(
    port: int, path: str = "/", *, tls: ssl.SSLContext | None = None, auth: str | None = None
) -> tuple[str, dict[str, str], dict[str, object]]:
    """One request on a new connection: the status line, headers, and the peer's certificate."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=tls), WAIT
    )
    peer = writer.get_extra_info("peercert") or {}
    extra = f"Authorization: {auth}\r\n" if auth else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
    data = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    lines = data.partition(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, peer


async def refused(port: int, tls: ssl.SSLContext) -> bool:
    """Whether a TLS request gets no answer (TLS 1.3 tells a refused client on its first read)."""
    try:
        status, _, _ = await get(port, tls=tls)
    except (ssl.SSLError, ConnectionError):
        return True
    return status == ""


def basic(user: str, password: str) -> str:
    """An ``Authorization: Basic`` value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def security_of(path: Path, clock: FakeClock) -> WebSecurity:
    """The web security of the config file at ``path``."""
    return WebSecurity(str(path), load_web_config(str(path)), monotonic=clock.monotonic)


async def after_recheck(security: WebSecurity, clock: FakeClock) -> None:
    """Let the recheck interval pass and a reload it starts (in a thread) finish."""
    clock.advance(RECHECK_SECONDS)
    security.refresh()
    await security.settle()


async def test_basic_auth_lets_the_right_password_in_and_keeps_probes_open(
    serve: Serve, tmp_path: Path, clock: FakeClock
) -> None:
    """No or a wrong password: 401 with WWW-Authenticate; right: 200; /healthz needs none."""
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: {HASH}\n")
    async with serve(security_of(path, clock)) as listener:
        status, headers, _ = await get(listener.port)
        assert status == "HTTP/1.1 401 Unauthorized"
        assert headers["WWW-Authenticate"] == 'Basic realm="batch-job-exporter"'
        assert (await get(listener.port, auth=basic("prometheus", "wrong")))[0].endswith(
            "401 Unauthorized"
        )
        assert (await get(listener.port, auth=basic("nobody", "s3cret")))[0].endswith(
            "401 Unauthorized"
        )
        assert (await get(listener.port, auth="Basic !!!"))[0].endswith("401 Unauthorized")
        # Not ASCII: no user, not a crash (a 500 and a traceback would be log amplification).
        assert (await get(listener.port, auth="Basic \u00e9t\u00e9"))[0].endswith(
            "401 Unauthorized"
        )
        assert (await get(listener.port, auth=basic("prometheus", "s3cret")))[
            0
        ] == "HTTP/1.1 200 OK"
        assert (await get(listener.port, "/healthz"))[0] == "HTTP/1.1 200 OK"


async def test_a_verdict_is_cached_without_the_password(clock: FakeClock) -> None:
    """A second check of the same credentials does not run bcrypt; the cache holds no password."""
    calls: list[bytes] = []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return bcrypt.checkpw(password, hashed)

    security = WebSecurity(
        None, WebConfig(basic_auth_users=(("u", HASH),)), monotonic=clock.monotonic, checkpw=checkpw
    )
    for _ in range(3):
        assert await security.authenticate(basic("u", "s3cret")) == "u"
        assert await security.authenticate(basic("u", "nope")) is None
    assert calls == [b"s3cret", b"nope"]
    assert all(b"s3cret" not in key and b"nope" not in key for key in security.cached_keys())


async def test_tls_serves_the_certificate_and_a_rotated_one_to_new_connections(
    serve: Serve, tmp_path: Path, clock: FakeClock, pki: dict[str, Pem]
) -> None:
    """Replacing the certificate files changes what the next handshake presents, no restart."""
    server = pki["server"]
    path = write(
        tmp_path / "web.yml",
        f"tls_server_config: {{cert_file: {server.cert}, key_file: {server.key}}}\n",
    )
    tls = client_tls(pki["ca"])
    security = security_of(path, clock)
    async with serve(security) as listener:
        status, _, peer = await get(listener.port, tls=tls)
        assert status == "HTTP/1.1 200 OK"
        first = peer["serialNumber"]
        server.cert.write_bytes(pki["rotated"].cert.read_bytes())
        server.key.write_bytes(pki["rotated"].key.read_bytes())
        await after_recheck(security, clock)
        status, _, peer = await get(listener.port, tls=tls)
        assert status == "HTTP/1.1 200 OK"
        assert peer["serialNumber"] != first
        assert dict(x[0] for x in peer["subject"])["commonName"] == "rotated"  # type: ignore[attr-defined]
        # Plain HTTP to a TLS listener is no request at all.
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not (await asyncio.wait_for(reader.read(), WAIT)).startswith(b"HTTP/1.1 200")
        writer.close()


async def test_client_certificates_are_required_and_their_sans_checked(
    serve: Serve, tmp_path: Path, clock: FakeClock, pki: dict[str, Pem]
) -> None:
    """RequireAndVerifyClientCert: no certificate, no answer; a SAN not listed, none either."""
    server, ca = pki["server"], pki["ca"]
    text = (
        f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca.cert}\n"
    )
    path = write(tmp_path / "web.yml", text)
    security = security_of(path, clock)
    async with serve(security) as listener:
        assert (await get(listener.port, tls=client_tls(ca, pki["client"])))[0] == "HTTP/1.1 200 OK"
        assert await refused(listener.port, client_tls(ca)) is True
        write(path, text + "  client_allowed_sans: [scraper.example]\n")
        await after_recheck(security, clock)
        assert await refused(listener.port, client_tls(ca, pki["client"])) is True
        write(path, text + "  client_allowed_sans: [127.0.0.1]\n")
        await after_recheck(security, clock)
        assert (await get(listener.port, tls=client_tls(ca, pki["client"])))[0] == "HTTP/1.1 200 OK"


async def test_a_broken_new_web_config_keeps_the_last_good_one_with_one_line(
    serve: Serve, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A change that does not load is told once; the old users keep working."""
    path = write(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: {HASH}\n")
    security = security_of(path, clock)
    async with serve(security) as listener:
        write(path, "basic_auth_users:\n  prometheus: plaintext\n")
        for _ in range(3):
            await after_recheck(security, clock)
            assert (await get(listener.port, auth=basic("prometheus", "s3cret")))[
                0
            ] == "HTTP/1.1 200 OK"
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert refused == [
        "web config change refused, the last good one stays: "
        f"{path}:2:15: basic_auth_users.prometheus: not a bcrypt hash "
        "(make one with htpasswd -nBC 10)"
    ]


async def test_configured_headers_are_added_and_replace_the_pages_own(
    serve: Serve, tmp_path: Path, clock: FakeClock
) -> None:
    """``http_server_config.headers`` reach every answer; its CSP wins over the handler's."""
    text = (
        "http_server_config:\n  headers:\n    Content-Security-Policy: default-src 'self'\n"
        "    X-Content-Type-Options: nosniff\n"
    )
    async with serve(security_of(write(tmp_path / "web.yml", text), clock)) as listener:
        _, headers, _ = await get(listener.port)
    assert headers["Content-Security-Policy"] == "default-src 'self'"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_allowed_sans_match_any_kind_of_name() -> None:
    """DNS, IP, e-mail and URI names count; with no list every verified client may connect."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert = {"subjectAltName": (("DNS", "a.example"), ("IP Address", "10.0.0.1"))}
    assert ServerTLS(ctx).allows(cert) is True
    assert ServerTLS(ctx, frozenset({"10.0.0.1"})).allows(cert) is True
    assert ServerTLS(ctx, frozenset({"b.example"})).allows(cert) is False
    assert ServerTLS(ctx, frozenset({"b.example"})).allows(None) is False


def test_plain_means_no_tls_and_no_users(clock: FakeClock) -> None:
    """Without a web config file nothing is required and nothing is re-read."""
    security = WebSecurity.plain(clock.monotonic)
    clock.advance(RECHECK_SECONDS)
    assert security.tls() is None
    assert security.authenticates is False
    assert plain_error(401, "x").status == 401


async def test_a_flood_of_new_guesses_is_refused_unchecked_and_keeps_the_good_verdict(
    clock: FakeClock,
) -> None:
    """At most MAX_PENDING checks run at once; a thousand wrong ones do not evict the right one."""
    release = threading.Event()
    calls: list[bytes] = []

    def checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        if password.startswith(b"slow"):
            release.wait(WAIT)
        return password == b"s3cret"

    web_config = WebConfig(basic_auth_users=(("u", HASH),))
    async with WebSecurity(None, web_config, monotonic=clock.monotonic, checkpw=checkpw) as sec:
        assert await sec.authenticate(basic("u", "s3cret")) == "u"
        slow = [
            asyncio.ensure_future(sec.authenticate(basic("u", f"slow{n}")))
            for n in range(MAX_PENDING)
        ]
        await asyncio.sleep(0)
        assert await sec.authenticate(basic("u", "one more")) is None  # refused unchecked
        release.set()
        assert await asyncio.gather(*slow) == [None] * MAX_PENDING
        for n in range(CACHE_SIZE + 10):
            assert await sec.authenticate(basic("u", f"guess{n}")) is None
        checked = len(calls)
        assert await sec.authenticate(basic("u", "s3cret")) == "u"
        assert len(calls) == checked  # still cached
    assert b"one more" not in calls


async def test_passwords_are_cut_at_bcrypts_72_bytes(clock: FakeClock) -> None:
    """As htpasswd and Go: a longer password is checked by its first 72 bytes."""
    long = b"p" * 72
    hashed = bcrypt.hashpw(long, bcrypt.gensalt(4)).decode()
    web_config = WebConfig(basic_auth_users=(("u", hashed),))
    async with WebSecurity(None, web_config, monotonic=clock.monotonic) as sec:
        assert await sec.authenticate(basic("u", "p" * 80)) == "u"
        assert await sec.authenticate(basic("u", "p" * 71)) is None


async def test_tls_handshakes_count_against_the_cap_and_the_oldest_gives_way(
    serve: Serve, tmp_path: Path, clock: FakeClock, pki: dict[str, Pem]
) -> None:
    """Two connections that never start TLS fill a cap of 2; a real client evicts the oldest."""
    server = pki["server"]
    path = write(
        tmp_path / "web.yml",
        f"tls_server_config: {{cert_file: {server.cert}, key_file: {server.key}}}\n",
    )
    limits = HttpLimits(max_connections=2, header_timeout=30.0)
    async with serve(security_of(path, clock), limits) as listener:
        mute = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(2)]
        await asyncio.sleep(0.05)  # both accepted and in their handshakes on the server's side
        status, _, _ = await get(listener.port, tls=client_tls(pki["ca"]))
        assert status == "HTTP/1.1 200 OK"
        assert await asyncio.wait_for(mute[0][0].read(), WAIT) == b""  # the oldest went
        for _, w in mute:
            w.close()


async def test_a_refused_version_is_tried_again_until_its_certificate_arrives(
    tmp_path: Path, clock: FakeClock, pki: dict[str, Pem], caplog: pytest.LogCaptureFixture
) -> None:
    """A config naming a certificate not there yet is refused once, then taken when it comes."""
    server = pki["server"]
    path = write(
        tmp_path / "web.yml",
        f"tls_server_config: {{cert_file: {server.cert}, key_file: {server.key}}}\n",
    )
    later = tmp_path / "later.pem"
    async with security_of(path, clock) as security:
        write(path, f"tls_server_config: {{cert_file: {later}, key_file: {server.key}}}\n")
        for _ in range(3):
            await after_recheck(security, clock)
        assert security.config.tls is not None
        assert security.config.tls.cert_file == str(server.cert)
        later.write_bytes(server.cert.read_bytes())
        await after_recheck(security, clock)
        assert security.config.tls.cert_file == str(later)
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1
    assert refused[0].startswith("web config change refused, the last good one stays: ")


@pytest.mark.parametrize(
    "case",
    [
        ("tls", "{}", False, "turning TLS on or off takes a restart"),
        ("{}", "tls", False, "turning TLS on or off takes a restart"),
        ("users", "{}", True, "basic_auth_users cannot be emptied while the registration API"),
    ],
)
async def test_a_reload_may_not_drop_protection_the_start_set_up(
    tmp_path: Path,
    clock: FakeClock,
    pki: dict[str, Pem],
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, str, bool, str],
) -> None:
    """TLS stays on or off until a restart; users the open API relies on stay."""
    start, change, require_users, why = case
    server = pki["server"]
    docs = {
        "{}": "{}\n",
        "tls": f"tls_server_config: {{cert_file: {server.cert}, key_file: {server.key}}}\n",
        "users": f"basic_auth_users: {{u: '{HASH}'}}\n",
    }
    path = write(tmp_path / "web.yml", docs[start])
    first = load_web_config(str(path))
    async with WebSecurity(
        str(path), first, monotonic=clock.monotonic, require_users=require_users
    ) as security:
        write(path, docs[change])
        await after_recheck(security, clock)
        assert security.config == first
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1
    assert why in refused[0]


def test_ip_sans_match_however_they_are_written() -> None:
    """``2001:db8::1`` allows the certificate OpenSSL shows as ``2001:DB8:0:0:0:0:0:1``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert = {"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:1"),)}
    assert ServerTLS(ctx, frozenset({"2001:db8::1"})).allows(cert) is True
    assert ServerTLS(ctx, frozenset({"2001:db8::2"})).allows(cert) is False
