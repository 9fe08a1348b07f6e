"""``python -m bench [--quick] [--only SECTIONS]``: run the benchmarks, print the table.

The full run (``make bench``) takes about a quarter of an hour on the 2-core
machine; ``--quick`` shortens every section (the churn run to one minute) for
development.  Results go to ``bench/results/`` as JSON, next to the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    fleet,
    fleetreport,
    hostile,
    jobspage,
    live,
    policy,
    policyreport,
    polls,
    report,
    scrapes,
)

SECTIONS = (
    "scrapes",
    "live",
    "page",
    "simulator",
    "polls",
    "memory",
    "churn",
    "startup",
    "hostile",
    "policy",
    "fleet",
)
RESULTS = Path(__file__).parent / "results"
# The full run's policy plot is the one docs/performance.md shows; --quick keeps its own.
PLOT = Path(__file__).parent.parent / "docs" / "polling-policy.png"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    versions = {name: metadata.version(name) for name in ("aiohttp", "prometheus-client")}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="shorter runs, for development")
    p.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the job data")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = p.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every section asked for, in order; the results."""
    quick, seed = args.quick, args.seed
    out: dict[str, Any] = {
        "command": "python -m bench" + (" --quick" if quick else ""),
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    started = time.perf_counter()
    sizes = [1_000, 10_000, 50_000]
    if "scrapes" in args.only:
        print("/metrics: exporter, naive prometheus_client, floor ...", flush=True)
        budget = 1.0 if quick else 3.0
        out["scrapes"] = await scrapes.matrix(sizes, seed=seed, now=time.time(), budget=budget)
    if "live" in args.only:
        print("live: a page after a round of polls, in-process ...", flush=True)
        out["live"] = [await asyncio.to_thread(live.run, n, seed=seed) for n in sizes[:2]]
    if "page" in args.only:
        print("jobs page: / rendered in-process at 10,000 and 50,000 jobs ...", flush=True)
        out["page"] = jobspage.run(sizes[1:], seed=seed, quick=quick)
    if "simulator" in args.only:
        print("simulator: maximum request rate ...", flush=True)
        out["simulator"] = await polls.simulator_max_rate(3.0 if quick else 8.0)
    if "polls" in args.only:
        print("polling: 10,000 jobs every 15 s ...", flush=True)
        window = 30.0 if quick else 60.0
        out["polls"] = await polls.throughput(10_000, interval=15.0, window=window, seed=seed)
    if "memory" in args.only:
        out["memory"] = []
        for n in sizes:
            print(f"memory: {n} jobs ...", flush=True)
            out["memory"].append(await polls.memory(n, seed=seed))
    if "churn" in args.only:
        duration, warmup = (60.0, 20.0) if quick else (300.0, 60.0)
        print(f"churn: {duration:.0f} s of jobs finishing and new ones registered ...", flush=True)
        lifetime = (10.0, 50.0) if quick else (30.0, 270.0)
        out["churn"] = await polls.churn(
            10_000, duration=duration, warmup=warmup, lifetime=lifetime, seed=seed
        )
    if "startup" in args.only:
        print("start-up: 10,000 jobs in the config ...", flush=True)
        out["startup"] = await polls.startup(10_000, seed=seed, repeats=1 if quick else 3)
    if "hostile" in args.only:
        print("hostile clients: slowloris, concurrent scrapes at 10,000 jobs ...", flush=True)
        now = time.time()
        out["slowloris"] = await hostile.slowloris(10_000, seed=seed, now=now)
        out["concurrent_scrapes"] = await hostile.concurrent(10_000, seed=seed, now=now)
    if "policy" in args.only:
        plot = args.out / "polling-policy-quick.png" if quick else PLOT
        plot.parent.mkdir(parents=True, exist_ok=True)
        out["policy"] = await policy.section(quick=quick, seed=seed, plot_to=plot)
    if "fleet" in args.only:
        print(
            "fleet: 4 exporters x 2,500 jobs on one account, with Redis and without ...", flush=True
        )
        out["fleet"] = await fleet.section(quick=quick)
    out["duration_s"] = round(time.perf_counter() - started, 1)
    out["targets"] = report.targets(out) + jobspage.targets(out.get("page"))
    out["targets"] += policyreport.targets(out.get("policy"), out.get("polls"))
    out["targets"] += fleetreport.targets(out.get("fleet"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the JSON; exit 0 (a missed target is a finding, not a crash)."""
    args = parse_args(argv)
    results = asyncio.run(run(args))
    print()
    for line in jobspage.lines(results.get("page")):
        print(line)
    if "policy" in results:
        print(policyreport.table(results["policy"]) + "\n")
    if "fleet" in results:
        print(fleetreport.table(results["fleet"]) + "\n")
    print(report.table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    text = json.dumps(results, indent=2) + "\n"
    for name in (f"bench-{stamp}.json", "latest.json"):
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"\nresults: {args.out / f'bench-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
