"""The wheel: it builds, carries py.typed, installs, and its console script runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from exporter import __version__

ROOT = Path(__file__).parent.parent


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a command, failing the test with its output if it fails."""
    done = subprocess.run(  # noqa: S603 - fixed commands on our own files
        [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{args} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.mark.e2e
def test_wheel_installs_and_console_script_runs(tmp_path: Path) -> None:
    """A wheel built from the tree installs into a fresh venv and runs batch-job-exporter."""
    # A copy, so setuptools' build/ and egg-info never land in the working tree.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "__pycache__", "bench", "deploy", "grafana"
        ),
    )
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    assert "exporter/py.typed" in names
    assert "exporter/simulator/app.py" in names
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "--quiet", wheels[0])
    script = venv / "bin" / "batch-job-exporter"
    assert __version__ in run(script, "--version")
    config = tmp_path / "c.yaml"
    config.write_text(
        "sources:\n  - name: fs\n    api: batch_import_job\n"
        "    base_url: https://api.fullstory.com/\n"
        "    authorization: {type: Basic, credentials_env: HOME}\n    jobs: [x]\n"
    )
    assert "OK" in run(script, f"--config.file={config}", "--check-config", cwd=tmp_path)
