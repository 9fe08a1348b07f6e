"""The simulated job model: pure functions of the time passed in.

A :class:`SimJob` processes ``rate`` items per second from ``created`` until
``total`` items are done, then ends in its ``outcome``; its optional
``rate_changes`` and ``stalls`` bend that straight line
(:mod:`exporter.simulator.noise`).  Every
``error_every``-th processed item fails, with the code :func:`item_error_code`
picks among its vendor's codes.  :meth:`SimJob.finish` forces the end at once.
Nothing here reads a clock except :meth:`SimJob.finish` when it is not told the
time.  How a job looks to each vendor's API is in that vendor's module,
``simulator/vendors/``, and so are the vendor's per-job ``options`` (a
:class:`JobOptions` subclass checks and reads them): nothing here names a vendor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Self

from exporter.simulator.noise import Pairs, Schedule, check_pairs

OUTCOMES = ("completed", "failed", "canceled", "deleted")
EPSILON = 1e-6


def item_error_code(index: int, codes: Sequence[str]) -> str | None:
    """Return the code of the ``index``-th failed item (0-based): every third has none.

    The others cycle through ``codes``, a vendor's item error codes (none: no code).
    """
    if index % 3 == 2 or not codes:
        return None
    return codes[(index // 3 + index % 3) % len(codes)]


def item_error_counts(errors: int, codes: Sequence[str]) -> dict[str | None, int]:
    """Count the first ``errors`` failed items by :func:`item_error_code` (``None``: no code)."""
    counts: dict[str | None, int] = {}
    for index in range(errors):
        code = item_error_code(index, codes)
        counts[code] = counts.get(code, 0) + 1
    return counts


def check_int(name: str, value: object) -> None:
    """Reject a value that is not a non-negative ``int`` (``bool`` included)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_bool(name: str, value: object) -> None:
    """Reject a value that is not ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r}")


def check_float(name: str, value: object) -> None:
    """Reject a value that is not a finite, non-negative number."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


def check_text(name: str, value: object) -> None:
    """Reject a value that is not a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def check_outcome(value: object) -> str:
    """Return ``value`` if it is one of :data:`OUTCOMES`, else raise ``ValueError``."""
    if not isinstance(value, str) or value not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class JobOptions:
    """One vendor's per-job options: a subclass per vendor declares each, with its default.

    Its ``__post_init__`` checks the values; :meth:`check` also refuses names it
    does not declare.  This base declares none: the options of an API whose
    jobs take none.
    """

    @classmethod
    def check(cls, api: str, given: Mapping[str, object]) -> Mapping[str, object]:
        """Return every option of a job of ``api`` given ``given``, defaults filled in.

        Unknown names and bad values raise ``ValueError`` (or ``TypeError``).
        """
        allowed = tuple(option.name for option in fields(cls))
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            takes = f"it takes: {', '.join(allowed)}" if allowed else "it takes none"
            raise ValueError(f"unknown {api} job options: {', '.join(unknown)} ({takes})")
        settings: dict[str, Any] = dict(given)
        return MappingProxyType(asdict(cls(**settings)))

    @classmethod
    def of(cls, job: SimJob) -> Self:
        """Return ``job``'s options as this class (the defaults where it has none)."""
        settings: dict[str, Any] = dict(job.options)
        return cls(**settings)


@dataclass(kw_only=True, slots=True)
class SimJob:
    """One simulated job; its state at time ``now`` comes from the methods below.

    ``created`` is when processing starts (the clock at add time plus any start
    delay); before it the job reports no progress.  ``rate`` is its speed in
    items per second, changed from ``created`` plus each offset of
    ``rate_changes`` to the rate paired with it, and zero during each
    ``(offset, length)`` of ``stalls`` (both empty: a straight line; see
    :mod:`exporter.simulator.noise`).  ``outcome`` is the final state once
    every item is processed.  ``api`` is checked by the simulator
    that adds the job (only it knows which APIs it serves), and so are
    ``options``, which only the job's vendor reads (by its :class:`JobOptions`).
    """

    api: str
    id: str
    created: float
    total: int = 100
    rate: float = 10.0
    error_every: int = 0
    outcome: str = "completed"
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    rate_changes: Pairs = ()
    stalls: Pairs = ()
    forced_outcome: str | None = None
    forced_at: float | None = None
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)
    schedule: Schedule = field(init=False, repr=False, compare=False)
    # Seconds from ``created`` to the last item (None: never): the polls ask it over and over.
    _lasts: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_text("api", self.api)
        check_text("id", self.id)
        check_int("total", self.total)
        check_float("rate", self.rate)
        check_int("error_every", self.error_every)
        check_outcome(self.outcome)
        if not isinstance(self.options, Mapping) or not all(
            isinstance(name, str) for name in self.options
        ):
            raise TypeError(f"options must map names to values, got {self.options!r}")
        self.options = MappingProxyType(dict(self.options))
        if not isinstance(self.created, int | float) or not math.isfinite(self.created):
            raise ValueError(f"created must be a finite number, got {self.created!r}")
        self.rate_changes = check_pairs("rate_changes", self.rate_changes)
        self.stalls = check_pairs("stalls", self.stalls, spans=True)
        self.schedule = Schedule.build(self.rate, self.rate_changes, self.stalls)
        self._lasts = 0.0 if self.total == 0 else self.schedule.reaches(self.total)

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
        return None if self._lasts is None else self.created + self._lasts

    def finishes_at(self) -> float | None:
        """Return when the job ends (forced or not); ``None``: it never does on its own."""
        return self.forced_at if self.forced_at is not None else self.natural_end

    def processed(self, now: float) -> int:
        """Return how many items are processed (successfully or not) at ``now``."""
        if self.forced_at is not None:
            return self.total
        if now < self.created:
            return 0
        end = self.natural_end
        if end is not None and now >= end:
            return self.total
        return min(self.total, math.floor(self.schedule.items(now - self.created) + EPSILON))

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
