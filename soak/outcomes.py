"""The checks on what the exporters ended with: values, registrations, logs, exits, memory.

Final values are the exporter's settled values (:func:`soak.observe.settled`)
of each finite job, taken while it was watched, against what the simulator's
job model says the job ended with.  A registration is *lost* when its PUT was
acknowledged and it was not DELETEd, yet the exporter does not list it at the
end.  The exporter writes a registration or DELETE to its state file before
it answers, so one answered just before a SIGKILL counts too.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from soak.observe import Sample
from soak.procs import Timeline
from soak.report import Row
from soak.world import EVO, FS, FiniteJob, Plan

Watched = Mapping[int, Mapping[tuple[str, str], str]]  # exporter -> (source, id) -> origin


def expected(api: str, truth: Mapping[str, object]) -> dict[str, object]:
    """The values an exporter must show for a finished job of ``api`` (see docs/metrics.md)."""
    total, errors, outcome = truth["total"], truth["errors"], truth["outcome"]
    assert isinstance(total, int)
    assert isinstance(errors, int)
    codes = truth["codes"]
    if api == EVO:  # Evocalize has no failed state: a report is completed
        return {
            "status": "completed",
            "total_items": total,
            "remaining_items": 0,
            "completed_items": total,
            "successful_items": total - errors,
            "error_items": errors,
            "codes": codes,
        }
    if api == FS:  # failed items are counted (and listed) for a FAILED import only
        failed = outcome != "completed"
        return {
            "status": "failed" if failed else "completed",
            "successful_items": total - errors,
            "error_items": errors if failed else 0,
            "codes": codes if failed else {},
        }
    return {"status": outcome, "codes": {}}  # Talkdesk: a status and no counts


def differences(want: Mapping[str, object], got: Mapping[str, object]) -> list[str]:
    """What ``got`` has wrong, key by key."""
    return [
        f"{key} {got.get(key)!r} ≠ {value!r}"
        for key, value in want.items()
        if got.get(key) != value
    ]


@dataclass(frozen=True, slots=True)
class Ending:
    """What the soak collected for these checks."""

    jobs: list[FiniteJob]
    finals: Mapping[tuple[int, str, str], Mapping[str, object]]
    truth: Mapping[tuple[str, str], Mapping[str, object]]
    watched: Watched


def values_check(end: Ending) -> Row:
    """Final values of every finished job against the simulator's truth (100 %)."""
    checked, wrong = 0, []
    for job in end.jobs:
        truth = end.truth.get((job.api, job.id), {})
        if job.refused or not truth.get("finished"):
            continue
        final = end.finals.get((job.exporter, job.source, job.id))
        if final is None:
            gone = job.removed is not None or job.unsure
            if gone or job.key not in end.watched.get(job.exporter, {}):
                continue  # no longer watched on purpose, or lost (counted as lost)
            checked += 1
            wrong.append(f"e{job.exporter} {job.id}: finished, final values never shown")
            continue
        checked += 1
        diff = differences(expected(job.api, truth), final)
        if diff:
            wrong.append(f"e{job.exporter} {job.id} ({job.origin}): {'; '.join(diff)}")
    share = 100.0 * (checked - len(wrong)) / checked if checked else 0.0
    return Row(
        "final values of finished jobs = the simulator's",
        f"{checked - len(wrong)}/{checked} ({share:.1f} %)",
        "100 %",
        bool(checked) and not wrong,
        tuple(wrong),
    )


KILL_HINT = 5.0  # seconds: a SIGKILL this soon after an answer is named beside its loss


def _killed_soon(timeline: Timeline, exporter: int, at: float, lag: float) -> float | None:
    """Seconds from ``at`` to the first SIGKILL of ``exporter`` after it, if within ``lag``."""
    ends = [b for _, b in timeline.spans(f"e{exporter}") if b >= at]
    return ends[0] - at if ends and ends[0] - at < lag else None


def lag_row(end: Ending, settled_at: Mapping[tuple[int, str, str], float]) -> Row:
    """How long after the simulator's finish each job's final values were first seen."""
    lags = []
    for job in end.jobs:
        finished = end.truth.get((job.api, job.id), {}).get("finished_at")
        seen = settled_at.get((job.exporter, job.source, job.id))
        if isinstance(finished, float | int) and seen is not None:
            lags.append(seen - finished)
    lags.sort()
    measured = "none"
    if lags:
        p50, p95 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.95))]
        measured = f"p50 {p50:.1f}s, p95 {p95:.1f}s, max {lags[-1]:.1f}s ({len(lags)} jobs)"
    return Row("final values shown, after the simulator's finish", measured, "reported", None)


