"""The simulator's pure parts: job progress, faults, path splitting and the demo plan.

How each vendor shows a job is tested with its module, in ``tests/simulator/vendors/``.
"""

from __future__ import annotations

import math

import pytest

from exporter.simulator import (
    APIS,
    DEMO_JOBS,
    DEMO_MISSING_ID,
    DEMO_REPORT_TYPE,
    EVOCALIZE,
    FULLSTORY,
    TALKDESK,
    Fault,
    Simulator,
    demo_jobs,
    error_code,
    error_code_counts,
    split_path,
)
from exporter.simulator.faults import DEFAULT_HUGE_SIZE, FaultTable, check_target
from exporter.simulator.vendors import FAULT_TARGETS, SPARED_TARGETS, talkdesk
from tests.simulator.helpers import T0, make


def test_progress_is_rate_times_elapsed_floored_and_capped() -> None:
    """Processed items grow with ``floor(rate * elapsed)`` and stop at ``total``."""
    job = make(total=100, rate=10.0)
    assert job.processed(T0 - 5) == 0
    assert job.processed(T0) == 0
    assert job.processed(T0 + 0.19) == 1
    assert job.processed(T0 + 5) == 50
    assert job.processed(T0 + 10) == 100
    assert job.processed(T0 + 1000) == 100
    assert not job.is_finished(T0 + 9.99)
    assert job.finished_at(T0 + 10) == T0 + 10
    assert job.finished_at(T0 + 50) == T0 + 10


def test_fractional_rates_reach_the_total_exactly_on_time() -> None:
    """Float rounding does not leave a job one item short at its natural end."""
    job = make(total=100, rate=0.3)
    end = job.natural_end
    assert end is not None
    assert job.processed(end) == 100
    assert job.is_finished(end)


def test_every_nth_item_fails() -> None:
    """``error_every=N`` makes items N, 2N, ... fail; 0 means no failures."""
    job = make(total=100, rate=10.0, error_every=7)
    assert job.errors(T0 + 0.6) == 0
    assert job.errors(T0 + 0.7) == 1
    assert job.errors(T0 + 100) == 14
    assert make(error_every=0).errors(T0 + 100) == 0


def test_zero_rate_never_finishes_and_empty_job_finishes_at_creation() -> None:
    """A rate of 0 is a stuck job; a job of 0 items is done as soon as it starts."""
    stuck = make(total=10, rate=0.0)
    assert stuck.natural_end is None
    assert stuck.processed(T0 + 1e6) == 0
    assert not stuck.is_finished(T0 + 1e6)
    empty = make(total=0)
    assert not empty.is_finished(T0 - 1)
    assert empty.finished_at(T0) == T0


def test_finish_forces_the_end_with_a_given_or_planned_outcome() -> None:
    """``finish`` ends the job at once: all items processed, the outcome overridden."""
    job = make(api=TALKDESK, total=100, rate=1.0, outcome="completed")
    job.finish("failed", at=T0 + 3)
    assert job.processed(T0 + 3) == 100
    assert job.finished_at(T0 + 3) == T0 + 3
    assert job.final_outcome == "failed"
    assert talkdesk.status(job, T0 + 3) == "failed"
    planned = make(outcome="canceled", clock=lambda: T0 + 42)
    planned.finish()
    assert planned.final_outcome == "canceled"
    assert planned.forced_at == T0 + 42


def test_deleted_jobs_are_gone_once_finished_but_talkdesk_reports_them() -> None:
    """A finished ``deleted`` job is gone (Evocalize and Fullstory 404); Talkdesk says deleted."""
    for api in (EVOCALIZE, FULLSTORY, TALKDESK):
        job = make(api=api, outcome="deleted")
        assert not job.is_gone(T0 + 1)
        assert job.is_gone(T0 + 10)
    answer = talkdesk.report_job(make(api=TALKDESK, outcome="deleted"), T0 + 10, "http://sim/")
    assert (answer.status, answer.body["job"]["status"]) == (200, "deleted")  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api", ""),
        ("id", ""),
        ("total", -1),
        ("total", 1.5),
        ("total", True),
        ("rate", -0.1),
        ("rate", math.inf),
        ("rate", "fast"),
        ("error_every", -2),
        ("outcome", "exploded"),
        ("report_type", ""),
        ("created", math.nan),
    ],
)
def test_invalid_job_settings_are_rejected(field: str, value: object) -> None:
    """Out-of-range or wrongly typed settings raise ``ValueError``."""
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


def test_the_simulator_only_adds_jobs_of_its_apis() -> None:
    """``add_job`` names the APIs it knows when given another."""
    sim = Simulator(clock=lambda: T0)
    with pytest.raises(ValueError, match="api must be one of") as raised:
        sim.add_job("nope", "x")
    assert str(raised.value) == f"api must be one of {', '.join(APIS)}, got 'nope'"
    assert sim.find_job("nope", "x") is None


def test_non_string_name_is_a_type_error() -> None:
    """A job name must be a string."""
    with pytest.raises(TypeError, match="name"):
        make(name=3)
    with pytest.raises(ValueError, match="outcome"):
        make().finish("exploded")


