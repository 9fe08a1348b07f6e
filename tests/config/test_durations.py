"""Prometheus-style durations: parsing, error messages and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import parse_duration
from exporter.config.durations import format_duration

MAX_MS = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("2w", 14 * 86400.0),
        ("1y", 365 * 86400.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("1m0s", 60.0),
        ("90m", 5400.0),
        ("1y2w3d4h5m6s7ms", 365 * 86400 + 17 * 86400 + 4 * 3600 + 5 * 60 + 6.007),
    ],
)
def test_parses_prometheus_durations(text: str, seconds: float) -> None:
    """Every unit, alone and combined largest first, gives seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty string"),
        ("3x", 'unknown unit "x"'),
        ("5M", 'unknown unit "M"'),
        ("30", 'missing unit after 30, e.g. "30s"'),
        ("1h30", "missing unit after 30"),
        ("1.5h", "fractions are not allowed"),
        ("-5s", "must not be negative"),
        (" 30s", "must not contain spaces"),
        ("30 s", "must not contain spaces"),
        ("s", 'expected a number before "s"'),
        ("+5s", 'expected a number before "+"'),
        ("30s5m", "units must go from largest to smallest"),
        ("5m5m", 'unit "m" appears more than once'),
        ("1ms1s", "units must go from largest to smallest"),
        (f"{MAX_MS}s", "out of range"),
    ],
)
def test_rejects_anything_else_saying_why(text: str, reason: str) -> None:
    """An invalid duration raises ValueError quoting the text and naming the mistake."""
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    message = str(caught.value)
    assert message.startswith(f'invalid duration "{text}": ')
    assert reason in message


def test_message_matches_the_documented_example() -> None:
    """The message for "3x" reads as in the config documentation."""
    with pytest.raises(ValueError, match=r'^invalid duration "3x": unknown unit "x"'):
        parse_duration("3x")


def test_largest_representable_duration_is_accepted() -> None:
    """The Prometheus limit (2**63-1 ms) itself is in range."""
    assert parse_duration(f"{MAX_MS}ms") == MAX_MS / 1000


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.0001, "0s"),
        (0.5, "500ms"),
        (30.0, "30s"),
        (5400.0, "1h30m"),
        (90 * 86400.0, "90d"),
        (14 * 86400.0, "2w"),
        (365 * 86400.0, "1y"),
        (366 * 86400.0, "366d"),
        (3661.5, "1h1m1s500ms"),
        (-30.0, "-30s"),
    ],
)
def test_formats_like_prometheus(seconds: float, text: str) -> None:
    """Seconds are spelt with the largest units, years and weeks only when exact."""
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_format_then_parse_round_trips(milliseconds: int) -> None:
    """Any whole number of milliseconds survives formatting and parsing again."""
    seconds = milliseconds / 1000
    assert parse_duration(format_duration(seconds)) == seconds
