"""Prometheus-style durations (``1h30m``, ``500ms``), as the config file spells them.

The grammar is that of Prometheus' ``model.ParseDuration`` so a duration copied
from a Prometheus config means the same thing here: integer counts, units from
largest to smallest, each unit at most once, a year being 365 days.
"""

from __future__ import annotations

import json
import re

_MS_PER_UNIT: dict[str, int] = {
    "y": 365 * 24 * 3600 * 1000,
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
_ORDER = tuple(_MS_PER_UNIT)
_UNIT_LIST = ", ".join(_ORDER)
# Prometheus keeps durations in an int64 of nanoseconds-derived milliseconds.
_MAX_MS = 2**63 - 1
_TOKEN = re.compile(r"([0-9]*)([^0-9]*)")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``1h30m``; raise :class:`ValueError` saying what is wrong."""
    try:
        milliseconds = _milliseconds(text)
    except ValueError as exc:
        quoted = json.dumps(text, ensure_ascii=False)
        raise ValueError(f"invalid duration {quoted}: {exc}") from None
    return milliseconds / 1000


def _milliseconds(text: str) -> int:
    """The duration in milliseconds; :class:`ValueError` says why ``text`` is not one."""
    if text == "0":
        # Prometheus accepts a bare zero, the one number that needs no unit.
        return 0
    if text == "":
        raise ValueError("empty string")
    if any(ch.isspace() for ch in text):
        raise ValueError("must not contain spaces")
    if text.startswith("-"):
        raise ValueError("must not be negative")
    total = 0
    previous = -1
    for match in _TOKEN.finditer(text):
        digits, unit = match.groups()
        if not digits and not unit:
            continue
        position = _unit_position(digits, unit, text)
        if position == previous:
            raise ValueError(f"unit {json.dumps(unit)} appears more than once")
        if position < previous:
            raise ValueError(f"units must go from largest to smallest ({_UNIT_LIST})")
        previous = position
        total += int(digits) * _MS_PER_UNIT[unit]
    if total > _MAX_MS:
        raise ValueError("out of range")
    return total


def _unit_position(digits: str, unit: str, text: str) -> int:
    """Where ``unit`` ranks, largest first, after checking one number-and-unit pair."""
    if not digits:
        raise ValueError(f"expected a number before {json.dumps(unit)}")
    if not unit:
        hint = f', e.g. "{digits}s"' if digits == text else ""
        raise ValueError(f"missing unit after {digits}{hint}")
    if unit.startswith("."):
        raise ValueError("fractions are not allowed: use a smaller unit (90m, not 1.5h)")
    if unit not in _MS_PER_UNIT:
        raise ValueError(f"unknown unit {json.dumps(unit)} (use one of {_UNIT_LIST})")
    return _ORDER.index(unit)


def format_duration(seconds: float) -> str:
    """The Prometheus spelling of ``seconds`` (to the millisecond), e.g. ``1h30m``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    if ms < 0:
        return "-" + format_duration(-seconds)
    parts: list[str] = []
    for unit, size in _MS_PER_UNIT.items():
        # Like Prometheus, years and weeks only when exact: 90d reads better than 12w6d.
        if unit in ("y", "w") and ms % size:
            continue
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
