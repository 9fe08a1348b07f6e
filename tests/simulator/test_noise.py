"""Jobs that do not progress in a straight line: rate changes, stalls, random schedules."""

from __future__ import annotations

import json
import math
import random

import aiohttp
import pytest

from exporter.simulator import EVOCALIZE, FULLSTORY, TALKDESK, Simulator
from exporter.simulator.noise import Schedule, check_pairs, noisy_schedule
from exporter.simulator.vendors import evocalize, fullstory, talkdesk
from tests.simulator.helpers import (
    EVO_HEADERS,
    EVO_REPORT,
    T0,
    FakeClock,
    call,
    make,
)


def test_a_straight_job_is_one_segment_and_keeps_its_exact_numbers() -> None:
    """Without noise, progress is ``floor(rate * elapsed)`` as it always was, float for float."""
    assert Schedule.build(0.3) == Schedule((0.0,), (0.3,), (0.0,))
    job = make(total=1000, rate=0.3)
    for step in range(0, 4000, 7):
        elapsed = step * 0.917
        want = min(1000, math.floor(0.3 * elapsed + 1e-6))
        assert job.processed(T0 + elapsed) == (1000 if elapsed >= 1000 / 0.3 else want)
    assert job.finishes_at() == T0 + 1000 / 0.3


def test_rate_changes_bend_progress_and_move_the_end() -> None:
    """From each change's offset on, the job runs at its new rate; the end follows."""
    job = make(total=100, rate=10.0, rate_changes=((5, 2), (15, 4.0)))
    assert [job.processed(T0 + t) for t in (5, 10, 15, 20)] == [50, 60, 70, 90]
    assert job.natural_end == T0 + 22.5
    assert job.finishes_at() == T0 + 22.5
    assert job.processed(T0 + 22.49) == 99
    assert job.finished_at(T0 + 22.5) == T0 + 22.5
    assert job.rate_changes == ((5.0, 2.0), (15.0, 4.0))


def test_a_stall_holds_the_counts_then_the_job_goes_on_and_finishes() -> None:
    """No item is processed during a stall; the job ends later by the stall's length."""
    job = make(total=100, rate=10.0, error_every=7, stalls=((3, 20),))
    held = [job.processed(T0 + t) for t in (3, 10, 22.99, 23)]
    assert held == [30, 30, 30, 30]
    assert [job.errors(T0 + t) for t in (3, 22.99)] == [4, 4]
    assert job.processed(T0 + 24) == 40
    assert job.finishes_at() == T0 + 30
    assert not job.is_finished(T0 + 29.9)
    assert job.is_finished(T0 + 30)


def test_a_job_whose_rate_drops_to_zero_never_ends_unless_forced() -> None:
    """A last rate of 0 before the total: no end of its own; ``finish`` gives it one."""
    job = make(total=100, rate=10.0, rate_changes=((5, 0),))
    assert job.finishes_at() is None
    assert job.processed(T0 + 1e6) == 50
    job.finish(at=T0 + 60)
    assert job.finishes_at() == T0 + 60
    restarted = make(total=100, rate=0.0, rate_changes=((60, 5),))
    assert restarted.processed(T0 + 59) == 0
    assert restarted.finishes_at() == T0 + 80


@pytest.mark.parametrize("seed", range(20))
def test_noisy_jobs_progress_monotonically_and_end_when_processed_says(seed: int) -> None:
    """Counts never go back, and the job is done exactly at ``finishes_at``."""
    rng = random.Random(seed)
    duration, total = rng.uniform(60, 6 * 3600), rng.choice((500, 1000, 100_000))
    changes, stalls = noisy_schedule(rng, duration, total / duration, stall_chance=0.5)
    job = make(total=total, rate=total / duration, rate_changes=changes, stalls=stalls)
    end = job.finishes_at()
    assert end is not None
    counts = [job.processed(T0 + (end - T0) * step / 500) for step in range(501)]
    assert counts == sorted(counts)
    assert job.processed(end) == total
    assert job.processed(end - 0.01) < total
    assert job.finished_at(end) == end
    assert not job.is_finished(end - 0.01)


def test_a_noisy_schedule_is_the_same_for_a_seed_and_ends_on_time() -> None:
    """One seed, one schedule; without a stall the job still ends at its duration."""
    first = noisy_schedule(random.Random(3), 600.0, 5.0)
    assert first == noisy_schedule(random.Random(3), 600.0, 5.0)
    assert first != noisy_schedule(random.Random(4), 600.0, 5.0)
    changes, stalls = first
    assert (len(changes), stalls) == (4, ())
    assert [at for at, _ in changes] == sorted(at for at, _ in changes)
    assert len({rate for _, rate in changes}) == 4
    job = make(total=3000, rate=5.0, rate_changes=changes)
    end = job.finishes_at()
    assert end is not None
    assert end == pytest.approx(T0 + 600.0, abs=1e-6)


