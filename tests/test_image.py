"""The container image, built from the Dockerfile and run, with buildah and no Docker.

``scripts/image-tools.sh`` installs buildah and mmdebstrap and stands in for the
Dockerfile's base image with a Debian rootfs imported under the very name its ``FROM``
uses (cached in ~/.cache/batch-job-exporter/), so the Dockerfile is built unchanged.
``buildah run --isolation chroot`` shares the host's network namespace: the exporter's
port is reached on the host's loopback.

These tests take a minute or more and need root, so they run from ``make image`` (part
of ``make test``), which sets IMAGE_TEST_ENV; a plain ``pytest`` skips them, saying so.
"""

from __future__ import annotations

import contextlib
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
from exporter.flags import DEFAULT_PORT

IMAGE_TEST_ENV = "BATCH_JOB_EXPORTER_IMAGE_TEST"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get(IMAGE_TEST_ENV) != "1",
        reason=f"builds and runs the image: `make image` runs it ({IMAGE_TEST_ENV}=1)",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "scripts" / "image-tools.sh"
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"
STATE_DIR = "/var/lib/batch-job-exporter"
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
    container: str, *command: str, volumes: tuple[str, ...] | list[str] = (), env: str = ""
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


def working_container(image: Image) -> Iterator[str]:
    """A fresh working container of the image; removed after."""
    name = f"bje-test-{uuid.uuid4().hex[:12]}"
    buildah("from", "--pull-never", f"--name={name}", image[0])
    try:
        yield name
    finally:
        buildah("rm", name)


@pytest.fixture
def container(image: Image) -> Iterator[str]:
    """A working container of its own, for a test that mounts over its root."""
    yield from working_container(image)


@pytest.fixture(scope="module")
def shared_container(image: Image) -> Iterator[str]:
    """One working container for the commands that change nothing in it (a copy takes ~10 s)."""
    yield from working_container(image)


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
    return call("GET", url)


