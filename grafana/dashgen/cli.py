"""The command line of ``generate.py``: write the dashboards, or check the committed ones."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from .exporter_health import exporter_health
from .fields import Json
from .job import single_job
from .overview import overview

OUT_DIR = Path(__file__).resolve().parent.parent / "dashboards"
DESCRIPTION = "Generate the Grafana dashboards in grafana/dashboards/ (dashboards as code)."


def build() -> dict[str, Json]:
    """Every dashboard by file name."""
    return {
        "batch-jobs-overview.json": overview(),
        "batch-job.json": single_job(),
        "batch-job-exporter.json": exporter_health(),
    }


def render(board: Json) -> str:
    """The committed text of a dashboard."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def is_current(path: Path, text: str) -> bool:
    """Whether ``path`` holds ``text``; if not, print the difference."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old == text:
        return True
    diff = difflib.unified_diff(
        old.splitlines(keepends=True),
        text.splitlines(keepends=True),
        f"{path} (committed)",
        f"{path} (generated)",
        n=2,
    )
    sys.stdout.writelines(diff)
    return False


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` compare them with the files."""
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = 0
    for name, board in build().items():
        path: Path = args.out / name
        text = render(board)
        if args.check:
            if not is_current(path, text):
                stale += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"{stale} dashboard(s) out of date: run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0
