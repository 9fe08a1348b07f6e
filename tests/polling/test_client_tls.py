"""TLS files rotated in place are used for new connections without a restart.

Certificates are made in the test with the ``openssl`` command; the servers are
real HTTPS servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from aiohttp import web
from yarl import URL

from exporter.clock import FakeClock
from exporter.config import SourceConfig, TLSConfig
from exporter.model import Response
from exporter.polling.client import TLS_CHECK_INTERVAL, SourceClient


@dataclass(frozen=True)
class Pem:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def openssl(*args: str | Path) -> None:
    """Run the openssl command, failing the test with its output."""
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("the openssl command is needed to make test certificates")
    done = subprocess.run([exe, *map(str, args)], capture_output=True, check=False)  # noqa: S603 - openssl, our own args
    assert done.returncode == 0, done.stderr.decode()


def make_ca(directory: Path, name: str) -> Pem:
    """A self-signed CA certificate with an EC key."""
    pem = Pem(directory / f"{name}.pem", directory / f"{name}.key")
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", pem.key, "-out", pem.cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return pem


def issue(directory: Path, ca: Pem, name: str, usage: str = "serverAuth") -> Pem:
    """A leaf certificate for 127.0.0.1 signed by ``ca``; ``usage`` is its extendedKeyUsage."""
    pem = Pem(directory / f"{name}.pem", directory / f"{name}.key")
    csr, ext = directory / f"{name}.csr", directory / f"{name}.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\n"
        f"extendedKeyUsage={usage}\n"
        "keyUsage=critical,digitalSignature\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectKeyIdentifier=hash\n",
        encoding="utf-8",
    )
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", pem.key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial",
        str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-extfile", ext,
        "-out", pem.cert,
    )  # fmt: skip
    return pem


class Stats:
    """Request outcomes, in order."""

    def __init__(self) -> None:
        self.codes: list[str] = []

    def request(self, source: str, code: str, seconds: float) -> None:
        """Record one outcome."""
        self.codes.append(code)


@dataclass
class Server:
    """An HTTPS server on 127.0.0.1 whose certificate the test may switch."""

    url: URL
    context: ssl.SSLContext

    def serve(self, pem: Pem) -> None:
        """Present ``pem`` from the next handshake on."""
        self.context.load_cert_chain(pem.cert, pem.key)


class StartServer(Protocol):
    """Starts an HTTPS server presenting ``pem``, asking for a client cert if ``client_ca``."""

    async def __call__(self, pem: Pem, client_ca: Path | None = None) -> Server:
        """The started server."""
        ...


@pytest.fixture
async def https() -> AsyncIterator[StartServer]:
    """Start HTTPS servers on 127.0.0.1; each answers 200 and closes the connection."""
    runners: list[web.AppRunner] = []

    async def ok(request: web.Request) -> web.Response:
        resp = web.json_response({"ok": True})
        resp.force_close()  # every request makes a new connection, hence a handshake
        return resp

    async def start(pem: Pem, client_ca: Path | None = None) -> Server:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pem.cert, pem.key)
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=client_ca)
        app = web.Application()
        app.router.add_get("/{tail:.*}", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
        port = runner.addresses[0][1]
        return Server(URL(f"https://127.0.0.1:{port}/"), ctx)

    yield start
    for runner in runners:
        await runner.cleanup()


def client(url: URL, tls: TLSConfig, clock: FakeClock, stats: Stats) -> SourceClient:
    """A source client for ``url`` with ``tls`` on the fake clock."""
    src = SourceConfig(
        name="vendor",
        api="batch_import_job",
        base_url=str(url),
        path="jobs/{id}",
        poll_interval=30.0,
        tls_config=tls,
    )
    return SourceClient(src, timeout=5.0, max_connections=4, stats=stats, monotonic=clock.monotonic)


async def status(c: SourceClient) -> int | str:
    """The HTTP status of one GET, or the failure reason."""
    result = await c.get(c.url(c.source.path, "j1"), {})
    return result.status if isinstance(result, Response) else result


async def test_a_rewritten_ca_file_is_used_without_recreating_the_client(
    tmp_path: Path, https: StartServer, clock: FakeClock
) -> None:
    """ca_file rewritten from CA1 to CA2: new connections trust CA2 after the next check."""
    ca1, ca2 = make_ca(tmp_path, "ca1"), make_ca(tmp_path, "ca2")
    leaf1, leaf2 = issue(tmp_path, ca1, "leaf1"), issue(tmp_path, ca2, "leaf2")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca1.cert.read_bytes())
    server = await https(leaf1)
    async with client(server.url, TLSConfig(ca_file=str(ca_file)), clock, Stats()) as c:
        assert await status(c) == 200
        server.serve(leaf2)
        assert await status(c) == "tls_error"
        ca_file.write_bytes(ca2.cert.read_bytes())
        # Between checks a request only reads the clock: the change is not seen yet.
        clock.advance(TLS_CHECK_INTERVAL - 0.5)
        assert await status(c) == "tls_error"
        clock.advance(0.5)
        assert await status(c) == 200


async def test_a_swapped_secret_symlink_rotates_the_client_certificate(
    tmp_path: Path, https: StartServer, clock: FakeClock
) -> None:
    """Kubernetes swaps the ..data symlink: the new cert_file and key_file are presented."""
    server_ca, client_ca, other_ca = (make_ca(tmp_path, n) for n in ("sca", "cca", "oca"))
    leaf = issue(tmp_path, server_ca, "server")
    versions: dict[str, Path] = {}
    for name, ca in (("old", other_ca), ("new", client_ca)):
        versions[name] = tmp_path / name
        versions[name].mkdir()
        issue(versions[name], ca, "client", usage="clientAuth")
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "..data").symlink_to(versions["old"])
    for name in ("client.pem", "client.key"):
        (mount / name).symlink_to(Path("..data") / name)
    tls = TLSConfig(
        ca_file=str(server_ca.cert),
        cert_file=str(mount / "client.pem"),
        key_file=str(mount / "client.key"),
    )
    server = await https(leaf, client_ca.cert)
    async with client(server.url, tls, clock, Stats()) as c:
        # Refused by the server after TLS 1.3 finished the client's side of the handshake,
        # so the client sees its connection dropped rather than a handshake failure.
        assert await status(c) == "connection_error"
        (mount / "..data_tmp").symlink_to(versions["new"])
        (mount / "..data_tmp").replace(mount / "..data")
        clock.advance(TLS_CHECK_INTERVAL)
        assert await status(c) == 200


async def test_a_half_written_file_keeps_the_last_good_context_and_logs_once(
    tmp_path: Path, https: StartServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A ca_file that does not load is logged once, without content, and the old CA stays."""
    ca1, ca2 = make_ca(tmp_path, "ca1"), make_ca(tmp_path, "ca2")
    leaf1, leaf2 = issue(tmp_path, ca1, "leaf1"), issue(tmp_path, ca2, "leaf2")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca1.cert.read_bytes())
    server = await https(leaf1)
    half = ca2.cert.read_bytes()[:200]
    async with client(server.url, TLSConfig(ca_file=str(ca_file)), clock, Stats()) as c:
        with caplog.at_level(logging.INFO, logger="exporter.polling.client"):
            ca_file.write_bytes(half)
            clock.advance(TLS_CHECK_INTERVAL)
            assert await status(c) == 200
            clock.advance(TLS_CHECK_INTERVAL)
            assert await status(c) == 200
        (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert line == (
            "source vendor: TLS files changed but do not load, still using the old ones: "
            f'tls_config.ca_file: cannot load "{ca_file}": X509'
        )
        assert half.decode()[30:60] not in line
        ca_file.write_bytes(ca2.cert.read_bytes())
        server.serve(leaf2)
        clock.advance(TLS_CHECK_INTERVAL)
        assert await status(c) == 200


async def test_unchanged_files_keep_the_same_context(tmp_path: Path, clock: FakeClock) -> None:
    """Without a change the context, and so the pooled connections, stay as they are."""
    ca = make_ca(tmp_path, "ca")
    c = client(URL("https://127.0.0.1:9/"), TLSConfig(ca_file=str(ca.cert)), clock, Stats())
    first = await c.tls.current()
    clock.advance(TLS_CHECK_INTERVAL * 3)
    assert await c.tls.current() is first
    c.tls.recheck()
    assert await c.tls.current() is first


async def test_a_client_closed_while_its_tls_files_are_checked_fails_the_request_cleanly(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A reload closing the client during a TLS check ends that request as client_closed."""
    ca = make_ca(tmp_path, "ca")
    c = client(URL("https://127.0.0.1:9/"), TLSConfig(ca_file=str(ca.cert)), clock, Stats())
    async with c:
        c.tls.recheck()
        request = asyncio.create_task(status(c))
        await asyncio.sleep(0)  # the request now waits on the TLS check's thread
        await c.close()
    assert await request == "client_closed"


async def test_one_tls_check_runs_at_a_time(tmp_path: Path, clock: FakeClock) -> None:
    """Requests arriving while a check runs use the current context and start no second check."""
    ca = make_ca(tmp_path, "ca")
    c = client(URL("https://127.0.0.1:9/"), TLSConfig(ca_file=str(ca.cert)), clock, Stats())
    first = c.tls.context
    c.tls.recheck()
    checking = asyncio.create_task(c.tls.current())
    await asyncio.sleep(0)  # the first check now runs in its thread
    c.tls.recheck()  # a reload asks again meanwhile
    meanwhile = c.tls.current()
    with pytest.raises(StopIteration) as done:  # finishes without waiting on a second thread
        meanwhile.send(None)
    assert done.value.value is first
    assert await checking is first
