"""The fleet section's figures from what was read, its table, and the issue's targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.rig import rounded

USED = 0.90  # of the account's budget, with the fleet
# The fleet's own CPU per poll: the fleet run's against the run with the budget split by hand
# (the same polls per second, no Redis).  Absolute, not a ratio: a poll costs about 2 ms.
FLEET_CPU_MS = 1.0


def _sent(series: dict[str, float], code: str | None = None) -> float:
    """Requests counted in ``series`` (``code:200``...): all, or those answered ``code``."""
    if code is not None:
        return series.get(f"code:{code}", 0.0)
    return sum(v for k, v in series.items() if k.startswith("code:"))


@dataclass(frozen=True, slots=True)
class Mark:
    """What was read at one moment: the limiter's counts, each exporter's requests and CPU."""

    t: float
    limiter: dict[str, Any]
    series: list[dict[str, float]]
    cpu: list[float]
    redis_cpu: float  # 0.0 for a run without the fleet


def summarize(
    head: dict[str, Any],
    budget: float,
    first: Mark,
    last: Mark,
    *,
    rss: list[float],
    samples: list[list[float]],
) -> dict[str, Any]:
    """One run's figures over the window from ``first`` to ``last``, after ``head``.

    ``samples`` are ``[t, admitted, rejected]`` of the limiter, every 5 s from the start.
    """
    wall = last.t - first.t
    admitted = last.limiter["admitted"] - first.limiter["admitted"]
    rejected = last.limiter["rejected"] - first.limiter["rejected"]
    members = []
    for i, (before, after) in enumerate(zip(first.series, last.series, strict=True)):
        sent = _sent(after) - _sent(before)
        seconds = last.cpu[i] - first.cpu[i]
        members.append(
            rounded(
                {
                    "requests_per_s": sent / wall,
                    "rejected_per_s": (_sent(after, "429") - _sent(before, "429")) / wall,
                    "cpu_cores": seconds / wall,
                    "cpu_s_per_1000_polls": seconds / max(sent, 1) * 1000,
                    "rss_mb": rss[i],
                    "fleet_members": after.get("fleet_members"),
                    "fleet_up": after.get("fleet_up"),
                }
            )
        )
    cpu = sum(last.cpu) - sum(first.cpu)
    sent = sum(_sent(a) - _sent(b) for a, b in zip(last.series, first.series, strict=True))
    # Admitted per 10 s over the window (each sample pair 10 s apart), against the budget.
    steady = [s for s in samples if s[0] >= first.t - 0.5]
    tens = [
        (b[1] - a[1]) / (b[0] - a[0])
        for a, b in zip(steady, steady[2:], strict=False)
        if b[0] > a[0]
    ][::2]
    return rounded(
        {
            **head,
            "window_s": wall,
            "admitted_per_s": admitted / wall,
            "rejected_per_s": rejected / wall,
            "rejected_in_window": rejected,
            "rejected_in_warmup": first.limiter["rejected"],
            "budget_used": admitted / wall / budget,
            "admitted_per_10s_min": min(tens, default=0.0),
            "admitted_per_10s_max": max(tens, default=0.0),
            "cpu_s_per_1000_polls": cpu / max(sent, 1) * 1000,
            "cpu_cores": cpu / wall,
            "redis_cpu_cores": (last.redis_cpu - first.redis_cpu) / wall,
            "exporters": members,
            "samples": samples,
        },
        4,
    )


def _runs(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {run["run"]: run for run in section["runs"]}


def targets(section: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each of the issue's targets for the fleet: what it asks, what was measured."""
    if not section:
        return []
    runs = _runs(section)
    fleet, alone = runs["fleet"], runs["alone"]
    budget = section["budget_rps"]
    out = [
        {
            "target": "fleet: 0 requests rejected by the vendor's limiter after the first minute",
            "measured": (
                f"{fleet['rejected_in_window']} (without the fleet: {alone['rejected_in_window']}"
                f", {alone['rejected_per_s']:.1f}/s)"
            ),
            "ok": fleet["rejected_in_window"] == 0,
        },
        {
            "target": f"fleet: >= {USED:.0%} of the account's {budget:g} requests/s used",
            "measured": (
                f"{fleet['budget_used']:.1%} ({fleet['admitted_per_s']:.1f}/s admitted; "
                f"per 10 s {fleet['admitted_per_10s_min']:.1f}-{fleet['admitted_per_10s_max']:.1f})"
            ),
            "ok": fleet["budget_used"] >= USED,
        },
    ]
    ratio, split = section["cpu_ratio"], section["cpu_ratio_split"]
    extra = fleet["cpu_s_per_1000_polls"] - runs["split"]["cpu_s_per_1000_polls"]
    out.append(
        {
            "target": f"fleet: its own CPU at most {FLEET_CPU_MS:g} ms per poll",
            "measured": (
                f"{extra:+.2f} ms: {fleet['cpu_s_per_1000_polls']:.2f} against "
                f"{runs['split']['cpu_s_per_1000_polls']:.2f} CPU s per 1000 polls split by "
                f"hand ({split - 1:+.1%}); alone {alone['cpu_s_per_1000_polls']:.2f} "
                f"({ratio - 1:+.1%})"
            ),
            "ok": extra <= FLEET_CPU_MS,
        }
    )
    return out


def table(section: dict[str, Any] | None) -> str:
    """The section's runs as text."""
    if not section:
        return ""
    lines = [
        f"Fleet: {section['exporters']} exporters x {section['jobs_each']} jobs every "
        f"{section['interval_s']:g} s on one account the simulator limits to "
        f"{section['budget_rps']:g} requests/s; measured after {section['warmup_s']:g} s of "
        f"warm-up (the three runs side by side, the section took {section['duration_s']:.0f} s)",
        f"  {'run':8} {'budget/src':>10} {'admitted/s':>10} {'rejected/s':>10} {'used':>6} "
        f"{'per 10 s':>11} {'rej. warm-up':>12} {'rej. after':>10} {'CPU s/1000':>10} "
        f"{'cores':>6} {'RSS MB':>7} {'Redis':>6}",
    ]
    for run in section["runs"]:
        rss = max(e["rss_mb"] for e in run["exporters"])
        tens = f"{run['admitted_per_10s_min']:.0f}-{run['admitted_per_10s_max']:.0f}"
        lines.append(
            f"  {run['run']:8} {run['source_budget_rps']:10g} {run['admitted_per_s']:10.1f} "
            f"{run['rejected_per_s']:10.2f} {run['budget_used']:6.1%} {tens:>11} "
            f"{run['rejected_in_warmup']:12} {run['rejected_in_window']:10} "
            f"{run['cpu_s_per_1000_polls']:10.2f} {run['cpu_cores']:6.2f} {rss:7.0f} "
            f"{run['redis_cpu_cores']:6.3f}"
        )
    for run in section["runs"]:
        each = ", ".join(
            f"{e['requests_per_s']:.1f}/s {e['cpu_s_per_1000_polls']:.2f}" for e in run["exporters"]
        )
        lines.append(f"  {run['run']:8} each exporter (requests, CPU s per 1000): {each}")
    lines.append(
        f"  CPU per poll with the fleet / without: {section['cpu_ratio']:.2f}x "
        f"(/ split by hand: {section['cpu_ratio_split']:.2f}x)"
    )
    return "\n".join(lines)
