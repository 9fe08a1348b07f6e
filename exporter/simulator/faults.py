"""Injected failures: what a :class:`Fault` is and which request it hits next.

A fault is set on a *target*: an API, another endpoint a vendor has (a token
endpoint), or ``*`` for every API.  The simulator passes the targets its
vendors declare to :class:`FaultTable`.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

FAULT_KINDS = (
    "rate_limit",
    "unavailable",
    "server_error",
    "html",
    "truncated_json",
    "huge",
    "slow",
    "not_found",
    "unauthorized",
)
ALL_TARGET = "*"
DEFAULT_HUGE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure to answer instead of (or, for ``slow``, before) the normal answer.

    ``retry_after`` is sent verbatim as ``Retry-After`` by ``rate_limit`` and
    ``unavailable``; ``count`` is how many requests the fault hits before it
    clears itself (``None``: until cleared); ``delay`` is the ``slow`` wait in
    seconds; ``size`` is the ``huge`` body length in bytes (0: 1 MiB);
    ``every`` makes it hit only every so many requests (7: one answer in seven,
    a flaky vendor, deterministically).
    """

    kind: str
    retry_after: str | None = None
    count: int | None = None
    delay: float = 0.0
    size: int = 0
    every: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, got {self.kind!r}")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, str)
            or not self.retry_after.isprintable()
            or not self.retry_after.isascii()
        ):
            raise ValueError(f"retry_after must be printable ASCII text, got {self.retry_after!r}")
        if self.count is not None and (
            not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1
        ):
            raise ValueError(f"count must be a positive integer or null, got {self.count!r}")
        if (
            not isinstance(self.delay, int | float)
            or isinstance(self.delay, bool)
            or not math.isfinite(self.delay)
            or self.delay < 0
        ):
            raise ValueError(f"delay must be a finite non-negative number, got {self.delay!r}")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError(f"size must be a non-negative integer, got {self.size!r}")
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f"every must be a positive integer, got {self.every!r}")

    @property
    def body_size(self) -> int:
        """Return the ``huge`` body length in bytes."""
        return self.size or DEFAULT_HUGE_SIZE


def check_target(target: str, targets: Collection[str]) -> str:
    """Return ``target`` if it is one of ``targets``, else raise ``ValueError``."""
    if target not in targets:
        raise ValueError(f"fault target must be one of {', '.join(targets)}, got {target!r}")
    return target


class FaultTable:
    """The faults in force, per target, with the remaining count of each.

    ``targets`` are the ones faults may be set on (``*`` included);
    ``spared`` are the endpoints ``*`` does not hit, such as token endpoints.
    """

    def __init__(self, targets: Collection[str], spared: Collection[str] = ()) -> None:
        self.targets = tuple(targets)
        self._spared = frozenset(spared)
        self._faults: dict[str, tuple[Fault, int | None]] = {}
        self._passed: dict[str, int] = {}  # requests since the last hit, for ``every``

    def check(self, target: str) -> str:
        """Return ``target`` if faults can be set on it, else raise ``ValueError``."""
        return check_target(target, self.targets)

    def set(self, target: str, fault: Fault) -> None:
        """Install ``fault`` on ``target``, replacing any fault already there."""
        self._faults[self.check(target)] = (fault, fault.count)
        self._passed.pop(target, None)

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()
        self._passed.clear()

    def take(self, target: str) -> Fault | None:
        """Return the fault for the next request to ``target``, using up one of its count.

        A fault on the target itself wins over one on ``*``; ``*`` never hits
        a spared target.
        """
        keys = (target,) if target in self._spared else (target, ALL_TARGET)
        for key in keys:
            entry = self._faults.get(key)
            if entry is None:
                continue
            fault, remaining = entry
            if fault.every > 1:
                passed = self._passed.get(key, 0) + 1
                self._passed[key] = passed % fault.every
                if passed < fault.every:
                    continue  # spared this time: a flaky vendor answers most requests
            if remaining is None:
                return fault
            if remaining <= 1:
                del self._faults[key]
            else:
                self._faults[key] = (fault, remaining - 1)
            return fault
        return None
