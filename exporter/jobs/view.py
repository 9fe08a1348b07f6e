"""One watched job as the people and programs who look at it see it: a frozen summary.

``GET /api/v1/jobs`` (:meth:`JobSummary.as_json`) and the jobs page at ``/``
both show jobs through :func:`summarize`, read straight from the table's
:class:`~exporter.jobs.entry.JobView`: there is no second record of a job to
keep in step.  A summary is built for the jobs that are shown only (a page of
them), never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.jobs.entry import JobView
from exporter.jobs.keys import Labels, Origin
from exporter.model import Status

__all__ = ["JobSummary", "summarize"]


@dataclass(frozen=True, slots=True)
class JobSummary:
    """What a job's last polls said, vendor-neutral; ``None`` where nothing is known."""

    source: str
    job_id: str
    api: str
    origin: Origin
    labels: Labels
    status: Status | None  # None before the first good poll
    vendor_status: str | None
    poll_success: bool | None
    last_success: float | None  # wall time of the last good poll
    last_failure: str | None  # why polls fail, while they do
    total_items: int | None
    completed_items: int | None  # the API's count, else total less remaining
    successful_items: int | None
    error_items: int | None
    errors_by_code: tuple[tuple[str, int], ...]
    started: float | None  # wall time its duration counts from
    ended: float | None  # wall time it ended; None while it runs

    def as_json(self) -> dict[str, object]:
        """The job as ``GET /api/v1/jobs`` lists it (the API's documented fields only)."""
        return {
            "source": self.source,
            "id": self.job_id,
            "api": self.api,
            "origin": self.origin.value,
            "labels": dict(self.labels),
            "status": None if self.status is None else self.status.value,
            "vendor_status": self.vendor_status,
            "poll_success": self.poll_success,
            "last_success": self.last_success,
        }

    def duration(self, now: float) -> float | None:
        """Seconds the job ran (until wall time ``now`` while it runs); ``None`` if unknown."""
        if self.started is None:
            return None
        return max((now if self.ended is None else self.ended) - self.started, 0.0)

    def done_items(self) -> int | None:
        """Items processed so far: the completed count, else successful and error items added."""
        if self.completed_items is not None:
            return self.completed_items
        if self.successful_items is not None and self.error_items is not None:
            return self.successful_items + self.error_items
        return None


def summarize(entry: JobView) -> JobSummary:
    """The summary of one watched job, as of its last polls."""
    snap = entry.snapshot
    started, ended = entry.duration_bounds()
    completed = None
    if snap is not None:
        completed = snap.completed_items
        if completed is None and snap.total_items is not None and snap.remaining_items is not None:
            completed = snap.total_items - snap.remaining_items
    return JobSummary(
        source=entry.key[0],
        job_id=entry.key[1],
        api=entry.api,
        origin=entry.origin,
        labels=entry.labels,
        status=None if snap is None else snap.status,
        vendor_status=None if snap is None else snap.vendor_status,
        poll_success=entry.poll_success,
        last_success=entry.last_success,
        last_failure=entry.last_failure,
        total_items=None if snap is None else snap.total_items,
        completed_items=completed,
        successful_items=None if snap is None else snap.successful_items,
        error_items=None if snap is None else snap.error_items,
        errors_by_code=entry.errors_by_code or (),
        started=started,
        ended=ended,
    )
