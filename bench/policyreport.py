"""The polling-policy section as a table, and the issue's targets checked against it.

Curves are compared where they meet: a run's requests per job and p95 lag are
read off the other curve by log-log interpolation between its runs (extended
along its end segments beyond them).
"""

from __future__ import annotations

import math
from typing import Any

APIS = ("evocalize_batch_report", "batch_import_job", "report_job", "all")
WITH_PROGRESS = ("evocalize_batch_report", "report_job")  # counts against a total; stages
NO_TOTAL = "batch_import_job"
FACTOR = 3.0
NOT_WORSE = 1.05  # "not worse": within the run-to-run noise of one workload


def points(runs: list[dict[str, Any]], kind: str, api: str) -> list[tuple[float, float]]:
    """(requests per job, p95 completion lag) of each run of ``kind`` for ``api``."""
    out = []
    for run in runs:
        row = run["apis"].get(api)
        p95 = None if row is None else row["completed_lag_s"]["p95"]
        if run["kind"] == kind and row is not None and p95 is not None:
            out.append((row["requests_per_job"], max(p95, 1e-3)))
    return sorted(out)


def interpolate(curve: list[tuple[float, float]], x: float, *, extend: bool) -> float | None:
    """The curve's y at ``x``, log-log; None if it has fewer than two points.

    Beyond its ends: along its end segments with ``extend`` (the fixed curve, whose
    shape is known: p95 is 0.95 of the interval), else its end value (conservative).
    """
    if len(curve) < 2:
        return None
    if not extend and not curve[0][0] <= x <= curve[-1][0]:
        return curve[0][1] if x < curve[0][0] else curve[-1][1]
    logs = [(math.log(a), math.log(b)) for a, b in curve]
    lx = math.log(x)
    index = 0
    while index < len(logs) - 2 and lx > logs[index + 1][0]:
        index += 1
    (x0, y0), (x1, y1) = logs[index], logs[index + 1]
    if x1 == x0:
        return math.exp(min(y0, y1))
    return math.exp(y0 + (y1 - y0) * (lx - x0) / (x1 - x0))


def _fixed15(runs: list[dict[str, Any]], api: str) -> tuple[float, float] | None:
    for run in runs:
        if run["run"] == "fixed 15s":
            row = run["apis"].get(api)
            if row is not None and row["completed_lag_s"]["p95"] is not None:
                return row["requests_per_job"], row["completed_lag_s"]["p95"]
    return None


