"""The polling-policy plot: requests per job against p95 detection lag, per API and overall.

One point per run, fixed intervals and adaptive bounds as two curves; the
budget runs as two extra points on the overall panel.  Drawn with
matplotlib's Agg backend (no display needed) into a PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: a file, never a window

import matplotlib.pyplot as plt

from bench.policyreport import points

PANELS = (
    ("all", "All APIs"),
    ("evocalize_batch_report", "Evocalize (counts against a total)"),
    ("report_job", "Talkdesk (stages)"),
    ("batch_import_job", "Fullstory (no total)"),
)


def _label(run: dict[str, Any]) -> str:
    return str(run["run"]).removeprefix("fixed ").removeprefix("adaptive ")


def policy_plot(section: dict[str, Any], path: Path) -> None:
    """Write the plot of ``section`` (bench.policy's results) to ``path``."""
    figure, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    runs = section["runs"]
    for ax, (api, title) in zip(axes.flat, PANELS, strict=True):
        for kind, style in (("fixed", "o-"), ("adaptive", "s-")):
            curve = points(runs, kind, api)
            if curve:
                ax.plot(*zip(*curve, strict=True), style, label=kind)
            for run in runs:
                row = run["apis"].get(api)
                if run["kind"] == kind and row and row["completed_lag_s"]["p95"] is not None:
                    xy = (row["requests_per_job"], max(row["completed_lag_s"]["p95"], 1e-3))
                    ax.annotate(_label(run), xy, textcoords="offset points", xytext=(4, 4),
                                fontsize=7)  # fmt: skip
        if api == "all":
            budget = section["budget"]
            for run, marker in zip(budget["runs"], ("x", "D"), strict=True):
                row = run["apis"]["all"]
                label = f"{budget['requests_per_s']:g} req/s budget: {run['run']}"
                xy = (row["requests_per_job"], row["completed_lag_s"]["p95"])
                ax.plot(*xy, marker, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("requests per job")
        ax.set_ylabel("p95 completion-detection lag (s)")
        ax.grid(visible=True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(
        f"Fixed intervals against adaptive polling: {section['jobs']} jobs, virtual time; "
        f"budget points: {section['budget']['jobs']} jobs (lower left is better)",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
