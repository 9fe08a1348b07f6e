"""Adaptive polling's plan: when to ask a job again, from what its polls said.

Pure functions of what is passed in: no clock, no I/O, no vendor.  What a
vendor's answers mean comes from the snapshot (counts against a total) and
from the API's ``stage_hints`` (``"soon"``: its last stages; ``"wait"``: queued).
:func:`observe` folds one good poll into a job's :class:`History`; :func:`plan`
turns a history into the next delay, bounded by ``min_interval`` and
``max_interval``:

- progress against a total: the finish is estimated from the rate so far (a
  time-weighted average, so a job that slows down is re-estimated) and polled
  a fifth of the way to it, then just after it; a job whose counts stop moving is
  stalled, and its next poll moves out with the stall instead;
- a "soon" stage: polled at the minimum (how long a last stage takes varies too
  much from job to job for an estimate to beat that, measured);
- "wait" (and pending): the interval grows with the time spent waiting;
- other running stages of an API that names its last ones: the interval grows
  with the job's age (it passes a "soon" stage before it ends);
- no information: the minimum until the job has run longer than most of its
  source's jobs did (their 90th percentile, :class:`Learned`), then growing
  with its age.  An
  even interval is what keeps the slowest detections low when nothing tells
  the end apart, so only the long tail is stretched; a job whose counts stopped
  moving moves out with the stall.

Times are monotonic seconds; ``wall`` is only used to date a job's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from exporter.config import AdaptivePolling
from exporter.model import Snapshot, Status
from exporter.vendors.base import StageHint

# Poll again this far towards an estimated finish while that is at least min_interval away:
# a job's rate can jump several-fold between polls, so a fifth, not half of the way.
TOWARDS = 0.2
# Once a poll can land on the estimate, land this much after it rather than just before.
MARGIN = 0.05
# A progress rate forgets what it saw this many seconds ago by half, roughly.
RATE_MEMORY = 60.0
# The next poll after a stall of s seconds comes s * this later (the estimate moves out).
STALL_GROWTH = 0.2
# A job waiting in a "wait" stage (or pending) is asked again after this share of its wait.
WAIT_GROWTH = 0.5
# Where an API names its last stages, its other running stages are far from the end.
FAR_GROWTH = 0.05
# Without any finished job to learn from, "longer than most" means this many max_intervals.
PRIOR_TYPICAL = 6.0
# Relaxed (not timed to an estimate) polls come up to this share sooner, so a crowd spreads.
JITTER = 0.1
# Without a total, counts still for this share of the typical run mean "stuck" (see plan()).
STUCK = 2.0
NO_COUNTS = (None, None, None, None)  # History.counts of an API that gives none


class History(NamedTuple):
    """What the polls of one job said, as far as planning needs it.

    A named tuple, not a frozen dataclass: one is built per poll, and a tuple builds
    several times faster (immutable all the same).
    """

    start: float  # when the job started: its created time, else its first good poll
    at: float  # the last good poll
    stage: str  # vendor_status, lower case
    pending: bool
    total: int | None
    done: int | None  # items done against ``total``
    counts: tuple[int | None, ...]
    moved_at: float  # when the counts last changed
    stage_at: float  # when the job entered ``stage``
    rate: float | None = None  # items per second, recent polls weighing most
    failed: bool = False  # the last poll failed


@dataclass(frozen=True, slots=True)
class Learned:
    """What a source's finished jobs taught: the duration most of them stayed under."""

    typical: float | None = None


class Plan(NamedTuple):
    """The next poll, after ``delay``, and whether it is ``urgent``.

    Urgent: it lands on an estimated finish (``finish_at``), or comes soon for another
    reason (a failed poll, a last stage), so a budget's queue puts it ahead.
    """

    delay: float
    urgent: bool
    finish_at: float | None = None


