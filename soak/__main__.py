"""``python -m soak [--duration 30m] [--seed N] [--dir PATH] [--short]``: run it, print the table.

The duration is the chaos's (Prometheus' duration syntax: ``30m``, ``3m``,
``90s``); start-up and the drain at the end add a minute or two.  ``--short``
is the run ``make test`` does: the same checks, but the rate and memory
numbers are only reported, as on two busy cores they are noise.  Exits 1 if
a check failed; the logs, state files and the simulator's request log stay
in ``--dir`` (default: a new directory under the system's temporary one).

``--without-fleet`` runs the same soak with no ``global.fleet``: each exporter
polite on its own, which the window and rate checks then catch.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

from exporter.config import parse_duration
from soak.report import failed, table
from soak.run import soak
from soak.world import Plan


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("30m"))
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--dir", type=Path, help="where logs and state go (default: a new one)")
    parser.add_argument("--short", action="store_true", help="check correctness only")
    parser.add_argument(
        "--without-fleet",
        action="store_true",
        help="the same run with no global.fleet: what the checks catch without it",
    )
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="soak-"))
    root.mkdir(parents=True, exist_ok=True)
    plan = Plan.of(args.duration, short=args.short, seed=args.seed, fleet=not args.without_fleet)
    print(f"soak: {args.duration:g}s of chaos, seed {args.seed}, in {root}", flush=True)
    result = asyncio.run(soak(plan, root))
    text = table(result.rows)
    (root / "report.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print("\nwhat the chaos did:", ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    took = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in result.phases.items())
    print(f"\n{took}; the table, logs, state and requests.jsonl in {root}")
    bad = failed(result.rows)
    if bad:
        print(f"soak: FAILED: {', '.join(bad)}")
        return 1
    print("soak: every check passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