def targets(
    section: dict[str, Any] | None, polls: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each of the issue's targets for the policy: what it asks, what was measured.

    ``polls`` is the polling section's results, when it ran: its CPU per poll on
    loopback is what the policy's own cost is measured against.
    """
    if not section:
        return []
    out: list[dict[str, Any]] = []
    runs = section["runs"]
    for api in WITH_PROGRESS:
        base, curve = _fixed15(runs, api), points(runs, "adaptive", api)
        if base is None or len(curve) < 2:
            continue
        lag = interpolate(curve, base[0], extend=False)
        inverse = sorted((y, x) for x, y in curve)
        fewer = interpolate(inverse, base[1], extend=False)
        lag_x = base[1] / lag if lag else 0.0
        req_x = base[0] / fewer if fewer else 0.0
        text = (
            f"at fixed 15s's {base[0]:.0f} requests/job: p95 {base[1]:.1f} s -> "
            f"{lag or 0:.1f} s ({lag_x:.1f}x); at its p95: {req_x:.1f}x fewer requests"
        )
        name = f"{api}: adaptive p95 completion lag >= 3x lower at fixed 15s's requests"
        out.append({"target": name, "measured": text, "ok": max(lag_x, req_x) >= FACTOR})
    fixed = points(runs, "fixed", NO_TOTAL)
    worst = 0.0
    for x, y in points(runs, "adaptive", NO_TOTAL):
        there = interpolate(fixed, x, extend=True)
        if there:
            worst = max(worst, y / there)
    if worst:
        text = f"worst adaptive p95 / fixed p95 at the same requests: {worst:.2f}"
        name = f"{NO_TOTAL} (no total): adaptive not worse than fixed (<= {NOT_WORSE}x)"
        out.append({"target": name, "measured": text, "ok": worst <= NOT_WORSE})
    budget = section["budget"]
    first, adaptive = (run["apis"]["all"] for run in budget["runs"])
    p_first, p_adapt = first["completed_lag_s"]["p95"], adaptive["completed_lag_s"]["p95"]
    if p_first and p_adapt:
        ratio = p_first / p_adapt
        text = (
            f"{budget['requests_per_s']:g} req/s for {budget['jobs']} jobs: p95 {p_first:.0f} s "
            f"first-come -> {p_adapt:.0f} s ({ratio:.1f}x), {adaptive['rejected']} rejected"
        )
        ok = adaptive["rejected"] == 0 and ratio >= FACTOR
        name = "under the budget: adaptive 0 rejected and p95 >= 3x lower than first-come"
        out.append({"target": name, "measured": text, "ok": ok})
    cpu = section["cpu"]
    fixed_us, adaptive_us = (cpu[k]["cpu_us_per_poll"] for k in ("fixed", "adaptive"))
    added = adaptive_us - fixed_us
    if polls:
        base, where = polls["exporter_cpu_s_per_1000_polls"] * 1000, "on loopback (polls section)"
    else:
        base, where = fixed_us, "in process, no HTTP (stricter: run with polls for loopback)"
    text = (
        f"{fixed_us:.0f} -> {adaptive_us:.0f} us per poll in process: {added:+.1f} us, "
        f"{added / base:+.1%} of {base:.0f} us per poll {where}"
    )
    name = "the policy adds <= 10% to the CPU per poll"
    out.append({"target": name, "measured": text, "ok": added <= 0.10 * base})
    return out


def _lag(summary: dict[str, Any]) -> str:
    if not summary["n"]:
        return f"{'-':>20}"
    return f"{summary['p50']:6.1f} {summary['p95']:6.1f} {summary['max']:7.1f}"


def _rows(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        f"  {'run':24} {'API':24} {'jobs':>5} {'req/job':>8} {'done p50':>8} {'p95':>6} "
        f"{'max':>7} {'fail p50':>8} {'p95':>6} {'max':>7} {'rejected':>8}"
    ]
    for run in runs:
        for api in APIS:
            row = run["apis"].get(api)
            if row is None:
                continue
            out.append(
                f"  {run['run']:24} {api:24} {row['jobs']:5} {row['requests_per_job']:8.1f} "
                f"  {_lag(row['completed_lag_s'])}   {_lag(row['failed_lag_s'])} "
                f"{row['rejected']:8}"
            )
    return out


def table(section: dict[str, Any] | None) -> str:
    """The section's runs as text: lags in seconds, from the vendor's finish to the exporter's."""
    if not section:
        return ""
    lines = [
        f"Polling policy: {section['jobs']} jobs created over {section['window_s'] / 3600:g} h, "
        f"those finished by {section['horizon_s'] / 3600:g} h counted (virtual time; "
        f"the section took {section['duration_s']:.0f} s)",
        *_rows(section["runs"]),
    ]
    budget = section["budget"]
    lines.append(
        f"Under a budget of {budget['requests_per_s']:g} requests/s for {budget['jobs']} jobs "
        "(created over 0.5 h, counted to 1 h; the simulator limits each account to it):"
    )
    lines += _rows(budget["runs"])
    cpu = section["cpu"]
    lines.append(
        f"CPU per poll in process: fixed {cpu['fixed']['cpu_us_per_poll']:.0f} us, adaptive "
        f"{cpu['adaptive']['cpu_us_per_poll']:.0f} us ({cpu['ratio'] - 1:+.1%})"
    )
    if section.get("plot"):
        lines.append(f"plot: {section['plot']}")
    return "\n".join(lines)
