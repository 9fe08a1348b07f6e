"""The simulator's pure parts: job progress, job options, faults, path splitting, the demo plan.

How each vendor shows a job is tested with its module, in ``tests/simulator/vendors/``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from exporter.simulator import (
    APIS,
    DEMO_JOBS,
    DEMO_MISSING_ID,
    EVOCALIZE,
    FULLSTORY,
    TALKDESK,
    VENDORS,
    Fault,
    JobOptions,
    Simulator,
    demo_jobs,
    split_path,
)
from exporter.simulator.control import JOB_KEYS
from exporter.simulator.faults import DEFAULT_HUGE_SIZE, FaultTable, check_target
from exporter.simulator.jobs import item_error_code, item_error_counts
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


def test_options_must_map_names_and_outcomes_must_be_known() -> None:
    """A job's options are a mapping with string keys; ``finish`` takes only known outcomes."""
    with pytest.raises(TypeError, match="options"):
        make(options=[("name", "x")])
    with pytest.raises(TypeError, match="options"):
        make(options={3: "x"})
    with pytest.raises(ValueError, match="outcome"):
        make().finish("exploded")


def test_a_jobs_options_are_a_frozen_copy() -> None:
    """The job keeps its own read-only copy of the options it was given."""
    given: dict[str, object] = {"colour": "red"}
    job = make(options=given)
    given["colour"] = "blue"
    assert dict(job.options) == {"colour": "red"}
    with pytest.raises(TypeError):
        job.options["colour"] = "green"  # type: ignore[index]


@dataclass(frozen=True, slots=True)
class Colours(JobOptions):
    """Options of a made-up vendor: one with a default and a check."""

    colour: str = "red"

    def __post_init__(self) -> None:
        if self.colour not in ("red", "blue"):
            raise ValueError(f"colour must be red or blue, got {self.colour!r}")


def test_job_options_fill_in_defaults_and_refuse_unknown_names() -> None:
    """``check`` fills in defaults, runs the vendor's checks and names the options it takes."""
    assert dict(Colours.check("paint", {})) == {"colour": "red"}
    assert dict(Colours.check("paint", {"colour": "blue"})) == {"colour": "blue"}
    with pytest.raises(ValueError, match="colour must be"):
        Colours.check("paint", {"colour": "green"})
    with pytest.raises(ValueError, match="unknown") as unknown:
        Colours.check("paint", {"size": 3, "age": 1})
    assert str(unknown.value) == "unknown paint job options: age, size (it takes: colour)"
    with pytest.raises(ValueError, match="unknown") as none:
        JobOptions.check("plain", {"colour": "red"})
    assert str(none.value) == "unknown plain job options: colour (it takes none)"
    assert Colours.of(make(options={"colour": "blue"})) == Colours("blue")
    assert Colours.of(make()) == Colours()


def test_the_simulator_checks_job_options_by_the_jobs_vendor() -> None:
    """``add_job`` passes the other keywords to the API's options: an API taking none refuses."""
    sim = Simulator(clock=lambda: T0)
    job = sim.add_job(TALKDESK, "t", name="Daily calls")
    assert dict(job.options) == {"report_type": "calls", "name": "Daily calls", "redirect": 300}
    with pytest.raises(ValueError, match="unknown") as raised:
        sim.add_job(EVOCALIZE, "e", name="Daily calls")
    assert str(raised.value) == f"unknown {EVOCALIZE} job options: name (it takes none)"
    assert sim.find_job(EVOCALIZE, "e") is None


@pytest.mark.parametrize("api", APIS)
def test_no_vendor_option_is_named_like_a_setting_every_job_has(api: str) -> None:
    """A vendor's options share the control JSON with ``api``, ``id`` and the generic settings."""
    taken = {*JOB_KEYS, "api", "id", "job_id", "created", "forced_outcome", "forced_at", "clock"}
    assert not set(VENDORS[api].check_options({})) & taken


def test_item_error_codes_cycle_the_codes_and_every_third_has_none() -> None:
    """Every third failed item has no code; the others cycle through the vendor's codes."""
    codes = [item_error_code(index, ("a", "b", "c")) for index in range(9)]
    assert codes == ["a", "b", None, "b", "c", None, "c", "a", None]
    assert [item_error_code(index, ("a", "b")) for index in range(6)] == [
        "a",
        "b",
        None,
        "b",
        "a",
        None,
    ]
    assert [item_error_code(index, ()) for index in range(3)] == [None, None, None]
    assert item_error_counts(9, ("a", "b", "c")) == {"a": 2, "b": 2, "c": 2, None: 3}
    assert VENDORS[EVOCALIZE].error_code_counts(9) == item_error_counts(
        9, VENDORS[EVOCALIZE].error_codes
    )


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
            assert job.errors(T0 + lasts) == errors
            assert (job.is_finished(T0 + 30), job.is_finished(T0 + 620)) == (False, True)
    assert sim.find_job(EVOCALIZE, DEMO_MISSING_ID) is None


def test_demo_jobs_get_their_vendors_options() -> None:
    """Talkdesk's demo reports have names, and the report type the demo config's sources use."""
    sim = Simulator(clock=lambda: T0)
    demo_jobs(sim)
    options = {}
    for job_id in DEMO_JOBS[TALKDESK]:
        job = sim.find_job(TALKDESK, job_id)
        assert job is not None
        options[job_id] = dict(job.options)
    assert options == {
        job_id: {"report_type": talkdesk.REPORT_TYPE, "name": name, "redirect": 300}
        for job_id, name in (
            ("td-calls-daily", "Daily calls"),
            ("td-calls-weekly", "Weekly calls"),
            ("td-calls-archive", "Calls archive"),
            ("td-calls-monthly", "Monthly calls"),
        )
    }
    for api in (EVOCALIZE, FULLSTORY):
        for job_id in DEMO_JOBS[api]:
            job = sim.find_job(api, job_id)
            assert job is not None
            assert dict(job.options) == dict(VENDORS[api].check_options({}))
