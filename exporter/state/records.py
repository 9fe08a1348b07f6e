"""What survives a restart for one job, and its JSON form.

:func:`encode` writes a :class:`JobRecord` as one line of JSON; :func:`decode`
reads it back strictly (a wrong type is an error, an int stays an int) so that
``decode(encode(r)) == r``; the origin is its string (``"config"``, ``"api"``,
``"dir"``), and another is no record.  :func:`from_entry` makes the record of a
job table entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeVar

from exporter.jobs.entry import JobView
from exporter.jobs.keys import Labels, Origin
from exporter.model import Snapshot, Status

T = TypeVar("T")

_ENCODER = json.JSONEncoder(separators=(",", ":"))  # ASCII: a lone surrogate survives too
_INTS = ("total_items", "remaining_items", "completed_items", "successful_items", "error_items")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What survives a restart for one watched job."""

    source: str
    job_id: str
    api: str
    origin: Origin  # a string in JSON: "config" | "api" | "dir"
    labels: Labels  # the job's own labels, without origin
    first_seen: float | None
    seen_finished: float | None
    snapshot: Snapshot | None
    errors_by_code: tuple[tuple[str, int], ...] | None
    poll_success: bool | None
    last_success: float | None
    expires_at: float | None  # wall time when a finished job's series go
    # Seen finished, errors listing not read yet: the listing resumes without the job request.
    pending_finish: Snapshot | None = None
    pending_finish_at: float | None = None


_RECORD_FIELDS = tuple(f.name for f in fields(JobRecord))
_SNAPSHOT_FIELDS = tuple(f.name for f in fields(Snapshot))
_ORIGINS = tuple(o.value for o in Origin)
_SNAPSHOTS = ("snapshot", "pending_finish")


def from_entry(entry: JobView) -> JobRecord:
    """The record of a job table entry."""
    return JobRecord(
        *entry.key, entry.api, entry.origin, entry.labels, entry.first_seen, entry.seen_finished,
        entry.snapshot, entry.errors_by_code, entry.poll_success, entry.last_success,
        entry.expires_at, entry.pending_finish, entry.pending_finish_at,
    )  # fmt: skip


def encode(record: JobRecord) -> str:
    """``record`` as one line of JSON."""
    doc = {name: getattr(record, name) for name in _RECORD_FIELDS}
    for name in _SNAPSHOTS:
        if (snap := doc[name]) is not None:
            doc[name] = {field: getattr(snap, field) for field in _SNAPSHOT_FIELDS}
            doc[name]["status"] = snap.status.value
    return _ENCODER.encode(doc)


def _check(value: object, kind: type[T], what: str) -> T:
    # bool is an int to Python, but not to a record; an int stays an int where floats go.
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise TypeError(f"expected {what}, got {type(value).__name__}")


def _str(value: object) -> str:
    return _check(value, str, "a string")


def _int(value: object) -> int:
    return _check(value, int, "an integer")


def _float(value: object) -> float:
    return value if isinstance(value, float) else _int(value)


def _bool(value: object) -> bool:
    return _check(value, bool, "true or false")


def _origin(value: object) -> Origin:
    text = _str(value)
    if text not in _ORIGINS:
        raise TypeError(f"expected an origin ({', '.join(_ORIGINS)}), got {text!r:.40}")
    return Origin(text)


def _opt(value: object, check: Callable[[object], T]) -> T | None:
    return None if value is None else check(value)


def _pairs(value: object, second: Callable[[object], T]) -> tuple[tuple[str, T], ...]:
    out = []
    for pair in _check(value, list, "a list of pairs"):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise TypeError(f"expected a pair, got {pair!r:.40}")
        out.append((_str(pair[0]), second(pair[1])))
    return tuple(out)


def _snapshot(value: object) -> Snapshot:
    doc = _check(value, dict, "a snapshot object")
    ints = {name: _opt(doc.get(name), _int) for name in _INTS}
    return Snapshot(
        status=Status(doc["status"]),
        vendor_status=_str(doc["vendor_status"]),
        created=_opt(doc.get("created"), _float),
        finished=_opt(doc.get("finished"), _float),
        info=_pairs(doc.get("info", []), _str),
        **ints,
    )


def decode(text: str) -> JobRecord:
    """The record :func:`encode` wrote (fields that may be ``None`` may lack); else ValueError."""
    try:
        doc = _check(json.loads(text), dict, "an object")
        return JobRecord(
            source=_str(doc["source"]),
            job_id=_str(doc["job_id"]),
            api=_str(doc["api"]),
            origin=_origin(doc["origin"]),
            labels=_pairs(doc.get("labels", []), _str),
            first_seen=_opt(doc.get("first_seen"), _float),
            seen_finished=_opt(doc.get("seen_finished"), _float),
            snapshot=_opt(doc.get("snapshot"), _snapshot),
            errors_by_code=_opt(doc.get("errors_by_code"), lambda v: _pairs(v, _int)),
            poll_success=_opt(doc.get("poll_success"), _bool),
            last_success=_opt(doc.get("last_success"), _float),
            expires_at=_opt(doc.get("expires_at"), _float),
            pending_finish=_opt(doc.get("pending_finish"), _snapshot),
            pending_finish_at=_opt(doc.get("pending_finish_at"), _float),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a job record: {exc!r}") from exc