def registrations_check(end: Ending, timeline: Timeline) -> list[Row]:
    """Acknowledged registrations lost (0), acknowledged DELETEs undone (0).

    Each one listed says how soon before a SIGKILL of its exporter it was
    answered, if it was: the likeliest cause, were the write-before-answer broken.
    """
    lost: list[str] = []
    undone: list[str] = []
    for job in end.jobs:
        if job.origin != "api" or job.acked is None or job.unsure:
            continue
        listed = job.key in end.watched.get(job.exporter, {})
        if job.removed is None and not listed:
            at, into = job.acked, lost
        elif job.removed is not None and listed:
            at, into = job.removed, undone
        else:
            continue
        soon = _killed_soon(timeline, job.exporter, at, KILL_HINT)
        hint = "" if soon is None else f", answered {soon:.2f}s before a SIGKILL"
        into.append(f"e{job.exporter} {job.id}{hint}")
    acked = sum(1 for job in end.jobs if job.origin == "api" and job.acked is not None)
    return [
        Row(
            "registrations lost",
            f"{len(lost)} of {acked} acknowledged",
            "0",
            acked > 0 and not lost,  # none acknowledged: the run did not test what it is for
            tuple(lost),
        ),
        Row("acknowledged DELETEs undone", str(len(undone)), "0", not undone, tuple(undone)),
    ]


def listed_check(
    end: Ending,
    config_jobs: Mapping[int, set[tuple[str, str]]],
    dir_jobs: Mapping[int, set[tuple[str, str]]],
) -> Row:
    """Config and watch-dir jobs watched at the end exactly as the files list them."""
    wrong = []
    for exporter, watched in end.watched.items():
        for origin, want in (("config", config_jobs[exporter]), ("dir", dir_jobs[exporter])):
            have = {key for key, found in watched.items() if found == origin}
            wrong += [f"e{exporter} {origin} {key[1]} missing" for key in sorted(want - have)]
            wrong += [f"e{exporter} {origin} {key[1]} extra" for key in sorted(have - want)]
    total = sum(len(v) for v in config_jobs.values()) + sum(len(v) for v in dir_jobs.values())
    return Row(
        "config and watch-dir jobs watched as listed at the end",
        f"{len(wrong)} wrong of {total}",
        "0",
        not wrong,
        tuple(wrong),
    )


def log_checks(logs: list[Path], secret: str) -> list[Row]:
    """Tracebacks in any log (0), and the Redis password in any log (0)."""
    tracebacks, leaks = [], []
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        count = text.count("Traceback (most recent call last)")
        if count:
            at = text.index("Traceback")
            tracebacks.append(f"{path.name}: {count}, the first: {text[at : at + 600]!r}")
        if secret in text:
            leaks.append(path.name)
    total = sum(int(t.split(":")[1].split(",")[0]) for t in tracebacks)
    return [
        Row("tracebacks in any log", str(total), "0", not tracebacks, tuple(tracebacks)),
        Row("the Redis password in any log", str(len(leaks)), "0", not leaks, tuple(leaks)),
    ]


def rss_rows(
    samples: list[Sample], timeline: Timeline, plan: Plan, span: tuple[float, float]
) -> list[Row]:
    """RSS of each exporter over the last two thirds: flat within 10 % (the long run checks)."""
    rows = []
    start = span[0] + (span[1] - span[0]) / 3
    for index in range(plan.exporters):
        name = f"e{index}"
        lives = timeline.spans(name)
        life = len(lives) - 1
        born = lives[-1][0] if lives else span[0]
        mine = [
            s.rss_mb
            for s in samples
            if s.exporter == index and s.life == life and s.at >= max(start, born + 20) and s.rss_mb
        ]
        tenth = max(3, len(mine) // 10)
        if len(mine) < 2 * tenth:
            rows.append(
                Row(f"RSS of {name}, last two thirds", "too few samples", "within 10 %", None)
            )
            continue
        first, last = statistics.median(mine[:tenth]), statistics.median(mine[-tenth:])
        growth = last / first - 1
        whole = life == 0
        note = "" if whole else f" (its last life, after {life} restarts)"
        rows.append(
            Row(
                f"RSS of {name}, last two thirds{note}",
                f"{first:.1f} → {last:.1f} MB ({growth:+.1%}), max {max(mine):.1f}",
                "within 10 %",
                None if plan.short or not whole else growth <= 0.10,
            )
        )
    return rows
