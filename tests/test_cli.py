"""The command: --check-config, refusals before start, and the real process with signals."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from exporter.cli import main
from tests.conftest import exporter_process
from tests.polling.test_client_tls import issue, make_ca

GOOD = """\
sources:
  - name: fs
    api: batch_import_job
    base_url: http://127.0.0.1:9/
    authorization: {type: Basic, credentials: key}
    jobs: [a, b]
"""
BAD = """\
global:
  poll_interval: 3x
sources:
  - name: fs
    api: no_such_api
    base_url: http://127.0.0.1:9/
"""


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check-config on a good file says OK with its counts and exits 0."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    assert main([f"--config.file={path}", "--check-config"]) == 0
    assert "OK (1 sources, 2 jobs)" in capsys.readouterr().out


def test_check_config_checks_the_web_config_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A good web config is reported OK; a bad one exits 1 with its problems, never a traceback."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    web = tmp_path / "web.yml"
    web.write_text("{}\n")
    args = [f"--config.file={path}", f"--web.config.file={web}", "--check-config"]
    assert main(args) == 0
    assert f"{web}: OK" in capsys.readouterr().out
    web.write_text("basic_auth_users: {prometheus: plaintext}\ntls_server_config: []\n")
    assert main(args) == 1
    assert capsys.readouterr().err == (
        f"{web}: invalid web configuration:\n"
        f"{web}:1:32: basic_auth_users.prometheus: not a bcrypt hash (make one with htpasswd "
        "-nBC 10)\n"
        f"{web}:2:20: tls_server_config: expected a mapping, got a list\n"
    )


def test_an_open_registration_api_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--api.listen-address=:PORT`` (every interface) without a token or users exits 1."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    assert main([f"--config.file={path}", "--api.listen-address=:10114"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("refusing to serve the registration API on *:10114 without auth")


def test_check_config_lists_every_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check-config on a broken file prints each problem with its place and exits 1."""
    path = tmp_path / "c.yaml"
    path.write_text(BAD)
    assert main([f"--config.file={path}", "--check-config"]) == 1
    err = capsys.readouterr().err
    assert "c.yaml:2:" in err
    assert "poll_interval" in err
    assert "c.yaml:5:" in err
    assert "no_such_api" in err
    assert "Traceback" not in err


def test_check_config_loads_tls_files_not_just_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Readable garbage in ca_file, cert_file and key_file fails --check-config at each key."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    ca = make_ca(tmp_path, "ca")
    leaf = issue(tmp_path, ca, "leaf")
    path = tmp_path / "c.yaml"
    second = GOOD.replace("name: fs", "name: fs2")
    path.write_text(
        GOOD
        + f"    tls_config: {{ca_file: '{garbage}'}}\n"
        + second.removeprefix("sources:\n")
        + f"    tls_config: {{cert_file: '{garbage}', key_file: '{leaf.key}'}}\n"
    )
    assert main([f"--config.file={path}", "--check-config"]) == 1
    out, err = capsys.readouterr()
    assert "OK" not in out
    assert "c.yaml:7:27: sources[0].tls_config.ca_file: fs: cannot set up its HTTP client" in err
    assert "c.yaml:13:29: sources[1].tls_config.cert_file: fs2: cannot set up" in err
    assert "NO_CERTIFICATE_OR_CRL_FOUND" in err


def test_check_config_accepts_tls_files_that_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CA, certificate and key that load pass --check-config."""
    ca = make_ca(tmp_path, "ca")
    leaf = issue(tmp_path, ca, "leaf")
    path = tmp_path / "c.yaml"
    tls = f"{{ca_file: '{ca.cert}', cert_file: '{leaf.cert}', key_file: '{leaf.key}'}}"
    path.write_text(GOOD + f"    tls_config: {tls}\n")
    assert main([f"--config.file={path}", "--check-config"]) == 0
    assert "OK (1 sources, 2 jobs)" in capsys.readouterr().out


def test_config_file_is_required_without_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --config.file or --demo the command explains and exits 2."""
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "--config.file is required" in capsys.readouterr().err


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def finish(proc: asyncio.subprocess.Process, within: float = 30) -> bytes:
    """Wait (boundedly) for the process to end; its stderr."""
    async with asyncio.timeout(within):
        _, err = await proc.communicate()
    return err


