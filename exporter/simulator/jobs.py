"""The simulated job model: pure functions of the time passed in.

A :class:`SimJob` processes ``rate`` items per second from ``created`` until
``total`` items are done, then ends in its ``outcome``.  Every
``error_every``-th processed item fails.  :meth:`SimJob.finish` forces the end
at once.  Nothing here reads a clock except :meth:`SimJob.finish` when it is
not told the time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

EVOCALIZE = "evocalize_batch_report"
FULLSTORY = "batch_import_job"
TALKDESK = "report_job"
APIS = (EVOCALIZE, FULLSTORY, TALKDESK)
PREFIXES = {EVOCALIZE: "evocalize", FULLSTORY: "fullstory", TALKDESK: "talkdesk"}

OUTCOMES = ("completed", "failed", "canceled", "deleted")
TALKDESK_FINAL = {
    "completed": "done",
    "failed": "failed",
    "canceled": "canceled",
    "deleted": "deleted",
}
FULLSTORY_FINAL = {"completed": "COMPLETED", "failed": "FAILED", "canceled": "FAILED"}
UPLOADING_FROM = 0.9  # Talkdesk is ``uploading`` for the last 10% of the items

ERROR_CODES = (
    "EV_BAD_REQUEST_DUPLICATE",
    "EV_BAD_REQUEST_INVALID_EMAIL",
    "EV_BAD_REQUEST_UNKNOWN_GROUP",
)
ERROR_MESSAGES = {
    "EV_BAD_REQUEST_DUPLICATE": "Duplicate user create request detected: user with {email} "
    "has already been associated to another user id.",
    "EV_BAD_REQUEST_INVALID_EMAIL": "Invalid email address: {email}.",
    "EV_BAD_REQUEST_UNKNOWN_GROUP": "Group seattle_office does not exist.",
    None: "Item could not be processed.",
}
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


def rfc3339(timestamp: float) -> str:
    """Format Unix seconds like Fullstory does: ``2019-04-18T14:36:11.123Z``."""
    millis = math.floor(timestamp * 1000)
    moment = datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


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
    delay).  Before it, a Talkdesk job is ``created`` and the others report no
    progress.  ``outcome`` is the final state once every item is processed:
    Evocalize only knows ``isCompleted``; Fullstory reports ``FAILED`` for
    ``failed`` and ``canceled``; ``deleted`` Evocalize and Fullstory jobs answer
    404 once finished (the vendor no longer has them).
    """

    api: str
    id: str
    created: float
    total: int = 100
    rate: float = 10.0
    error_every: int = 0
    outcome: str = "completed"
    report_type: str = "calls"
    name: str = "Calls report"
    forced_outcome: str | None = None
    forced_at: float | None = None
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, got {self.api!r}")
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
        """Tell whether a finished ``deleted`` Evocalize/Fullstory job now answers 404."""
        return self.api != TALKDESK and self.final_outcome == "deleted" and self.is_finished(now)

    def talkdesk_status(self, now: float) -> str:
        """Return the lower-case Talkdesk status at ``now``."""
        if self.is_finished(now):
            return TALKDESK_FINAL[self.final_outcome]
        if now < self.created:
            return "created"
        if self.processed(now) >= math.ceil(self.total * UPLOADING_FROM):
            return "uploading"
        return "processing"

    def fullstory_status(self, now: float) -> str:
        """Return the Fullstory status (``PROCESSING``, ``COMPLETED`` or ``FAILED``) at ``now``."""
        if not self.is_finished(now):
            return "PROCESSING"
        return FULLSTORY_FINAL.get(self.final_outcome, "FAILED")

    def error_items(self, now: float, start: int, stop: int) -> list[dict[str, object]]:
        """Return Evocalize error items ``start`` to ``stop`` (0-based) as the seed shows them."""
        items: list[dict[str, object]] = []
        for index in range(start, min(stop, self.errors(now))):
            number = (index + 1) * self.error_every
            email = f"user{number}@example.com"
            code = error_code(index)
            item: dict[str, object] = {
                "input": {
                    "id": f"user_{number}",
                    "name": f"User {number}",
                    "email": email,
                    "groups": [
                        {"id": "seattle_office", "name": "Seattle Office", "role": "group_admin"}
                    ],
                },
                "errorMessage": ERROR_MESSAGES[code].format(email=email),
            }
            if code is not None:
                item["restErrorCode"] = code
            items.append(item)
        return items
