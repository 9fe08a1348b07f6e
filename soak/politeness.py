"""The checks on what the vendor saw: requests inside told windows, and the fleet-wide rate.

Both read the soak simulator's request log (:mod:`soak.simproc`), which knows
each request's exporter, against the :class:`~soak.procs.Timeline`:

* A *window* starts when the simulator answers an API a 429, or a 503 with
  ``Retry-After`` (seconds or an HTTP-date), to any exporter, and lasts until
  that ``Retry-After``.  A request to that API arriving more than 250 ms after
  the answer and before the end is a violation if Redis was up, and its
  exporter running, without a break from ``settle`` seconds before the answer
  until the request: then the fleet had been told.
* The *rate*: requests to each API (the account) in every 10 s, sliding by 1 s.
  While Redis is up (since ``settle`` seconds at least) the fleet-wide count
  must stay within 10 % of the budget.  While Redis is down each exporter
  keeps to its last share, the budget ÷ the members it last saw (its
  ``batchjob_exporter_fleet_members``), from an allowance that holds at most
  one request or half a second of it, so that is what is held to 10 % then:
  the fleet-wide count may rightly exceed the budget when an exporter
  restarted during the outage (it assumes ``fleet.size`` members, while the
  others still count the members they saw, which can be fewer), and is only
  reported.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from exporter.fleet.limiter import LEASE
from soak.observe import Sample
from soak.procs import Timeline
from soak.report import Row
from soak.world import SOURCES, Plan

APIS = tuple(SOURCES.values())
STEP = 1.0  # seconds between the starts of two rate windows


@dataclass(frozen=True, slots=True)
class Request:
    """One vendor request as the simulator logged it (wall seconds)."""

    t: float
    end: float
    exporter: int
    target: str | None
    status: int
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class Window:
    """An API closed by an answer to one exporter: from ``told`` until ``until``."""

    api: str
    told: float
    until: float


def load(path: Path) -> list[Request]:
    """The request log, in order of arrival."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            raw = json.loads(line)
            out.append(
                Request(raw["t"], raw["end"], raw["e"], raw["target"], raw["status"], raw["ra"])
            )
    return sorted(out, key=lambda r: r.t)


def retry_after_end(value: str, told: float) -> float | None:
    """When a ``Retry-After`` answered at ``told`` ends; ``None`` if it says nothing."""
    text = value.strip()
    if text.isdigit():
        return told + int(text)
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def windows(requests: list[Request]) -> list[Window]:
    """Every window the simulator's answers opened."""
    out = []
    for r in requests:
        if r.target in APIS and r.status in (429, 503) and r.retry_after:
            until = retry_after_end(r.retry_after, r.end)
            if until is not None and until > r.end:
                out.append(Window(r.target, r.end, until))
    return out


def _by(requests: list[Request], api: str, exporter: int | None = None) -> list[Request]:
    return [r for r in requests if r.target == api and exporter in (None, r.exporter)]


def window_check(requests: list[Request], timeline: Timeline, plan: Plan) -> Row:
    """Requests inside windows the fleet was told about (the issue's check: 0)."""
    found = windows(requests)
    violations: dict[int, str] = {}
    told = 0
    for api in APIS:
        mine = _by(requests, api)
        times = [r.t for r in mine]
        for w in (w for w in found if w.api == api):
            since = w.told - plan.settle
            if not timeline.up_throughout("redis", since, w.told):
                continue
            told += 1
            first = bisect.bisect_right(times, w.told + plan.window_grace)
            for index in range(first, bisect.bisect_left(times, w.until)):
                r = mine[index]
                member = f"e{r.exporter}"
                if timeline.up_throughout("redis", since, r.t) and timeline.up_throughout(
                    member, since, r.t
                ):
                    violations[id(r)] = (
                        f"{api}: {member} at +{r.t - w.told:.3f}s of a window told at "
                        f"{w.told:.3f} until {w.until:.3f}"
                    )
    return Row(
        "requests inside a window the fleet was told about",
        f"{len(violations)} ({told} windows told while Redis was up, {len(found)} in all)",
        "0",
        told > 0 and not violations,  # none told: the run did not test what it is for
        tuple(violations.values()),
    )


def _starts(first: float, last: float, width: float) -> list[float]:
    count = max(0, math.floor((last - width - first) / STEP) + 1)
    return [first + n * STEP for n in range(count)]


def _count(times: list[float], start: float, width: float) -> int:
    return bisect.bisect_left(times, start + width) - bisect.bisect_left(times, start)


def rate_checks(
    requests: list[Request],
    timeline: Timeline,
    samples: list[Sample],
    plan: Plan,
    span: tuple[float, float],
) -> list[Row]:
    """Fleet-wide rate with Redis up (checked), and each exporter's share with Redis down."""
    width, budget = plan.rate_window, plan.budget
    starts = _starts(span[0], span[1], width)
    up = [a for a in starts if timeline.up_throughout("redis", a - plan.settle, a + width)]
    down = [a for a in starts if timeline.gaps("redis", a - 1, a + width) == [(a - 1, a + width)]]
    worst_up = worst_down_fleet = worst_share = 0.0
    where_up: list[str] = []
    for api in APIS:
        times = [r.t for r in _by(requests, api)]
        for a in up:
            ratio = _count(times, a, width) / (budget * width)
            if ratio > 1 + plan.rate_slack:
                where_up.append(f"{api}: {ratio:.2f} of the budget from {a:.0f}")
            worst_up = max(worst_up, ratio)
        for a in down:
            worst_down_fleet = max(worst_down_fleet, _count(times, a, width) / (budget * width))
        for index in range(plan.exporters):
            mine = [r.t for r in _by(requests, api, index)]
            for a in down:
                if not timeline.up_throughout(f"e{index}", a - 1, a + width):
                    continue
                seen = [
                    s.fleet_members
                    for s in samples
                    if s.exporter == index and a - 1 <= s.at <= a + width and s.fleet_members
                ]
                share = budget / (min(seen) if seen else plan.exporters)
                # A token bucket admits its rate times the window, plus what it holds.
                allowed = share * width + max(1.0, share * LEASE)
                worst_share = max(worst_share, _count(mine, a, width) / allowed)
    checked = None if plan.short else True
    limit = f"≤ {1 + plan.rate_slack:.2f}"
    return [
        Row(
            "fleet-wide requests ÷ budget, any 10 s, Redis up",
            f"max {worst_up:.2f} over {len(up)} windows x {len(APIS)} accounts",
            limit,
            checked and worst_up <= 1 + plan.rate_slack and bool(up),
            tuple(where_up),
        ),
        Row(
            "each exporter's requests ÷ its last share (+ its allowance), any 10 s, Redis down",
            f"max {worst_share:.2f} over {len(down)} windows" if down else "no 10 s window",
            limit,
            checked and worst_share <= 1 + plan.rate_slack if down else None,
        ),
        Row(
            "fleet-wide requests ÷ budget, any 10 s, Redis down",
            f"max {worst_down_fleet:.2f}" if down else "no 10 s window",
            "reported",
            None,
        ),
    ]
