"""Adaptive polling end to end on virtual time: the bench's rig, a couple of hundred jobs."""

from __future__ import annotations

from bench.policy import workload
from bench.policysim import Setup, run
from exporter.config import AdaptivePolling

HOUR = 3600.0


async def test_adaptive_finds_progress_jobs_sooner_with_fewer_requests() -> None:
    """Evocalize reports: fewer requests than fixed 15 s, and every finish seen within 1 min."""
    jobs = [b for b in workload(200, window=600.0, seed=3) if b.api == "evocalize_batch_report"]
    fixed = await run(Setup("fixed", 15.0), jobs, horizon=HOUR, seed=3)
    adaptive = await run(Setup("adaptive", 15.0, AdaptivePolling(5.0, 600.0)), jobs,
                         horizon=HOUR, seed=3)  # fmt: skip
    finished = [b for b in jobs if (b.job.finishes_at() or 1e18) < b.job.created + 0.75 * HOUR]
    assert len(finished) > 40
    assert sum(adaptive.requests.values()) < sum(fixed.requests.values()) / 2
    for b in finished:
        end = b.job.finishes_at()
        assert end is not None
        assert adaptive.detected[("evocalize", b.id)] - end < 60.0


async def test_under_a_budget_nothing_is_rejected_and_every_job_is_seen() -> None:
    """At the vendor's own limit the budget sends nothing it would refuse."""
    jobs = workload(150, window=600.0, seed=4)
    bounds = AdaptivePolling(5.0, 300.0)
    out = await run(Setup("budget", 15.0, bounds, budget=1.0, limit=1.0), jobs,
                    horizon=HOUR, seed=4)  # fmt: skip
    assert out.rejected == {"batch_import_job": 0, "evocalize_batch_report": 0, "report_job": 0}
    assert sum(out.requests.values()) <= HOUR * 1.0 + 3  # the budget, and each bucket's burst
    early = [b for b in jobs if (b.job.finishes_at() or 1e18) - b.job.created < 0.5 * HOUR]
    assert all(any(key[1] == b.id for key in out.detected) for b in early)
