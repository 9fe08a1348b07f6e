"""The fleet's self-metrics: only an exporter with a fleet has them, and they follow it."""

from __future__ import annotations

from exporter.exposition.selfmetrics import SelfMetrics
from tests.conftest import promtool_lint
from tests.exposition.test_selfmetrics_budget import lines


def test_fleet_gauges_appear_with_the_fleet_and_follow_it(promtool: str) -> None:
    """No series without a fleet; then up and members as told, promtool-clean."""
    metrics = SelfMetrics()
    assert lines(metrics, "batchjob_exporter_fleet") == []
    metrics.set_fleet(up=True, members=3)
    assert lines(metrics, "batchjob_exporter_fleet") == [
        "batchjob_exporter_fleet_up 1.0",
        "batchjob_exporter_fleet_members 3.0",
    ]
    metrics.set_fleet(up=False, members=3)
    assert lines(metrics, "batchjob_exporter_fleet_up") == ["batchjob_exporter_fleet_up 0.0"]
    assert promtool_lint(promtool, metrics.render()) == ""