async def wait_ready(port: int, proc: asyncio.subprocess.Process) -> None:
    """Poll /readyz until the exporter answers 200 (bounded)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            assert proc.returncode is None, "exporter exited early"
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail("exporter never became ready")


SOURCES = ("evocalize", "fullstory", "talkdesk")


@pytest.mark.e2e
async def test_demo_serves_all_three_apis_and_stops_on_sigterm(
    spawned: list[asyncio.subprocess.Process],
) -> None:
    """--demo serves metrics for every API; SIGTERM ends it quickly with exit 0."""
    port = free_port()
    proc = await exporter_process(spawned, "--demo", f"--web.listen-address=127.0.0.1:{port}")
    await wait_ready(port, proc)
    text = ""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            if all(f'batchjob_status{{source="{s}"' in text for s in SOURCES):
                break
            await asyncio.sleep(0.1)
    for source in SOURCES:
        assert f'batchjob_status{{source="{source}"' in text
    proc.send_signal(signal.SIGTERM)
    err = await finish(proc, within=5)
    assert proc.returncode == 0
    assert b"Traceback" not in err
    assert b"td-demo-secret" not in err


@pytest.mark.e2e
async def test_bad_config_exits_1_without_starting(
    tmp_path: Path, spawned: list[asyncio.subprocess.Process]
) -> None:
    """A broken config stops the process before it listens, with the problems on stderr."""
    path = tmp_path / "c.yaml"
    path.write_text(BAD)
    proc = await exporter_process(spawned, f"--config.file={path}")
    err = await finish(proc)
    assert proc.returncode == 1
    assert b"c.yaml:5:" in err


@pytest.mark.e2e
async def test_port_in_use_exits_1_with_one_line(
    tmp_path: Path, spawned: list[asyncio.subprocess.Process]
) -> None:
    """A taken listen port is one clear error line and exit 1, not a traceback."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await exporter_process(
            spawned, f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}"
        )
        err = await finish(proc)
    assert proc.returncode == 1
    assert b"cannot listen" in err
    assert b"Traceback" not in err


async def scrape_until(port: int, needle: str) -> str:
    """Scrape /metrics until ``needle`` appears (bounded); the last page."""
    text = ""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            if needle in text:
                return text
            await asyncio.sleep(0.05)
    pytest.fail(f"{needle!r} never appeared on /metrics")


@pytest.mark.e2e
async def test_sighup_reloads_and_a_bad_config_is_refused(
    tmp_path: Path, spawned: list[asyncio.subprocess.Process]
) -> None:
    """SIGHUP applies a good config, refuses a bad one (gauge 0, still serving), exits 0."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    port = free_port()
    proc = await exporter_process(
        spawned, f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}"
    )
    await wait_ready(port, proc)
    path.write_text(GOOD.replace("[a, b]", "[a, b, c]"))
    proc.send_signal(signal.SIGHUP)
    await scrape_until(port, 'batchjob_exporter_watched_jobs{source="fs"} 3')
    path.write_text(BAD)
    proc.send_signal(signal.SIGHUP)
    text = await scrape_until(port, "batchjob_exporter_config_last_reload_successful 0")
    assert 'batchjob_exporter_watched_jobs{source="fs"} 3' in text
    proc.send_signal(signal.SIGTERM)
    err = await finish(proc, within=5)
    assert proc.returncode == 0
    assert b"c.yaml:2:" in err
    assert b"Traceback" not in err


@pytest.mark.e2e
async def test_a_ca_file_that_does_not_load_exits_1_with_one_line(
    tmp_path: Path, spawned: list[asyncio.subprocess.Process]
) -> None:
    """A source whose TLS setup fails stops the start with its name, not a traceback."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + f"    tls_config: {{ca_file: '{ca}'}}\n")
    proc = await exporter_process(
        spawned, f"--config.file={path}", f"--web.listen-address=127.0.0.1:{free_port()}"
    )
    err = await finish(proc)
    assert proc.returncode == 1
    assert b"c.yaml:7:27: sources[0].tls_config.ca_file: fs: cannot set up its HTTP client" in err
    assert b"Traceback" not in err


def test_a_shard_beyond_the_total_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """The command refuses ``--shard=3 --total-shards=2`` before anything starts."""
    with pytest.raises(SystemExit) as exc:
        main(["--demo", "--shard=3", "--total-shards=2"])
    assert exc.value.code == 2
    assert "--shard 3 is not below --total-shards 2" in capsys.readouterr().err
