"""``adaptive_polling``: per source or in ``global:``, both bounds, every problem at its place."""

from __future__ import annotations

import pytest

from exporter.config import AdaptivePolling
from tests.config.test_config import one_problem, parse, problems, source

BOUNDS = "adaptive_polling: {min_interval: 5s, max_interval: 10m}\n"


def test_without_it_polling_is_fixed() -> None:
    """No adaptive_polling anywhere: the source has none and the global default is none."""
    config = parse(source())
    assert config.global_.adaptive_polling is None
    assert config.sources[0].adaptive_polling is None


def test_a_source_reads_its_own_bounds_as_seconds() -> None:
    """Both durations are read as the config's other durations are."""
    config = parse(source("adaptive_polling:\n  min_interval: 1m30s\n  max_interval: 1h\n"))
    assert config.sources[0].adaptive_polling == AdaptivePolling(90.0, 3600.0)


def test_global_bounds_are_every_sources_default() -> None:
    """Set in global: only, every source gets them."""
    config = parse("global:\n  " + BOUNDS + source())
    assert config.global_.adaptive_polling == AdaptivePolling(5.0, 600.0)
    assert config.sources[0].adaptive_polling == AdaptivePolling(5.0, 600.0)


def test_a_sources_own_bounds_win_over_the_global_ones() -> None:
    """The source's block replaces the global one as a whole."""
    own = "adaptive_polling: {min_interval: 1s, max_interval: 1s}\n"
    config = parse("global:\n  " + BOUNDS + source(own))
    assert config.sources[0].adaptive_polling == AdaptivePolling(1.0, 1.0)


def test_false_turns_it_off_for_one_source() -> None:
    """``adaptive_polling: false`` in a source polls it at fixed intervals despite global:."""
    config = parse("global:\n  " + BOUNDS + source("adaptive_polling: false\n"))
    assert config.sources[0].adaptive_polling is None
    assert config.global_.adaptive_polling == AdaptivePolling(5.0, 600.0)


def test_null_means_the_default() -> None:
    """An empty value is the global default, as for the config's other keys."""
    config = parse("global:\n  " + BOUNDS + source("adaptive_polling:\n"))
    assert config.sources[0].adaptive_polling == AdaptivePolling(5.0, 600.0)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "adaptive_polling: {min_interval: 5s}\n",
            "config.yaml:5:23: sources[0].adaptive_polling.max_interval: "
            "required key is missing (adaptive_polling needs both bounds)",
        ),
        (
            "adaptive_polling: {max_interval: 5s}\n",
            "config.yaml:5:23: sources[0].adaptive_polling.min_interval: "
            "required key is missing (adaptive_polling needs both bounds)",
        ),
        (
            "adaptive_polling: {min_interval: 500ms, max_interval: 1m}\n",
            "config.yaml:5:38: sources[0].adaptive_polling.min_interval: "
            "must be at least 1s, got 500ms",
        ),
        (
            "adaptive_polling: {min_interval: 10m, max_interval: 5m}\n",
            "config.yaml:5:57: sources[0].adaptive_polling.max_interval: "
            "must be at least min_interval (10m), got 5m",
        ),
        (
            "adaptive_polling: {min_interval: 5, max_interval: 1m}\n",
            "config.yaml:5:38: sources[0].adaptive_polling.min_interval: "
            'invalid duration 5: a unit is required: write "5s"',
        ),
        (
            "adaptive_polling: {min_interval: 5s, max_interval: 1m, max_intervals: 2m}\n",
            "config.yaml:5:60: sources[0].adaptive_polling.max_intervals: unknown key "
            '"max_intervals" (did you mean "max_interval"?); allowed keys: max_interval, '
            "min_interval",
        ),
        (
            "adaptive_polling: true\n",
            "config.yaml:5:23: sources[0].adaptive_polling: "
            "write min_interval and max_interval, or false for none",
        ),
        (
            "adaptive_polling: 5s\n",
            "config.yaml:5:23: sources[0].adaptive_polling: expected a mapping, got a string",
        ),
    ],
)
def test_a_bad_block_is_one_problem_at_its_place(block: str, expected: str) -> None:
    """Each mistake names the file, line, column and dotted path."""
    assert one_problem(source(block)) == expected


def test_every_problem_is_reported_at_once() -> None:
    """A bad global block and a bad source block both show, in file order."""
    text = "global:\n  adaptive_polling: {min_interval: 0s, max_interval: 1m}\n" + source(
        "adaptive_polling: {min_interval: 2m, max_interval: 1m}\n"
    )
    assert problems(text) == [
        "config.yaml:2:36: global.adaptive_polling.min_interval: must be at least 1s, got 0s",
        "config.yaml:7:56: sources[0].adaptive_polling.max_interval: "
        "must be at least min_interval (2m), got 1m",
    ]
