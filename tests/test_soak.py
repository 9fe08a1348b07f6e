"""The soak (``soak/``): its checks on made-up logs, and its short run, 40 s of the real thing.

The short run is ``python -m soak --duration 40s --short``: a fleet of three
exporters, Redis and the simulator, every kind of action at least once (every
fault, a SIGKILLed exporter, a Redis outage, good and broken reloads), held to
the checks of correctness only.  The rate and memory rows are reported, not
checked: on two busy cores they are noise.
"""

from __future__ import annotations

from email.utils import formatdate
from pathlib import Path

import pytest

from soak.chaos import RATES, schedule
from soak.faults import DECK
from soak.observe import parse_page, settled
from soak.outcomes import differences, expected
from soak.politeness import Request, retry_after_end, window_check
from soak.procs import Timeline
from soak.report import failed, table
from soak.run import soak
from soak.world import EVO, FS, Plan

CHAOS_SECONDS = 40.0  # start-up and the drain bring the whole run to about 80 s
CHECKED = (
    "requests inside a window the fleet was told about",
    "final values of finished jobs = the simulator's",
    "registrations lost",
    "acknowledged DELETEs undone",
    "config and watch-dir jobs watched as listed at the end",
    "tracebacks in any log",
    "the Redis password in any log",
    "exporters that exited on their own, or not 0 on SIGTERM",
    "answers not as expected (reloads, DELETEs, restarts)",
)


def _up_since(timeline: Timeline, at: float, *names: str) -> Timeline:
    for name in names:
        timeline.up(name, at)
    return timeline


def test_retry_after_ends_in_either_form() -> None:
    """Seconds count from the answer; an HTTP-date is the moment it names."""
    assert retry_after_end("4", 1000.0) == 1004.0
    assert retry_after_end(formatdate(2_000_000_000, usegmt=True), 1000.0) == 2_000_000_000
    assert retry_after_end("soon", 1000.0) is None


def test_a_request_past_the_grace_inside_a_told_window_is_a_violation() -> None:
    """After 250 ms any exporter's request counts; before, or with Redis down, none does."""
    plan = Plan.of(60, short=True)
    told = Request(1000.0, 1000.0, 0, FS, 429, "3")
    early = Request(1000.2, 1000.2, 1, FS, 200, None)
    late = Request(1000.3, 1000.3, 2, FS, 200, None)
    other_api = Request(1000.5, 1000.5, 2, EVO, 200, None)
    after = Request(1003.1, 1003.1, 1, FS, 200, None)
    log = [told, early, late, other_api, after]
    up = _up_since(Timeline(), 900.0, "redis", "e0", "e1", "e2")
    row = window_check(log, up, plan)
    assert (row.ok, row.measured) == (False, "1 (1 windows told while Redis was up, 1 in all)")
    assert row.details == (f"{FS}: e2 at +0.300s of a window told at 1000.000 until 1003.000",)
    down = _up_since(Timeline(), 995.0, "redis", "e0", "e1", "e2")  # up for less than settle
    assert (
        window_check(log, down, plan).measured == "0 (0 windows told while Redis was up, 1 in all)"
    )


def test_settled_values_wait_for_the_whole_listing_and_match_the_simulator() -> None:
    """A failed import's values are final once its codes add up, and then equal the truth."""
    page = (
        'batchjob_status{source="fs",job_id="j1",status="failed"} 1\n'
        'batchjob_status{source="fs",job_id="j1",status="running"} 0\n'
        'batchjob_successful_items{source="fs",job_id="j1"} 8\n'
        'batchjob_error_items{source="fs",job_id="j1"} 2\n'
        'batchjob_errors_by_code{source="fs",job_id="j1",code="duplicate_event"} 1\n'
        "batchjob_exporter_fleet_up 1.0\n"
    )
    own, jobs = parse_page(page)
    assert own == {"batchjob_exporter_fleet_up": 1.0}
    assert not settled(FS, jobs["fs", "j1"])  # one failure of two listed so far
    codes = {"duplicate_event": 1, "unknown": 1}
    values = jobs["fs", "j1"] | {"codes": codes}
    assert settled(FS, values)
    truth = {"total": 10, "errors": 2, "outcome": "failed", "codes": codes}
    assert differences(expected(FS, truth), values) == []
    assert differences(expected(FS, truth | {"outcome": "completed"}), values) == [
        "status 'failed' ≠ 'completed'",
        "error_items 2 ≠ 0",
        "codes {'duplicate_event': 1, 'unknown': 1} ≠ {}",
    ]


def test_the_short_schedule_has_every_action_and_its_outage_in_the_last_third() -> None:
    """Every kind at least once, every injection, one Redis outage ending before the chaos."""
    plan = Plan.of(CHAOS_SECONDS, short=True)
    steps = schedule(plan)
    kinds = {step.kind for step in steps}
    assert kinds == set(RATES)
    assert sum(step.kind == "fault" for step in steps) == len(DECK)
    (outage,) = [step.at for step in steps if step.kind == "kill redis"]
    assert CHAOS_SECONDS * 2 / 3 <= outage <= CHAOS_SECONDS - 8
    killed = {step.member for step in steps if step.kind == "kill exporter"}
    assert plan.exporters - 1 not in killed  # the last one's memory is one process's


@pytest.mark.e2e
async def test_a_short_soak_keeps_every_promise_of_correctness(tmp_path: Path) -> None:
    """No request in a told window, right final values, nothing lost, no traceback, clean exits."""
    result = await soak(Plan.of(CHAOS_SECONDS, short=True), tmp_path)
    report = table(result.rows)
    assert failed(result.rows) == [], report
    verdicts = {row.name: row.ok for row in result.rows}
    assert {name: verdicts.get(name) for name in CHECKED} == dict.fromkeys(CHECKED, True), report
    # Every action and every injection happened: the run exercised what it claims to.
    assert [kind for kind in RATES if result.counts[kind] < 1] == [], result.counts
    missing = [i.name for i in DECK if result.counts[f"fault: {i.name}"] < 1]
    assert missing == [], result.counts
