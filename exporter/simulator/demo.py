"""A lively set of jobs for ``--demo``: they run from about one to about ten minutes.

Finished jobs stay finished.  :data:`DEMO_MISSING_ID` is never added, so a
demo config listing it shows how the exporter reports a job the vendor does
not know.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.simulator.jobs import EVOCALIZE, FULLSTORY, TALKDESK

if TYPE_CHECKING:
    from exporter.simulator.app import Simulator

DEMO_MISSING_ID = "no-such-job"
DEMO_REPORT_TYPE = "calls"

# api -> ((id, total, items per second, error_every, outcome, start delay, name), ...)
_PLAN: dict[str, tuple[tuple[str, int, float, int, str, float, str], ...]] = {
    EVOCALIZE: (
        ("evo-contacts-sync", 1200, 20.0, 50, "completed", 0.0, ""),  # ~1 min
        ("evo-users-import", 6000, 10.0, 30, "completed", 0.0, ""),  # ~10 min, 200 errors
        ("evo-groups-update", 900, 3.0, 0, "completed", 0.0, ""),  # ~5 min
        ("evo-nightly-backfill", 2400, 8.0, 25, "completed", 60.0, ""),  # starts in 1 min
    ),
    FULLSTORY: (
        ("fs-web-events", 3000, 25.0, 0, "completed", 0.0, ""),  # ~2 min
        ("fs-mobile-events", 12000, 20.0, 150, "completed", 0.0, ""),  # ~10 min
        ("fs-legacy-import", 2000, 10.0, 40, "failed", 0.0, ""),  # fails after ~3 min
        ("abd123=", 500, 2.0, 0, "completed", 0.0, ""),  # the seed's ID, ~4 min
    ),
    TALKDESK: (
        ("td-calls-daily", 100, 1.5, 0, "completed", 0.0, "Daily calls"),  # ~1 min
        ("td-calls-weekly", 100, 0.25, 0, "completed", 0.0, "Weekly calls"),  # ~7 min
        ("td-calls-archive", 100, 0.6, 0, "failed", 0.0, "Calls archive"),  # fails at ~3 min
        ("td-calls-monthly", 100, 0.17, 0, "completed", 0.0, "Monthly calls"),  # ~10 min
    ),
}

DEMO_JOBS: dict[str, tuple[str, ...]] = {
    api: tuple(entry[0] for entry in plan) for api, plan in _PLAN.items()
}


def demo_jobs(sim: Simulator) -> None:
    """Add the demo jobs to ``sim``, starting now by its clock."""
    for api, plan in _PLAN.items():
        for job_id, total, rate, error_every, outcome, delay, name in plan:
            sim.add_job(
                api,
                job_id,
                total=total,
                rate=rate,
                error_every=error_every,
                outcome=outcome,
                start_delay=delay,
                report_type=DEMO_REPORT_TYPE,
                name=name or "Calls report",
            )
