"""One adaptive source's plans: each job's history, what its finished jobs taught, the demand.

:class:`SourcePlan` owns these and is changed only through its methods, which
the poller calls with each poll's outcome; the plan itself is
:func:`~exporter.polling.policy.plan`, a pure function.  A job's record goes
when the job finishes (teaching the source how long jobs take) or is dropped.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from exporter.config import AdaptivePolling
from exporter.model import Snapshot
from exporter.polling import policy
from exporter.vendors.base import StageHint

# Finished jobs remembered per source to learn from.
MEMORY = 256
# Fewer finished jobs than this teach nothing yet: the priors hold.
MIN_LEARNED = 10
# "Longer than most": the share of finished jobs that were shorter.
TYPICAL_QUANTILE = 0.97
# Records are swept of dropped jobs once there are more than this many.
SWEEP_MIN = 64


class PlanStats(Protocol):
    """Where adaptive sources' self-metrics go."""

    def plan_lateness(self, source: str, seconds: float) -> None:
        """Observe how late a poll of ``source`` ran against its plan."""
        ...


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank; at least one value)."""
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class _Job:
    """One job's history and its current plan."""

    __slots__ = ("finish_at", "history", "interval", "planned_at", "started", "urgent")

    def __init__(self) -> None:
        self.history: policy.History | None = None
        self.planned_at: float | None = None
        self.interval = 0.0  # the plan's delay, counted in the demand; 0: none counted
        self.urgent = False
        self.finish_at: float | None = None  # the plan's estimated finish
        self.started: float | None = None  # when the poll under way started


def _ignore(seconds: float) -> None:
    """No lateness sink."""


class SourcePlan:
    """The plans of one source's jobs, keyed by job ID."""

    def __init__(
        self,
        bounds: AdaptivePolling,
        *,
        hints: Mapping[str, StageHint],
        rng: random.Random,
        lateness: Callable[[float], None] = _ignore,
    ) -> None:
        self.bounds = bounds
        # The source's request budget (requests per second), which the stretch is measured
        # against; the budget's queue, not the plans, keeps to it.  None: no budget.
        self.rate: float | None = None
        self._hints = dict(hints)
        self._far = "soon" in self._hints.values()
        self._rng = rng
        self._lateness = lateness
        self._jobs: dict[str, _Job] = {}
        self._demand = 0.0
        self._durations: deque[float] = deque(maxlen=MEMORY)
        self.learned = policy.Learned()
        self._sweep_at = SWEEP_MIN

    def __len__(self) -> int:
        """How many jobs have a record."""
        return len(self._jobs)

    @property
    def demand(self) -> float:
        """Requests per second the current plans ask for, all jobs together."""
        return max(self._demand, 0.0)

    @property
    def stretch(self) -> float:
        """How far the plans overrun the budget: their demand over it, at least 1."""
        rate = self.rate
        return 1.0 if not rate else max(self.demand / rate, 1.0)

    def started(self, job_id: str, now: float) -> None:
        """A poll of ``job_id`` starts: how late it is against its plan is measured from now."""
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = _Job()
        job.started = now

    def succeeded(
        self, job_id: str, snap: Snapshot, *, now: float, wall: float, first_seen: float | None
    ) -> float:
        """A good poll of a running job: its next plan's delay."""
        job = self._job(job_id)
        job.history = history = policy.observe(
            job.history, snap, now=now, wall=wall, first_seen=first_seen
        )
        planned = policy.plan(
            history,
            now=now,
            bounds=self.bounds,
            hint=self._hints.get(history.stage),
            far=self._far,
            learned=self.learned,
            jitter=self._rng.random(),
        )
        self._set(job, now, planned.delay, urgent=planned.urgent)
        job.finish_at = planned.finish_at
        return planned.delay

    def failed(self, job_id: str, *, now: float, backoff: float) -> float:
        """A failed poll: soon again (the job's own backoff, within the bounds)."""
        job = self._job(job_id)
        if job.history is not None:
            job.history = policy.failed(job.history)
        delay = min(max(backoff, self.bounds.min_interval), self.bounds.max_interval)
        self._set(job, now, delay, urgent=True)
        job.finish_at = None
        return delay

    def finished(self, job_id: str, now: float) -> None:
        """``job_id`` was seen finished at ``now``: learn how long it took, then forget it."""
        job = self._jobs.get(job_id)
        history = None if job is None else job.history
        if history is not None:
            self._durations.append(now - history.start)
            if len(self._durations) >= MIN_LEARNED:
                typical = quantile(list(self._durations), TYPICAL_QUANTILE)
                self.learned = policy.Learned(typical=typical)
        self.forget(job_id)

    def forget(self, job_id: str) -> None:
        """Drop ``job_id``'s record (it was dropped, or finished)."""
        job = self._jobs.pop(job_id, None)
        if job is not None and job.interval:
            self._demand -= 1.0 / job.interval

    @property
    def needs_sweep(self) -> bool:
        """Whether there are enough records that dropped jobs' ones may be piling up."""
        return len(self._jobs) > self._sweep_at

    def sweep(self, alive: Callable[[str], bool]) -> None:
        """Keep only the records of jobs still ``alive``; resum the demand."""
        self._jobs = {job_id: job for job_id, job in self._jobs.items() if alive(job_id)}
        self._demand = sum(1.0 / job.interval for job in self._jobs.values() if job.interval)
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._jobs))

    def rank(self, job_id: str, due: float) -> float:
        """Where a due poll of ``job_id`` stands in the budget's queue: lower goes first.

        A poll timed to an estimated finish stands ``max_interval`` ahead of
        that finish, so the nearest goes first (but never behind its planned
        time); a job never polled, one whose last poll failed and one in its
        last stages stand ``max_interval`` ahead of their time.  The others
        stand at their planned time: the longest overdue goes first.
        """
        job = self._jobs.get(job_id)
        ahead = self.bounds.max_interval
        if job is None or job.planned_at is None or job.history is None:
            return due - ahead
        if job.finish_at is not None:
            # Never behind its planned time: an estimate far out may be wrong (a job speeds up).
            return min(max(job.finish_at, job.planned_at) - ahead, job.planned_at)
        return job.planned_at - ahead if job.urgent else job.planned_at

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = _Job()
        if job.started is not None and job.planned_at is not None:
            self._lateness(max(job.started - job.planned_at, 0.0))
        job.started = None
        return job

    def _set(self, job: _Job, now: float, delay: float, *, urgent: bool) -> None:
        if job.interval:
            self._demand -= 1.0 / job.interval
        job.interval = delay
        self._demand += 1.0 / delay
        job.planned_at = now + delay
        job.urgent = urgent
