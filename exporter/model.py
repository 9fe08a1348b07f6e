"""Vendor-neutral shapes shared by the API parsers, the poller and the job table.

A vendor module turns a :class:`Response` into a :class:`Snapshot`; everything
downstream works on snapshots only and never sees a vendor's field names.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass


class Status(enum.Enum):
    """The exporter's own job states: the value set of ``batchjob_status``."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """Whether the job can no longer change, so polling it again is wasted."""
        return self in FINISHED


FINISHED = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.DELETED, Status.NOT_FOUND}
)


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer as the parsers see it: no sockets, no aiohttp types."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json_object(self) -> dict[str, object] | None:
        """The body as a JSON object, or ``None`` if it is anything else; never raises."""
        try:
            value = json.loads(self.body)
        # RecursionError: json.loads gives up on a very deeply nested body ("[[[[...").
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one successful poll says about a job.

    ``None`` means the API did not give the value: the exporter then exposes no
    series for it rather than inventing a zero.  Timestamps are Unix seconds.
    ``info`` holds extra, low-churn descriptive labels (002's name, format, ...).
    """

    status: Status
    vendor_status: str
    total_items: int | None = None
    remaining_items: int | None = None
    completed_items: int | None = None
    successful_items: int | None = None
    error_items: int | None = None
    created: float | None = None
    finished: float | None = None
    info: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorsPage:
    """One page of a job's per-item errors, counted by vendor error code."""

    counts: tuple[tuple[str, int], ...]
    next_token: str | None
    total: int | None = None  # the listing's own count of failures, where the API sends one


class VendorError(Exception):
    """A response that does not match the vendor's documented contract.

    ``reason`` is a short snake_case word used as a metric label value and in
    logs; the message may quote a bounded, sanitised piece of the body.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