def call(method: str, url: str, *, token: str = "", body: bytes = b"") -> tuple[int, str]:
    """Status and body of an HTTP request, with a bearer token if given; (0, error) if refused."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers)  # noqa: S310 - http on loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http on loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
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


@contextlib.contextmanager
def read_only_root(container: str, mount_points: tuple[str, ...] = ()) -> Iterator[None]:
    """Bind every directory of the container's rootfs read-only over itself, for a while.

    ``buildah run`` has no --read-only; this is the same for the exporter. /run stays
    writable for buildah's own files (owned by root), as do the kernel's /dev, /proc, /sys.
    The volumes' ``mount_points`` are made first, as a container runtime makes them.
    """
    if os.geteuid() != 0:
        pytest.fail("the image test needs root (buildah's chroot isolation, bind mounts)")
    rootfs = Path(buildah("mount", container))
    for point in mount_points:
        (rootfs / point.lstrip("/")).mkdir(parents=True, exist_ok=True)
    mounted: list[Path] = []
    try:
        for path in sorted(rootfs.iterdir()):
            if path.is_symlink() or not path.is_dir() or path.name in {"run", "dev", "proc", "sys"}:
                continue
            mounted.append(path)
            for args in (["--bind", path, path], ["-o", "remount,bind,ro", path, path]):
                subprocess.run(["mount", *map(str, args)], check=True, timeout=30)  # noqa: S603, S607 - mount, fixed args
        yield
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", str(path)], check=False, timeout=30)  # noqa: S603, S607 - umount, fixed args


@contextlib.contextmanager
def running(
    container: str, argv: list[str], log: Path, volumes: list[str] | tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """A command run in the container in the background, its output in ``log``; killed after."""
    options = [f"--volume={v}" for v in volumes]
    command = tools("buildah", "run", "--isolation", "chroot", *options, container, "--", *argv)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Wait until the exporter at ``base`` answers /readyz with 200."""
    deadline = time.monotonic() + START_TIMEOUT
    while get(f"{base}/readyz")[0] != 200:
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes], marker: str, log: Path) -> None:
    """SIGTERM the exporter whose argv holds ``marker``; it must exit 0."""
    os.kill(process_with(marker), signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()


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
    log = tmp_path / "exporter.log"
    argv = [*config["Entrypoint"], "--demo", listen]
    with read_only_root(container), running(container, argv, log) as proc:
        wait_ready(proc, base, log)
        deadline = time.monotonic() + START_TIMEOUT
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

        stop(proc, listen, log)
        assert "shutting down" in log.read_text()


def pod_volumes(
    exporter: dict[str, Any], pod: dict[str, Any], config_text: str, tmp_path: Path
) -> tuple[list[str], dict[str, Path]]:
    """Host directories standing in for the exporter container's volumes, as the kubelet fills them.

    The ConfigMap's files; the Secret's files that the config or the args name, with its
    defaultMode and the pod's fsGroup; emptyDirs and PVCs group-owned by fsGroup and writable, as
    Kubernetes makes them. The ``--volume`` options, and the host directory of each mount path.
    """
    fs_group = pod["securityContext"]["fsGroup"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    named = config_text + "\n" + "\n".join(exporter["args"])
    options: list[str] = []
    dirs: dict[str, Path] = {}
    for mount in exporter["volumeMounts"]:
        volume, path = volumes[mount["name"]], mount["mountPath"]
        local = tmp_path / "volumes" / mount["name"]
        local.mkdir(parents=True)
        if "configMap" in volume:
            (local / "config.yaml").write_text(config_text)
            (local / "config.yaml").chmod(0o644)
            local.chmod(0o755)
        elif "secret" in volume:
            for name in set(re.findall(rf"{re.escape(path)}/([\w.-]+)", named)):
                (local / name).write_text(f"s3cret-{name}")
                os.chown(local / name, 0, fs_group)
                (local / name).chmod(volume["secret"]["defaultMode"])
            local.chmod(0o755)
        else:
            # Both start as a directory the kubelet makes group-writable for fsGroup.
            assert set(volume) & {"emptyDir", "persistentVolumeClaim"}, volume
            os.chown(local, 0, fs_group)
            local.chmod(0o2777)
        options.append(f"{local}:{path}" + (":ro" if mount.get("readOnly") else ""))
        dirs[path] = local
    return options, dirs


def test_image_runs_as_the_sidecar_manifest_says(
    image: Image, container: str, tmp_path: Path
) -> None:
    """The sidecar's args and mounts on a read-only root: watch_dir, API, reload, state kept."""
    (deployment,) = yaml.safe_load_all((K8S / "sidecar" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (exporter,) = [c for c in pod["containers"] if c["name"] == "exporter"]
    (configmap,) = yaml.safe_load_all((K8S / "sidecar" / "configmap.yaml").read_text())
    # Every vendor URL goes to a closed port on loopback: polls fail fast, nothing leaves.
    text = re.sub(
        r"https://[^/\s]+", f"http://127.0.0.1:{free_port()}", configmap["data"]["config.yaml"]
    )
    assert "https://" not in text
    volumes, dirs = pod_volumes(exporter, pod, text, tmp_path)
    # The pod's args, but on free loopback ports: the host's network is the container's.
    listen, api = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    args = [
        f"--web.listen-address={listen}"
        if a.startswith("--web.listen-address=")
        else f"--api.listen-address={api}"
        if a.startswith("--api.listen-address=")
        else a
        for a in exporter["args"]
    ]
    flags = dict(a.partition("=")[::2] for a in args)
    base, api_base = f"http://{listen}", f"http://{api}/api/v1"
    token_file = Path(flags["--api.token-file"])
    token = (dirs[str(token_file.parent)] / token_file.name).read_text()
    state = Path(flags["--storage.path"])
    watch_dir = yaml.safe_load(text)["global"]["watch_dir"]
    argv = [*config_of(image)["Entrypoint"], *args]
    log = tmp_path / "exporter.log"
    marker = f"--web.listen-address={listen}"

    with read_only_root(container, tuple(dirs)):
        with running(container, argv, log, volumes) as proc:
            wait_ready(proc, base, log)
            assert get(f"{base}/healthz")[0] == 200
            # The app's two ways: a file renamed into the shared directory, and the API.
            staged = dirs[watch_dir] / ".jobs.txt.tmp"
            staged.write_text("fullstory abd123=\n")
            staged.chmod(0o644)
            staged.rename(dirs[watch_dir] / "jobs.txt")
            job = f"{api_base}/sources/evo/jobs/7fb1c2"
            labels = b'{"labels": {"team": "growth"}}'
            assert call("PUT", job, body=labels)[0] == 401
            assert call("PUT", job, token=token, body=labels)[0] == 201
            want = {("fullstory", "abd123=", "dir"), ("evo", "7fb1c2", "api")}
            deadline = time.monotonic() + START_TIMEOUT
            while (found := watched(api_base, token)) != want:
                assert time.monotonic() < deadline, f"watching {found}:\n{log.read_text()}"
                time.sleep(0.5)
            info = [line for line in get(f"{base}/metrics")[1].splitlines() if "_info{" in line]
            for source, job_id, origin in want:
                parts = (f'source="{source}"', f'job_id="{job_id}"', f'origin="{origin}"')
                assert any(all(p in line for p in parts) for line in info), (parts, info)
            assert call("POST", f"{base}/-/reload")[0] == 200
            stop(proc, marker, log)

        # SQLite wrote on the state volume, as the image's user, the root being read-only.
        db = dirs[str(state.parent)] / state.name
        user = tuple(int(i) for i in config_of(image)["User"].split(":"))
        assert (db.stat().st_uid, db.stat().st_gid) == user
        # Started again, the API's job is back from the state file; the file's from its file.
        with running(container, argv, log, volumes) as proc:
            wait_ready(proc, base, log)
            assert ("evo", "7fb1c2", "api") in watched(api_base, token)
            stop(proc, marker, log)
    assert "Traceback" not in log.read_text()


def watched(api_base: str, token: str) -> set[tuple[str, str, str]]:
    """The (source, id, origin) of every job the registration API lists."""
    status, body = call("GET", f"{api_base}/jobs", token=token)
    assert status == 200, body
    return {(j["source"], j["id"], j["origin"]) for j in json.loads(body)["jobs"]}


@pytest.mark.parametrize("overlay", ["standalone", "sidecar"])
def test_image_accepts_the_configmap_config(
    image: Image, shared_container: str, tmp_path: Path, overlay: str
) -> None:
    """--check-config passes on an overlay's ConfigMap mounted as the pod mounts it."""
    config = config_of(image)
    (configmap,) = yaml.safe_load_all((K8S / overlay / "configmap.yaml").read_text())
    text = configmap["data"]["config.yaml"]
    (path,) = [a.partition("=")[2] for a in config["Cmd"] if a.startswith("--config.file=")]
    etc = tmp_path / "etc"
    secrets = tmp_path / "secrets"
    watch = tmp_path / "watch"
    for directory in (etc, secrets, watch):
        directory.mkdir()
        directory.chmod(0o755)
    (etc / Path(path).name).write_text(text)
    (secret_dir,) = {Path(p).parent for p in re.findall(r"/run/secrets/[\w./-]+", text)}
    for name in re.findall(rf"{secret_dir}/([\w.-]+)", text):
        (secrets / name).write_text("s3cret\n")
    for file in (*etc.iterdir(), *secrets.iterdir()):
        file.chmod(0o644)
    volumes = [f"{etc}:{Path(path).parent}:ro", f"{secrets}:{secret_dir}:ro"]
    watch_dir = (yaml.safe_load(text)["global"] or {}).get("watch_dir")
    if watch_dir is not None:  # the sidecar's emptyDir shared with the app
        volumes.append(f"{watch}:{watch_dir}:ro")
    command = [*config["Entrypoint"], *config["Cmd"], "--check-config"]
    done = run_in(shared_container, *command, volumes=volumes)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{path}: OK (3 sources," in done.stdout


def test_image_python_is_the_pinned_minor_and_owns_the_state_dir(
    image: Image, shared_container: str
) -> None:
    """The image's Python is the X.Y its base tag pins; the state dir belongs to its user."""
    (tag,) = re.findall(r"^ARG PYTHON_IMAGE=\S+:(\d+\.\d+)-", DOCKERFILE.read_text(), re.M)
    script = (
        "import os, sys; s = os.stat(sys.argv[1]);"
        " print('%d.%d' % sys.version_info[:2], s.st_uid, s.st_gid, oct(s.st_mode & 0o7777))"
    )
    done = run_in(shared_container, "/opt/venv/bin/python", "-c", script, STATE_DIR)
    assert done.returncode == 0, done.stderr
    version, uid, gid, mode = done.stdout.split()
    # The stand-in base is Debian's python3: when they differ, the image test runs an
    # interpreter the real image does not have (move the stand-in's suite along).
    assert version == tag, f"Dockerfile pins Python {tag}, the stand-in base has {version}"
    assert f"{uid}:{gid}" == config_of(image)["User"]
    assert mode == "0o750"
