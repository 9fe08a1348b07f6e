"""Retry-After parsing, backoff with jitter, and the per-source gate."""

from __future__ import annotations

import random

import pytest

from exporter.polling.gate import (
    MAX_RETRY_AFTER,
    Backoff,
    GateState,
    SourceGate,
    parse_retry_after,
)

WALL = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("99999999", MAX_RETRY_AFTER),
        ("Tue, 14 Nov 2023 22:15:00 GMT", 100.0),  # WALL + 100 s
        ("Tue, 14 Nov 2023 22:11:20 GMT", 0.0),  # already past
        (None, None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Tue, 14 Nov 2023 22:14:20", None),  # no zone: not an HTTP-date
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Both Retry-After forms are read; anything else means 'use your own backoff'."""
    assert parse_retry_after(value, WALL) == expected


def test_backoff_doubles_up_to_the_cap_with_jitter_below_the_raw_value() -> None:
    """Each failure doubles the wait, jittered into [raw/2, raw), never past the cap."""
    backoff = Backoff(base=2.0, cap=60.0)
    seeded = random.Random(1)
    firsts = [backoff.delay(failures, seeded) for failures in (1, 2, 3, 6, 100)]
    assert firsts == pytest.approx(
        [
            1.134364244112401,
            3.6948674738744653,
            7.055098475906457,
            37.652070772182654,
            44.863052612758224,
        ]
    )
    rng = random.Random(1)
    for failures, raw in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (100, 60.0)]:
        for _ in range(50):
            assert raw / 2 <= backoff.delay(failures, rng) < raw


def test_gate_closes_for_exactly_the_retry_after_window() -> None:
    """After a Retry-After the gate refuses every request until the window has passed."""
    gate = SourceGate(max_rate=None, backoff=Backoff(), rng=random.Random(0))
    assert gate.acquire(100.0) == 0.0
    assert gate.retry_after(100.0, 30.0) == 30.0
    assert gate.acquire(100.0) == pytest.approx(30.0)
    assert gate.acquire(129.999) == pytest.approx(0.001)
    assert gate.acquire(130.0) == 0.0


def test_a_shorter_answer_never_shortens_an_open_window() -> None:
    """A late, shorter Retry-After from a request already in flight keeps the longer window."""
    gate = SourceGate(max_rate=None, backoff=Backoff(), rng=random.Random(0))
    gate.retry_after(100.0, 60.0)
    gate.retry_after(101.0, 1.0)
    assert gate.closed_for(102.0) == pytest.approx(58.0)


def test_failures_back_off_exponentially_and_success_resets() -> None:
    """Server errors without Retry-After grow the window; a good answer starts over."""
    gate = SourceGate(max_rate=None, backoff=Backoff(base=1.0, cap=300.0), rng=random.Random(3))
    windows = [gate.failure(0.0) for _ in range(5)]
    assert windows == pytest.approx(
        [
            0.6189823135459457,
            1.5442292252959517,
            2.7399103330961587,
            6.415680154384778,
            13.005762432864433,
        ]
    )
    assert all(0.5 * 2**i <= w < 2**i for i, w in enumerate(windows))
    assert gate.closed_for(0.0) == pytest.approx(13.005762432864433)
    gate.success()
    assert gate.failures == 0
    assert gate.failure(1000.0) == pytest.approx(0.5327644296199066)
    assert gate.failures == 1


def test_rate_cap_spaces_requests() -> None:
    """max_rate=2 lets one request through each half second."""
    gate = SourceGate(max_rate=2.0, backoff=Backoff(), rng=random.Random(0))
    assert gate.acquire(10.0) == 0.0
    assert gate.acquire(10.1) == pytest.approx(0.4)
    assert gate.acquire(10.5) == 0.0


def test_hold_and_spread() -> None:
    """hold() closes the gate; spread() only ever adds to the wait."""
    gate = SourceGate(max_rate=None, backoff=Backoff(), rng=random.Random(0))
    gate.hold(0.0, 300.0)
    assert gate.closed_for(0.0) == 300.0
    gate.hold(0.0, 100.0)  # a shorter hold does not shorten the window
    assert gate.closed_for(0.0) == 300.0
    spreads = [gate.spread(300.0, 30.0) for _ in range(3)]
    assert spreads == pytest.approx([325.33265554575144, 322.7386320882091, 312.61714742492535])
    for _ in range(20):
        assert 300.0 <= gate.spread(300.0, 30.0) < 330.0


def test_state_of_an_open_gate_names_no_reason_and_the_rate_cap() -> None:
    """An open gate reports 0 s, no reason, and the cap in requests per second."""
    gate = SourceGate(max_rate=4.0, backoff=Backoff(), rng=random.Random(0))
    assert gate.state(10.0) == GateState(closed_for=0.0, reason=None, max_rate=4.0)
    gate.set_rate(None)
    assert gate.state(10.0) == GateState(closed_for=0.0, reason=None, max_rate=None)


def test_state_names_retry_after_backoff_and_auth() -> None:
    """Retry-After with seconds, a backoff and a credentials hold each say why."""
    gate = SourceGate(max_rate=None, backoff=Backoff(base=1.0, cap=1.0), rng=random.Random(0))
    gate.retry_after(0.0, 30.0)
    assert gate.state(10.0) == GateState(closed_for=20.0, reason="retry-after", max_rate=None)
    assert gate.state(30.0) == GateState(closed_for=0.0, reason=None, max_rate=None)
    window = gate.retry_after(100.0, None)
    assert gate.state(100.0).closed_for == pytest.approx(window)
    assert gate.state(100.0).reason == "backoff"
    gate.failure(200.0)
    assert gate.state(200.0).reason == "backoff"
    gate.hold(300.0, 60.0)
    assert gate.state(300.0) == GateState(closed_for=60.0, reason="auth", max_rate=None)


def test_state_reason_is_that_of_the_window_that_closes_last() -> None:
    """A window ending inside a longer one keeps its reason; one ending later takes over."""
    gate = SourceGate(max_rate=2.0, backoff=Backoff(base=1.0, cap=1.0), rng=random.Random(0))
    gate.hold(0.0, 300.0)
    gate.retry_after(0.0, 30.0)
    assert gate.state(0.0) == GateState(closed_for=300.0, reason="auth", max_rate=2.0)
    gate.retry_after(10.0, 600.0)
    assert gate.state(10.0) == GateState(closed_for=600.0, reason="retry-after", max_rate=2.0)
    gate.failure(20.0)  # a backoff of under a second ends long before the Retry-After
    assert gate.state(20.0) == GateState(closed_for=590.0, reason="retry-after", max_rate=2.0)


def test_slot_in_peeks_without_taking_the_slot() -> None:
    """slot_in says when acquire would let a request through, and takes nothing."""
    gate = SourceGate(max_rate=2.0, backoff=Backoff(), rng=random.Random(0))
    assert gate.slot_in(10.0) == 0.0
    assert gate.acquire(10.0) == 0.0
    assert gate.slot_in(10.1) == pytest.approx(0.4)
    assert gate.slot_in(10.1) == pytest.approx(0.4)
    gate.retry_after(10.1, 30.0)
    assert gate.slot_in(10.1) == pytest.approx(30.0)


def test_sent_last_minute_counts_the_requests_let_through() -> None:
    """Requests acquire let through, over the last 60 whole seconds; refusals do not count."""
    gate = SourceGate(max_rate=None, backoff=Backoff(), rng=random.Random(0))
    for at in (0.0, 0.5, 1.2, 59.9):
        gate.acquire(at)
    gate.hold(60.0, 10.0)
    gate.acquire(60.5)  # refused: not sent
    assert gate.sent_last_minute(59.9) == 4
    assert gate.sent_last_minute(60.0) == 2  # second 0 has left the window
    assert gate.sent_last_minute(61.0) == 1
    assert gate.sent_last_minute(500.0) == 0
    gate.acquire(120.0)  # the same slot of the ring as second 0 and 60: counted afresh
    assert gate.sent_last_minute(120.0) == 1


class FakeShared:
    """A fleet's manners for one account, as the gate asks for them."""

    def __init__(self, budget: float | None = None) -> None:
        self.window: tuple[float, str | None] = (0.0, None)
        self.told: list[tuple[float, str]] = []
        self.budget = budget  # seconds to wait for a slot; None: no shared budget
        self.taken = 0

    def closed(self) -> tuple[float, str | None]:
        """The fleet's window."""
        return self.window

    def close(self, seconds: float, reason: str) -> None:
        """Record what the gate told."""
        self.told.append((seconds, reason))

    def acquire(self, now: float) -> float | None:
        """A slot of the shared budget."""
        if self.budget == 0.0:
            self.taken += 1
        return self.budget

    def ready_in(self, now: float) -> float | None:
        """When a slot would come."""
        return self.budget


def test_a_fleet_window_closes_the_gate_and_names_its_reason() -> None:
    """Another exporter's Retry-After closes this gate too; the state says so."""
    gate = SourceGate(max_rate=None, backoff=Backoff(), rng=random.Random(0))
    shared = FakeShared()
    gate.shared = shared
    shared.window = (12.0, "retry-after")
    assert gate.acquire(0.0) == 12.0
    assert gate.state(0.0) == GateState(closed_for=12.0, reason="retry-after", max_rate=None)
    shared.window = (0.0, None)
    assert gate.acquire(0.0) == 0.0


def test_the_gate_tells_the_fleet_of_retry_after_and_holds_but_not_backoff() -> None:
    """Retry-After and credential holds are the account's; a backoff stays this exporter's."""
    gate = SourceGate(max_rate=None, backoff=Backoff(), rng=random.Random(0))
    shared = FakeShared()
    gate.shared = shared
    gate.retry_after(0.0, 30.0)
    gate.failure(1.0)
    gate.hold(2.0, 300.0)
    assert shared.told == [(30.0, "retry-after"), (300.0, "auth")]


def test_a_fleet_budget_stands_in_for_the_local_rate_cap() -> None:
    """With a shared budget the gate spaces nothing itself; the fleet's wait is the wait."""
    gate = SourceGate(max_rate=1.0, backoff=Backoff(), rng=random.Random(0))
    shared = FakeShared(budget=0.0)
    gate.shared = shared
    assert [gate.acquire(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert shared.taken == 3
    assert gate.sent_last_minute(0.0) == 3
    shared.budget = 0.4
    assert gate.acquire(0.0) == 0.4
    assert gate.slot_in(0.0) == 0.4
    gate.shared = FakeShared(budget=None)  # no shared budget for this account: the local cap
    assert gate.acquire(0.0) == 0.0
    assert gate.acquire(0.0) == 1.0
