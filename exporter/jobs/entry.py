"""One watched job's state, and the read-only view of it that everyone but the table gets.

:class:`JobEntry` is the table's own record of a job; only
:class:`~exporter.jobs.table.JobTable` assigns its fields.  Everyone else (the
poller, the watchlist, the renderer, the state store) sees a :class:`JobView`,
whose attributes are read-only to the type checker, and asks the table to
change anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from exporter.jobs.keys import JobKey, Labels, Origin
from exporter.model import Snapshot

__all__ = ["JobEntry", "JobView", "Saved"]


class Saved(Protocol):
    """A job's state as the table keeps it and a previous run saved it (a state record)."""

    @property
    def snapshot(self) -> Snapshot | None:
        """What the last good poll said; ``None`` before the first."""
        ...

    @property
    def first_seen(self) -> float | None:
        """Wall time of the first good poll."""
        ...

    @property
    def seen_finished(self) -> float | None:
        """Wall time of the first good poll that found the job finished."""
        ...

    @property
    def errors_by_code(self) -> tuple[tuple[str, int], ...] | None:
        """Failed items by error code, read once the job finished."""
        ...

    @property
    def poll_success(self) -> bool | None:
        """Whether the last poll succeeded; ``None`` before the first."""
        ...

    @property
    def last_success(self) -> float | None:
        """Wall time of the last good poll."""
        ...

    @property
    def expires_at(self) -> float | None:
        """Wall time when a finished job's series go."""
        ...

    @property
    def pending_finish(self) -> Snapshot | None:
        """The finished snapshot whose errors listing is still being read; recorded after it."""
        ...

    @property
    def pending_finish_at(self) -> float | None:
        """Wall time of the job request that saw :attr:`pending_finish`."""
        ...


class JobView(Saved, Protocol):
    """A watched job as its readers see it: no field can be assigned through it."""

    @property
    def key(self) -> JobKey:
        """(source, job_id)."""
        ...

    @property
    def api(self) -> str:
        """The API the job is polled through."""
        ...

    @property
    def origin(self) -> Origin:
        """Where the job came from: the config, the API or the watch dir."""
        ...

    @property
    def labels(self) -> Labels:
        """The job's own labels, as the config or registration gave them (no origin)."""
        ...

    @property
    def finished(self) -> bool:
        """Whether the last good poll found the job finished."""
        ...

    @property
    def last_failure(self) -> str | None:
        """Why the last poll failed (``timeout``, ...) while polls fail; ``None`` once one works."""
        ...

    def duration_bounds(self) -> tuple[float | None, float | None]:
        """Start and end of the job's duration; the end is ``None`` while it runs."""
        ...


@dataclass(slots=True)
class JobEntry:
    """Everything the table knows about one job (a :class:`JobView`); only the table sets it."""

    key: JobKey
    api: str
    origin: Origin
    labels: Labels
    snapshot: Snapshot | None = None
    first_seen: float | None = None
    seen_finished: float | None = None
    errors_by_code: tuple[tuple[str, int], ...] | None = None
    poll_success: bool | None = None
    last_success: float | None = None
    not_found_streak: int = 0  # 404s in a row: only a few of them mean the job is gone
    failures: int = 0  # failed polls in a row, for the job's backoff
    last_failure: str | None = None  # the reason of the last of those failures (not saved)
    expires_at: float | None = None
    pending_finish: Snapshot | None = None
    pending_finish_at: float | None = None

    @property
    def finished(self) -> bool:
        """Whether the last good poll found the job finished."""
        return self.snapshot is not None and self.snapshot.status.finished

    def duration_bounds(self) -> tuple[float | None, float | None]:
        """Start and end of the job's duration; the end is ``None`` while it runs."""
        snap = self.snapshot
        if snap is None:
            return None, None
        start = snap.created
        if start is None:
            if snap.status.finished and self.seen_finished == self.first_seen:
                # Finished (or gone) at the first look: how long it ran is unknown, not 0.
                return None, None
            start = self.first_seen
        end = None
        if snap.status.finished:
            end = snap.finished if snap.finished is not None else self.seen_finished
        return start, end
