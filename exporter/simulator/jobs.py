"""The simulated job model: pure functions of the time passed in.

A :class:`SimJob` processes ``rate`` items per second from ``created`` until
``total`` items are done, then ends in its ``outcome``.  Every
``error_every``-th processed item fails, with the code :func:`error_code`
gives it.  :meth:`SimJob.finish` forces the end at once.  Nothing here reads a
clock except :meth:`SimJob.finish` when it is not told the time.  How a job
looks to each vendor's API is in that vendor's module, ``simulator/vendors/``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

OUTCOMES = ("completed", "failed", "canceled", "deleted")
DEFAULT_REPORT_TYPE = "calls"

# Each failed item's code: these are Evocalize's restErrorCode values, the one API that
# lists item errors; the exporter's tests count errors by them (error_code_counts).
ERROR_CODES = (
    "EV_BAD_REQUEST_DUPLICATE",
    "EV_BAD_REQUEST_INVALID_EMAIL",
    "EV_BAD_REQUEST_UNKNOWN_GROUP",
)
EPSILON = 1e-6


def error_code(index: int) -> str | None:
    """Return the ``restErrorCode`` of the ``index``-th error (0-based); every third has none."""
    if index % 3 == 2:
        return None
    return ERROR_CODES[(index // 3 + index % 3) % len(ERROR_CODES)]


def error_code_counts(errors: int) -> dict[str | None, int]:
    """Count the first ``errors`` errors by code (``None`` for a missing code)."""
    counts: dict[str | None, int] = {}
    for index in range(errors):
        code = error_code(index)
        counts[code] = counts.get(code, 0) + 1
    return counts


def _check_int(name: str, value: object) -> None:
    """Reject a value that is not a non-negative ``int`` (``bool`` included)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_float(name: str, value: object) -> None:
    """Reject a value that is not a finite, non-negative number."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


def _check_text(name: str, value: object) -> None:
    """Reject a value that is not a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def check_outcome(value: object) -> str:
    """Return ``value`` if it is one of :data:`OUTCOMES`, else raise ``ValueError``."""
    if not isinstance(value, str) or value not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {value!r}")
    return value


@dataclass(kw_only=True, slots=True)
class SimJob:
    """One simulated job; its state at time ``now`` comes from the methods below.

    ``created`` is when processing starts (the clock at add time plus any start
    delay); before it the job reports no progress.  ``outcome`` is the final
    state once every item is processed.  ``api`` is checked by the simulator
    that adds the job (only it knows which APIs it serves); ``report_type``
    and ``name`` are what the APIs that show them show.
    """

    api: str
    id: str
    created: float
    total: int = 100
    rate: float = 10.0
    error_every: int = 0
    outcome: str = "completed"
    report_type: str = DEFAULT_REPORT_TYPE
    name: str = "Calls report"
    forced_outcome: str | None = None
    forced_at: float | None = None
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_text("api", self.api)
        _check_text("id", self.id)
        _check_int("total", self.total)
        _check_float("rate", self.rate)
        _check_int("error_every", self.error_every)
        check_outcome(self.outcome)
        _check_text("report_type", self.report_type)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {self.name!r}")
        if not isinstance(self.created, int | float) or not math.isfinite(self.created):
            raise ValueError(f"created must be a finite number, got {self.created!r}")

    def finish(self, outcome: str | None = None, *, at: float | None = None) -> None:
        """End the job now (or ``at``) with ``outcome`` (default: its planned one)."""
        self.forced_outcome = check_outcome(outcome or self.outcome)
        self.forced_at = self.clock() if at is None else at

    @property
    def final_outcome(self) -> str:
        """Return the outcome the job ends (or ended) with."""
        return self.forced_outcome or self.outcome

    @property
    def natural_end(self) -> float | None:
        """Return when the last item is processed if nothing forces the end; ``None``: never."""
        if self.total == 0:
            return self.created
        if self.rate <= 0:
            return None
        return self.created + self.total / self.rate

    def processed(self, now: float) -> int:
        """Return how many items are processed (successfully or not) at ``now``."""
        if self.forced_at is not None:
            return self.total
        if now < self.created:
            return 0
        end = self.natural_end
        if end is not None and now >= end:
            return self.total
        return min(self.total, math.floor(self.rate * (now - self.created) + EPSILON))

    def errors(self, now: float) -> int:
        """Return how many processed items failed at ``now``."""
        if self.error_every == 0:
            return 0
        return self.processed(now) // self.error_every

    def finished_at(self, now: float) -> float | None:
        """Return when the job finished, or ``None`` if it is still going at ``now``."""
        if self.forced_at is not None:
            return self.forced_at
        if now < self.created or self.processed(now) < self.total:
            return None
        return self.natural_end

    def is_finished(self, now: float) -> bool:
        """Tell whether the job has reached its final state at ``now``."""
        return self.finished_at(now) is not None

    def is_gone(self, now: float) -> bool:
        """Tell whether a ``deleted`` job has finished: APIs that drop such jobs answer 404."""
        return self.final_outcome == "deleted" and self.is_finished(now)
