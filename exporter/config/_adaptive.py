"""``adaptive_polling``: the two bounds of a source's planned polls, or ``false`` for none.

It may stand in ``global:`` as every source's default and in a source, which
wins; a source's ``adaptive_polling: false`` polls at fixed intervals even when
``global:`` sets it.
"""

from __future__ import annotations

from typing import Literal

from yaml.nodes import Node, ScalarNode

from exporter.config._nodes import BOOL, Walker
from exporter.config.durations import format_duration
from exporter.config.model import AdaptivePolling

_KEYS = ("min_interval", "max_interval")
# A plan may poll one job no more often than this: a vendor's budget is per second.
MIN_INTERVAL = 1.0

# What ``adaptive_polling`` says: bounds, ``False`` (explicitly off), or ``None`` (a problem).
Adaptive = AdaptivePolling | Literal[False] | None


def build_adaptive(walker: Walker, node: Node, path: str) -> Adaptive:
    """The bounds at ``node``; every problem with them is recorded, each at its place."""
    if isinstance(node, ScalarNode) and node.tag == BOOL:
        if walker.boolean(node, path) is False:
            return False
        walker.problem(node, path, "write min_interval and max_interval, or false for none")
        return None
    fields = walker.mapping(node, path, _KEYS)
    if fields is None:
        return None
    why = "adaptive_polling needs both bounds"
    low, high = (
        walker.required(fields, key, lambda n, p: walker.duration(n, p, minimum=MIN_INTERVAL), why)
        for key in _KEYS
    )
    if low is None or high is None:
        return None
    if low > high:
        least, got = format_duration(low), format_duration(high)
        message = f"must be at least min_interval ({least}), got {got}"
        walker.problem(fields.entries["max_interval"][1], fields.at("max_interval"), message)
        return None
    return AdaptivePolling(min_interval=low, max_interval=high)


def resolve(own: Adaptive, default: AdaptivePolling | None) -> AdaptivePolling | None:
    """A source's bounds: its own, none when it says ``false``, else the global default."""
    if own is False:
        return None
    return own if own is not None else default
