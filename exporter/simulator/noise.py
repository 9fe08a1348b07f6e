"""A job's progress when it is not a straight line: rate changes and stalls, and random ones.

A job's *rate changes* are ``(offset, rate)`` pairs: from ``offset`` seconds
after it starts it processes ``rate`` items per second (before the first, its
own rate).  Its *stalls* are ``(offset, length)`` pairs: from ``offset`` for
``length`` seconds it processes nothing, then goes on at the rate of the
moment.  Both are measured from the job's start, in the same seconds: a stall
does not push the rate changes back.  :class:`Schedule` turns them into
segments of constant speed, so progress at any time is a pure function of
it; :func:`noisy_schedule` draws a plausible pair from a seeded
:class:`random.Random`, which is how the benchmark gets jobs an estimate can
get wrong while replaying virtual hours on a fake clock.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

Pairs = tuple[tuple[float, float], ...]
"""Rate changes or stalls: ``(offset, value)`` pairs, offsets in seconds after the start."""


def _number(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite non-negative number, else raise."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must hold finite non-negative numbers, got {value!r}")
    return float(value)


def check_pairs(name: str, value: object, *, spans: bool = False) -> Pairs:
    """Return ``value`` (a sequence of pairs, JSON lists too) as a tuple of float pairs.

    Each offset must come after the previous one; with ``spans`` (stalls, whose
    second value is a length), no earlier than the previous one has ended:
    stalls do not overlap.
    """
    if value == ():
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise TypeError(f"{name} must be a list of [offset, value] pairs, got {value!r}")
    pairs: list[tuple[float, float]] = []
    free_from = -math.inf
    for item in value:
        if isinstance(item, str | bytes) or not isinstance(item, list | tuple) or len(item) != 2:
            raise TypeError(f"{name} must be a list of [offset, value] pairs, got {item!r}")
        offset, second = _number(name, item[0]), _number(name, item[1])
        if offset < free_from or (offset == free_from and not spans):
            raise ValueError(f"{name} must be in order of their offsets, got {value!r}")
        free_from = offset + second if spans else offset
        pairs.append((offset, second))
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Segments of constant speed: from ``offsets[i]`` on, ``rates[i]`` items per second.

    ``done[i]`` is how many items are processed at ``offsets[i]``; the first
    segment starts at 0 and the last never ends.
    """

    offsets: tuple[float, ...]
    rates: tuple[float, ...]
    done: tuple[float, ...]

    @classmethod
    def build(cls, rate: float, rate_changes: Pairs = (), stalls: Pairs = ()) -> Schedule:
        """Return the segments of a job starting at ``rate`` with these changes and stalls."""
        if not rate_changes and not stalls:
            return cls((0.0,), (rate,), (0.0,))  # the common case, built for every job
        points = sorted(
            {0.0, *(at for at, _ in rate_changes), *(at for at, _ in stalls)}
            | {at + length for at, length in stalls}
        )
        rates: list[float] = []
        for point in points:
            current = rate
            for at, changed in rate_changes:
                if at <= point:
                    current = changed
            stalled = any(at <= point < at + length for at, length in stalls)
            rates.append(0.0 if stalled else current)
        done = [0.0]
        for index in range(1, len(points)):
            done.append(done[-1] + rates[index - 1] * (points[index] - points[index - 1]))
        return cls(tuple(points), tuple(rates), tuple(done))

    def items(self, elapsed: float) -> float:
        """Return how many items are processed ``elapsed`` (>= 0) seconds after the start."""
        index = bisect.bisect_right(self.offsets, elapsed) - 1
        return self.done[index] + self.rates[index] * (elapsed - self.offsets[index])

    def reaches(self, total: float) -> float | None:
        """Return the seconds after the start when ``total`` items are done; ``None``: never."""
        last = len(self.offsets) - 1
        for index, (offset, rate) in enumerate(zip(self.offsets, self.rates, strict=True)):
            if rate <= 0:
                continue
            if index == last or total <= self.done[index + 1]:
                return offset + (total - self.done[index]) / rate
        return None


def noisy_schedule(
    rng: random.Random,
    duration: float,
    rate: float,
    *,
    changes: int = 4,
    spread: float = 0.5,
    stall_chance: float = 0.0,
    stall_share: tuple[float, float] = (0.25, 1.0),
) -> tuple[Pairs, Pairs]:
    """Draw ``(rate_changes, stalls)`` for a job starting at ``rate`` meant to last ``duration``.

    ``changes`` rate changes fall at uniform offsets within ``duration``; after
    each, the rate is ``rate`` times a log-normal factor (``spread`` its
    sigma), the factors scaled so that the items done by ``duration`` are
    still ``rate * duration``: a job of that many items ends at ``duration``
    as without noise, only not in a straight line.  With ``stall_chance`` it
    also stalls once, somewhere in the middle 80 % of its run, for a share of
    ``duration`` drawn from ``stall_share``, and ends later by the items the
    stall cost at the rate it ends at.  The same draws are made whatever the
    chance, so one seed gives the same schedules whether jobs stall or not.
    """
    offsets = sorted(rng.uniform(0.0, duration) for _ in range(changes))
    factors = [rng.lognormvariate(0.0, spread) for _ in offsets]
    stall_at = rng.uniform(0.1, 0.9) * duration
    stall_length = rng.uniform(*stall_share) * duration
    stalls: Pairs = ((stall_at, stall_length),) if rng.random() < stall_chance else ()
    if not offsets or len(set(offsets)) < len(offsets) or offsets[-1] >= duration:
        # No changes, two at once, or no time after them (a duration of 0): the straight line.
        return (), stalls
    ends = [*offsets[1:], duration]
    weighted = sum(f * (end - at) for f, at, end in zip(factors, offsets, ends, strict=True))
    scale = (duration - offsets[0]) / weighted
    return tuple((at, rate * f * scale) for at, f in zip(offsets, factors, strict=True)), stalls