def _done(snap: Snapshot) -> int | None:
    """Items done against the total, where the API gives both."""
    if snap.total_items is None:
        return None
    if snap.completed_items is not None:
        return snap.completed_items
    if snap.remaining_items is not None:
        return max(snap.total_items - snap.remaining_items, 0)
    return None


def observe(
    before: History | None,
    snap: Snapshot,
    *,
    now: float,
    wall: float,
    first_seen: float | None,
) -> History:
    """``before`` updated with a good poll at ``now`` that said ``snap``."""
    counts = (snap.completed_items, snap.remaining_items, snap.successful_items, snap.error_items)
    done, stage = _done(snap), snap.vendor_status.lower()
    if before is None:
        began = snap.created if snap.created is not None else first_seen
        start = now - max(wall - began, 0.0) if began is not None else now
        rate = done / (now - start) if done and now > start else None
        return History(start, now, stage, snap.status is Status.PENDING, snap.total_items, done,
                       counts, now, now, rate)  # fmt: skip
    rate = before.rate
    elapsed = now - before.at
    if done is not None and before.done is not None and elapsed > 0:
        recent = max(done - before.done, 0) / elapsed
        weight = elapsed / (elapsed + RATE_MEMORY)
        rate = recent if rate is None else weight * recent + (1 - weight) * rate
    return History(
        before.start, now, stage, snap.status is Status.PENDING, snap.total_items, done, counts,
        before.moved_at if counts == before.counts else now,
        before.stage_at if stage == before.stage else now, rate,
    )  # fmt: skip


def failed(before: History) -> History:
    """``before`` after a poll that failed: the next one comes sooner."""
    return before._replace(failed=True)


def _towards(left: float, low: float) -> tuple[float, bool]:
    """A fifth of the way to a finish ``left`` seconds away, or just after it once near.

    Only the poll that lands on the finish is urgent: the others refine the estimate.
    """
    if left * TOWARDS >= low:
        return left * TOWARDS, False
    return left * (1 + MARGIN), True


def _estimate(
    h: History, total: int, done: int, now: float, low: float
) -> tuple[float, bool, float | None]:
    """The delay for a job with ``done`` of ``total`` items done."""
    if done >= total:
        return low, True, now  # all items done: the status follows any moment
    if h.moved_at < h.at or not h.rate:
        # Not moving (or no rate yet): the estimate moves out with the stall.
        return (now - h.moved_at) * STALL_GROWTH, False, None
    left = (total - done) / h.rate
    delay, urgent = _towards(left, low)
    return delay, urgent, now + left


def plan(
    h: History,
    *,
    now: float,
    bounds: AdaptivePolling,
    hint: StageHint | None,
    far: bool,
    learned: Learned,
    jitter: float,
) -> Plan:
    """The next poll of the job ``h`` describes, ``jitter`` drawn from [0, 1).

    ``hint`` is what the job's stage says; ``far`` whether the API names its
    last stages (so the other running stages are not near the end).
    """
    low, high = bounds.min_interval, bounds.max_interval
    finish: float | None = None
    urgent = False
    if h.failed:
        delay, urgent = low, True
    elif h.total is not None and h.done is not None:
        delay, urgent, finish = _estimate(h, h.total, h.done, now, low)
    elif hint == "soon":
        delay, urgent = low, True
    elif hint == "wait" or h.pending:
        delay = (now - h.stage_at) * WAIT_GROWTH
    elif far:
        delay = (now - h.start) * FAR_GROWTH
    else:
        typical = learned.typical or high * PRIOR_TYPICAL
        # Counts that stopped moving for half the typical run count as running past it.
        stalled = now - h.moved_at if h.counts != NO_COUNTS else 0.0
        over = max(now - h.start, stalled * STUCK) / typical
        delay = low * over if over > 1.0 else low
    if not urgent:
        delay *= 1 - JITTER * jitter
    # Conditionals, not min(max()): this runs once per poll.
    return Plan(low if delay < low else high if delay > high else delay, urgent, finish)