def test_a_stall_drawn_lies_in_the_middle_and_delays_the_end() -> None:
    """With a stall, the rate changes are those of the same seed without one, the end later."""
    smooth = noisy_schedule(random.Random(5), 1000.0, 2.0)
    changes, stalls = noisy_schedule(random.Random(5), 1000.0, 2.0, stall_chance=1.0)
    assert changes == smooth[0]
    ((at, length),) = stalls
    assert 100.0 <= at <= 900.0
    assert 250.0 <= length <= 1000.0
    job = make(total=2000, rate=2.0, rate_changes=changes, stalls=stalls)
    end = job.finishes_at()
    assert end is not None
    assert end > T0 + 1000.0
    assert job.processed(T0 + at) == job.processed(T0 + at + length)


def test_no_changes_or_no_duration_give_a_straight_line() -> None:
    """Zero changes, or nothing to spread them over, leave the job's own rate alone."""
    assert noisy_schedule(random.Random(1), 600.0, 5.0, changes=0) == ((), ())
    assert noisy_schedule(random.Random(1), 0.0, 5.0) == ((), ())


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("rate_changes", ((1, -2),), ValueError),
        ("rate_changes", ((math.nan, 2),), ValueError),
        ("rate_changes", ((True, 2),), ValueError),
        ("rate_changes", ((5, 1), (5, 2)), ValueError),
        ("rate_changes", ((5, 1), (2, 2)), ValueError),
        ("rate_changes", ((5, 1, 3),), TypeError),
        ("rate_changes", "fast", TypeError),
        ("rate_changes", ("ab",), TypeError),
        ("stalls", ((10, 5), (12, 1)), ValueError),
        ("stalls", ((1, math.inf),), ValueError),
        ("stalls", 5, TypeError),
    ],
)
def test_bad_rate_changes_and_stalls_are_refused(
    field: str, value: object, error: type[Exception]
) -> None:
    """Pairs of finite non-negative numbers, in order; stalls must not overlap."""
    with pytest.raises(error, match=field):
        make(**{field: value})


def test_pairs_from_json_lists_become_tuples_and_stalls_may_touch() -> None:
    """The control API's lists are accepted; a stall may start as the last one ends."""
    assert check_pairs("stalls", [[10, 5], [15, 1]], spans=True) == ((10.0, 5.0), (15.0, 1.0))
    job = make(total=100, rate=10.0, stalls=[[1, 2], [3, 2]])
    assert (job.processed(T0 + 1), job.processed(T0 + 5), job.processed(T0 + 6)) == (10, 10, 20)


def test_the_vendors_answers_show_the_noise() -> None:
    """Counts, Talkdesk's stages and Fullstory's finish time all follow the noisy model."""
    # 80 items by 40 s, 90 by 50 s, a minute's stall, then the last 10 by 120 s.
    noise = {"total": 100, "rate": 2.0, "rate_changes": ((40, 1.0),), "stalls": ((50, 60),)}
    evo = make(**noise)
    during = evocalize.report(evo, T0 + 100, "http://sim/").body["data"]
    assert during == {
        "totalItems": 100,
        "remainingItems": 10,
        "completedItems": 90,
        "successfulItems": 90,
        "errorItems": 0,
        "isCompleted": False,
    }
    td = make(api=TALKDESK, **noise)
    stages = [talkdesk.status(td, T0 + t) for t in (39, 100, 115, 120)]
    assert stages == ["processing", "uploading", "sending", "done"]
    fs = make(api=FULLSTORY, **noise)
    body = fullstory.batch_job(fs, T0 + 200, "http://sim/").body
    assert body["job"] == {
        "id": "job-1",
        "status": "COMPLETED",
        "created": fullstory.rfc3339(T0),
        "finished": fullstory.rfc3339(T0 + 120),
    }
    assert fullstory.batch_job(fs, T0 + 100, "http://sim/").body["imports"] == 90


async def test_noisy_jobs_are_added_and_described_over_the_control_api(
    sim: Simulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """``rate_changes`` and ``stalls`` are job settings; only a noisy job's JSON has them."""
    body = {"api": EVOCALIZE, "id": "n", "total": 100, "rate": 10, "stalls": [[2, 30]]}
    add = await call(http, sim.url + "_sim/jobs", method="POST", data=json.dumps(body))
    assert (add.status, add.json()["stalls"], "rate_changes" in add.json()) == (
        201,
        [[2.0, 30.0]],
        False,
    )
    clock.advance(20)
    report = await call(http, sim.url + EVO_REPORT + "n", headers=EVO_HEADERS)
    assert report.json()["data"]["completedItems"] == 20
    bad = {"api": EVOCALIZE, "id": "b", "rate_changes": [[5, 1], [1, 1]]}
    refused = await call(http, sim.url + "_sim/jobs", method="POST", data=json.dumps(bad))
    assert refused.status == 400
    assert "rate_changes must be in order" in refused.json()["error"]
    assert sim.find_job(EVOCALIZE, "b") is None
