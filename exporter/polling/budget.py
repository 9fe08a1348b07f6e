"""A rate-capped account's due polls, waiting for its request budget, best first.

With ``max_requests_per_second``, the scheduler hands the source's due polls
to its :class:`Budget` instead of starting them, and the budget lets one
through per request slot of the source's gate (its own cap, or its share of a
fleet's).  A poll that started would otherwise meet a taken slot, go back
to wait and try again, dozens of times per request sent when many jobs are
due at once.  An adaptive source's budget lets the poll that buys the most
freshness go first (:meth:`~exporter.polling.plans.SourcePlan.rank`: timed to
an estimated finish, never polled or just failed, else the longest overdue
against its plan); a fixed-interval source's, the one due longest.  A closed
gate (Retry-After, a backoff, refused credentials) lets nothing through: it
always wins over any plan.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator

from exporter.jobs.keys import JobKey
from exporter.polling.gate import SourceGate
from exporter.polling.plans import SourcePlan


class Budget:
    """The scheduler's lane for one gate: a queue by rank, metered by the gate's rate cap.

    The sources of one account share the gate, so they share its lane too: two
    lanes on one gate would each let a poll through per slot, and the one started
    first would always take it.  ``plans`` (the adaptive sources', by name) rank
    their polls; another source's go by due time, which ranks alike (both are times).
    """

    def __init__(self, gate: SourceGate, plans: dict[str, SourcePlan] | None = None) -> None:
        self.gate = gate
        self.plans: dict[str, SourcePlan] = plans or {}
        self._heap: list[tuple[float, int, JobKey]] = []
        self._next = 0.0  # the lane's own spacing: a slot let through is not yet taken

    def __len__(self) -> int:
        """How many due polls wait (some may be stale: the scheduler skips those)."""
        return len(self._heap)

    def offer(self, key: JobKey, seq: int, due: float) -> None:
        """A poll of ``key`` (the scheduler's entry ``seq``) that was due at ``due`` waits."""
        plan = self.plans.get(key[0])
        heapq.heappush(self._heap, (due if plan is None else plan.rank(key[1], due), seq, key))

    def ready_in(self, now: float) -> float:
        """Seconds until a waiting poll may start (``inf`` when none waits)."""
        if not self._heap:
            return math.inf
        return max(self.gate.slot_in(now), self._next - now, 0.0)

    def take(self, now: float, current: Callable[[JobKey, int], bool]) -> tuple[int, JobKey] | None:
        """The best waiting poll still ``current``, using up a slot; ``None`` if none is left."""
        heap = self._heap
        while heap:
            _, seq, key = heapq.heappop(heap)
            if current(key, seq):
                rate = self.gate.max_rate
                self._next = now + 1.0 / rate if rate else now
                return seq, key
        return None

    def waiting(self) -> Iterator[tuple[int, JobKey]]:
        """The entries that wait, in no order (for the scheduler's ``due_in``)."""
        return ((seq, key) for _, seq, key in self._heap)
