"""The container image, built from the Dockerfile and run, with buildah and no Docker.

``scripts/image-tools.sh`` installs buildah and mmdebstrap and stands in for the
Dockerfile's base image with a Debian rootfs imported under the very name its ``FROM``
uses (cached in ~/.cache/batch-job-exporter/), so the Dockerfile is built unchanged.
``buildah run --isolation chroot`` shares the host's network namespace: the exporter's
port is reached on the host's loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from exporter.cli import DEFAULT_PORT

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "scripts" / "image-tools.sh"
CONFIGMAP = ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml"
# pip inside the build's RUN trusts what the host trusts (a proxy's CA included).
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT = 300.0
START_TIMEOUT = 30.0

Image = tuple[str, dict[str, Any]]


def tools(*args: str) -> list[str]:
    """The command line of scripts/image-tools.sh with these arguments."""
    return ["/bin/bash", str(TOOLS), *args]


def image_tools(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run scripts/image-tools.sh; fail the test with its output if it fails."""
    done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        tools(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"image-tools.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def buildah(*args: str, timeout: float = 120.0) -> str:
    """Buildah on the project's storage; its stdout."""
    return image_tools("buildah", *args, timeout=timeout).stdout.strip()


def run_in(
    container: str, *command: str, volumes: tuple[str, ...] = (), env: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run a command in a container to its end."""
    options = [f"--volume={v}" for v in volumes] + ([f"--env={env}"] if env else [])
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        tools("buildah", "run", "--isolation", "chroot", *options, container, "--", *command),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The image built from the working tree, and its `buildah inspect`; removed after."""
    if shutil.which("buildah") is None:
        pytest.fail("buildah not found: run scripts/image-tools.sh (make test does)")
    image_tools("base", timeout=BUILD_TIMEOUT)  # builds the cached base rootfs if missing
    tag = f"localhost/batch-job-exporter:test-{uuid.uuid4().hex[:12]}"
    mounts = [f"--volume={CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    try:
        buildah(
            "bud",
            "--pull-never",
            "--isolation=chroot",
            "--format=docker",  # keeps HEALTHCHECK, which the OCI format has no field for
            "--quiet",
            *mounts,
            f"--tag={tag}",
            str(ROOT),
            timeout=BUILD_TIMEOUT,
        )
        yield tag, json.loads(buildah("inspect", "--type=image", tag))
    finally:
        subprocess.run(  # noqa: S603 - our own script, fixed arguments
            tools("buildah", "rmi", "--force", tag),
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    """A fresh working container of the image; removed after."""
    name = f"bje-test-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull-never", f"--name={name}", image[0])
    try:
        yield name
    finally:
        buildah("rm", name)


def config_of(image: Image) -> dict[str, Any]:
    """The image's run configuration (user, entrypoint, ...)."""
    config: dict[str, Any] = image[1]["Docker"]["config"]
    return config


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET; (0, error) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http on loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return 0, str(exc)


def process_with(marker: str) -> int:
    """The pid of the Python process whose command line holds ``marker``."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"python" in Path(argv[0].decode()).name.encode() and marker.encode() in argv:
            return int(entry.name)
    pytest.fail(f"no python process with {marker} in /proc")


def ids(pid: int) -> tuple[int, int]:
    """The effective uid and gid of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    uid = re.search(r"^Uid:\s+\d+\s+(\d+)", status, re.MULTILINE)
    gid = re.search(r"^Gid:\s+\d+\s+(\d+)", status, re.MULTILINE)
    assert uid is not None
    assert gid is not None
    return int(uid.group(1)), int(gid.group(1))


def read_only_root(container: str) -> list[Path]:
    """Bind every directory of the container's rootfs read-only over itself; the mounts.

    ``buildah run`` has no --read-only; this is the same for the exporter. /run stays
    writable for buildah's own files (owned by root), as do the kernel's /dev, /proc, /sys.
    """
    if os.geteuid() != 0:
        pytest.fail("the image test needs root (buildah's chroot isolation, bind mounts)")
    rootfs = Path(buildah("mount", container))
    mounted: list[Path] = []
    for path in sorted(rootfs.iterdir()):
        if path.is_symlink() or not path.is_dir() or path.name in {"run", "dev", "proc", "sys"}:
            continue
        for args in (["--bind", path, path], ["-o", "remount,bind,ro", path, path]):
            subprocess.run(["mount", *map(str, args)], check=True, timeout=30)  # noqa: S603, S607
        mounted.append(path)
    return mounted


def test_image_metadata(image: Image) -> None:
    """Numeric non-root user, exposed port, entrypoint, curl-free healthcheck, OCI labels."""
    config = config_of(image)
    uid, _, gid = config["User"].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert f"{DEFAULT_PORT}/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == ["/opt/venv/bin/batch-job-exporter"]
    healthcheck = config["Healthcheck"]["Test"]
    assert healthcheck[:2] == ["CMD", "/opt/venv/bin/python"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "batch-job-exporter"
    assert labels["org.opencontainers.image.version"] == __version__
    for key in ("description", "licenses", "revision", "created"):
        assert labels[f"org.opencontainers.image.{key}"]


def test_image_serves_metrics_as_non_root_on_a_read_only_root(
    image: Image, container: str, tmp_path: Path
) -> None:
    """The entrypoint runs --demo as the image's user, serves /metrics, obeys SIGTERM."""
    config = config_of(image)
    port = free_port()
    listen = f"--web.listen-address=127.0.0.1:{port}"
    base = f"http://127.0.0.1:{port}"
    mounted = read_only_root(container)
    log = tmp_path / "exporter.log"
    command = tools("buildah", "run", "--isolation", "chroot", container, "--")
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [*command, *config["Entrypoint"], "--demo", listen],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while get(f"{base}/readyz")[0] != 200:
            assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
            time.sleep(0.2)

        # Ready once serving; the demo jobs' series follow their first poll.
        while "batchjob_status{" not in (body := get(f"{base}/metrics")[1]):
            assert time.monotonic() < deadline, f"no job series in time:\n{body}"
            time.sleep(0.2)
        assert re.search(rf'^batchjob_exporter_build_info{{.*version="{__version__}"', body, re.M)
        assert get(f"{base}/healthz")[0] == 200

        # The root filesystem really is read-only, even /tmp, which anyone may write.
        assert run_in(container, "/opt/venv/bin/python", "-c", "open('/tmp/x', 'w')").returncode
        pid = process_with(listen)
        user = tuple(int(i) for i in config["User"].split(":"))
        assert ids(pid) == user

        healthcheck = config["Healthcheck"]["Test"][1:]
        done = run_in(container, *healthcheck, env=f"HEALTHCHECK_URL={base}/healthz")
        assert done.returncode == 0, done.stderr
        closed = f"HEALTHCHECK_URL=http://127.0.0.1:{free_port()}/healthz"
        assert run_in(container, *healthcheck, env=closed).returncode != 0

        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
        assert "shutting down" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        for path in reversed(mounted):
            subprocess.run(["umount", str(path)], check=False, timeout=30)  # noqa: S603, S607


def test_image_accepts_the_configmap_config(image: Image, container: str, tmp_path: Path) -> None:
    """--check-config on the ConfigMap's config, mounted where the default command reads it."""
    config = config_of(image)
    (configmap,) = yaml.safe_load_all(CONFIGMAP.read_text())
    text = configmap["data"]["config.yaml"]
    (path,) = [a.partition("=")[2] for a in config["Cmd"] if a.startswith("--config.file=")]
    etc = tmp_path / "etc"
    secrets = tmp_path / "secrets"
    for directory in (etc, secrets):
        directory.mkdir()
        directory.chmod(0o755)
    (etc / Path(path).name).write_text(text)
    (secret_dir,) = {Path(p).parent for p in re.findall(r"/run/secrets/[\w./-]+", text)}
    for name in re.findall(rf"{secret_dir}/([\w.-]+)", text):
        (secrets / name).write_text("s3cret\n")
    for file in (*etc.iterdir(), *secrets.iterdir()):
        file.chmod(0o644)
    volumes = (f"{etc}:{Path(path).parent}:ro", f"{secrets}:{secret_dir}:ro")
    command = [*config["Entrypoint"], *config["Cmd"], "--check-config"]
    done = run_in(container, *command, volumes=volumes)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{path}: OK (3 sources," in done.stdout