def test_error_codes_cycle_three_codes_and_every_third_has_none() -> None:
    """Every third error lacks ``restErrorCode``; the others use three distinct codes."""
    codes = [error_code(index) for index in range(9)]
    assert [code is None for code in codes] == [False, False, True] * 3
    assert len({code for code in codes if code is not None}) == 3
    counts = error_code_counts(9)
    assert counts[None] == 3
    assert sum(counts.values()) == 9


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "nope"},
        {"kind": "slow", "delay": -1},
        {"kind": "slow", "delay": math.nan},
        {"kind": "slow", "delay": True},
        {"kind": "huge", "size": -1},
        {"kind": "huge", "size": 1.5},
        {"kind": "rate_limit", "count": 0},
        {"kind": "rate_limit", "count": True},
        {"kind": "rate_limit", "retry_after": "1\r\nX-Evil: 1"},
        {"kind": "rate_limit", "retry_after": 5},
    ],
)
def test_invalid_faults_are_rejected(kwargs: dict[str, object]) -> None:
    """A fault with an unknown kind or bad parameters raises ``ValueError``."""
    with pytest.raises(ValueError, match="must be"):
        Fault(**kwargs)  # type: ignore[arg-type]


def test_fault_table_counts_down_and_prefers_the_specific_target() -> None:
    """A counted fault clears itself; a target's own fault wins over ``*``."""
    table = FaultTable(FAULT_TARGETS, SPARED_TARGETS)
    table.set("*", Fault("server_error"))
    table.set(EVOCALIZE, Fault("rate_limit", count=2))
    assert [table.take(EVOCALIZE) for _ in range(3)] == [
        Fault("rate_limit", count=2),
        Fault("rate_limit", count=2),
        Fault("server_error"),
    ]
    assert table.take(FULLSTORY) == Fault("server_error")
    assert table.take("report_job_token") is None
    table.set("report_job_token", Fault("unavailable", count=1))
    assert table.take("report_job_token") == Fault("unavailable", count=1)
    assert table.take("report_job_token") is None
    table.clear()
    assert table.take(EVOCALIZE) is None
    assert Fault("huge").body_size == DEFAULT_HUGE_SIZE
    with pytest.raises(ValueError, match="fault target"):
        check_target("everything", FAULT_TARGETS)
    assert FAULT_TARGETS == (EVOCALIZE, FULLSTORY, TALKDESK, "report_job_token", "*")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a/b?x=1", ["a", "b"]),
        ("/a%2F..%2Fb", ["a/../b"]),
        ("/a%20b/%ZZ", ["a b", "%ZZ"]),
        ("/a/../b", None),
        ("/a/./b", None),
        ("/a//b", None),
        ("/a/", None),
        ("/", None),
        ("a/b", None),
    ],
)
def test_split_path_unquotes_each_raw_segment(raw: str, expected: list[str] | None) -> None:
    """Raw paths split on ``/`` before unquoting; empty and dot segments are refused."""
    assert split_path(raw) == expected


# The demo's plan: each job's ID, when it ends (seconds after it is added), its outcome and
# how many of its items fail.  Ends are computed as the simulator does, total / rate.
DEMO_PLAN = {
    EVOCALIZE: (
        ("evo-contacts-sync", 1200 / 20, "completed", 24),
        ("evo-users-import", 6000 / 10, "completed", 200),
        ("evo-groups-update", 900 / 3, "completed", 0),
        ("evo-nightly-backfill", 60 + 2400 / 8, "completed", 96),  # starts a minute in
    ),
    FULLSTORY: (
        ("fs-web-events", 3000 / 25, "completed", 0),
        ("fs-mobile-events", 12000 / 20, "completed", 80),
        ("fs-legacy-import", 2000 / 10, "failed", 50),
        ("abd123=", 500 / 2, "completed", 0),
    ),
    TALKDESK: (
        ("td-calls-daily", 100 / 1.5, "completed", 0),
        ("td-calls-weekly", 100 / 0.25, "completed", 0),
        ("td-calls-archive", 100 / 0.6, "failed", 0),
        ("td-calls-monthly", 100 / 0.17, "completed", 0),
    ),
}


def test_demo_jobs_are_lively_and_leave_out_the_missing_id() -> None:
    """The demo adds its planned jobs (1-10 minutes, some failing), never the missing ID."""
    sim = Simulator(clock=lambda: T0)
    demo_jobs(sim)
    assert {api: tuple(plan[0] for plan in DEMO_PLAN[api]) for api in APIS} == DEMO_JOBS
    for api, plans in DEMO_PLAN.items():
        for job_id, lasts, outcome, errors in plans:
            job = sim.find_job(api, job_id)
            assert job is not None
            assert (job.natural_end, job.final_outcome) == (T0 + lasts, outcome)
            assert (job.errors(T0 + lasts), job.report_type) == (errors, DEMO_REPORT_TYPE)
            assert (job.is_finished(T0 + 30), job.is_finished(T0 + 620)) == (False, True)
    assert sim.find_job(EVOCALIZE, DEMO_MISSING_ID) is None
