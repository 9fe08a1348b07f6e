"""How a poll ends when it does not end in a snapshot (shared by the poller's parts)."""

from __future__ import annotations

__all__ = ["Deferred", "PollFailed"]


class PollFailed(Exception):
    """The poll failed; the job keeps its last good values and waits ``retry_in``."""

    def __init__(self, reason: str, retry_in: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_in = retry_in


class Deferred(Exception):
    """The source's gate is closed: no request was sent, try again in ``delay``."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay
