"""The adaptive-polling self-metrics: budget use, stretch, plan lateness; per source only."""

from __future__ import annotations

from exporter.exposition.selfmetrics import SelfMetrics
from tests.conftest import promtool_lint


def lines(metrics: SelfMetrics, prefix: str) -> list[str]:
    """The rendered samples whose name starts with ``prefix``."""
    text = metrics.render().decode()
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_budget_gauges_follow_what_they_are_given() -> None:
    """Used for every rate-capped source, stretch for adaptive ones; others lose theirs."""
    metrics = SelfMetrics()
    metrics.set_sources(frozenset({"a", "b"}))
    metrics.set_budgets({"a": (0.5, 2.0), "b": (0.25, None)})
    assert lines(metrics, "batchjob_exporter_budget_") == [
        'batchjob_exporter_budget_used_ratio{source="a"} 0.5',
        'batchjob_exporter_budget_used_ratio{source="b"} 0.25',
        'batchjob_exporter_budget_stretch_ratio{source="a"} 2.0',
    ]
    metrics.set_budgets({"a": (0.1, None)})  # a fixed again, b without a budget
    assert lines(metrics, "batchjob_exporter_budget_") == [
        'batchjob_exporter_budget_used_ratio{source="a"} 0.1',
    ]


def test_plan_lateness_is_a_histogram_per_source_gone_with_its_source() -> None:
    """Observations land in their buckets; a source a reload removed takes its series along."""
    metrics = SelfMetrics()
    metrics.set_sources(frozenset({"a"}))
    metrics.plan_lateness("a", 0.3)
    metrics.plan_lateness("a", 45.0)
    got = lines(metrics, "batchjob_exporter_poll_plan_lateness_seconds")
    assert 'batchjob_exporter_poll_plan_lateness_seconds_bucket{le="0.5",source="a"} 1.0' in got
    assert 'batchjob_exporter_poll_plan_lateness_seconds_bucket{le="60.0",source="a"} 2.0' in got
    assert 'batchjob_exporter_poll_plan_lateness_seconds_sum{source="a"} 45.3' in got
    metrics.set_sources(frozenset())
    metrics.plan_lateness("a", 1.0)  # a poll still in flight to the removed source
    assert lines(metrics, "batchjob_exporter_poll_plan_lateness_seconds_count") == []


def test_the_new_metrics_are_promtool_clean(promtool: str) -> None:
    """Names, units and help pass promtool's lint."""
    metrics = SelfMetrics()
    metrics.set_sources(frozenset({"a"}))
    metrics.plan_lateness("a", 2.0)
    metrics.set_budgets({"a": (0.5, 1.5)})
    assert promtool_lint(promtool, metrics.render()) == ""
