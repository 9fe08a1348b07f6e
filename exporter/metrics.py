"""The job table and its rendering into the Prometheus text format.

Each job keeps its exposition lines pre-rendered per metric family and
re-renders them only when a poll changes it; a scrape joins bytes and formats
one number per running job (its duration).  A job removed from the table
leaves no series behind.  Sample output::

    # HELP batchjob_remaining_items Items the vendor has not processed yet.
    # TYPE batchjob_remaining_items gauge
    batchjob_remaining_items{source="evo",job_id="7fb1c2"} 500
    # HELP batchjob_status Job state as a state-set: exactly one series is 1.
    # TYPE batchjob_status gauge
    batchjob_status{source="evo",job_id="7fb1c2",status="running"} 1
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from exporter.model import Snapshot, Status

JobKey = tuple[str, str]  # (source, job_id)

FAMILIES: tuple[tuple[str, str], ...] = (
    ("batchjob_total_items", "Items in the job, as the vendor reports them."),
    ("batchjob_remaining_items", "Items the vendor has not processed yet."),
    ("batchjob_completed_items", "Items the vendor has processed, successfully or not."),
    ("batchjob_successful_items", "Items processed successfully."),
    ("batchjob_error_items", "Items that failed."),
    (
        "batchjob_errors_by_code",
        "Failed items by the vendor's error code, from its errors endpoint.",
    ),
    ("batchjob_status", "Job state as a state-set: exactly one series is 1."),
    ("batchjob_duration_seconds", "Finished minus created, or now minus created while running."),
    ("batchjob_created_timestamp_seconds", "When the vendor accepted the job (Unix time)."),
    ("batchjob_finished_timestamp_seconds", "When the vendor finished the job (Unix time)."),
    ("batchjob_info", "Descriptive labels of a job; the value is always 1."),
    ("batchjob_poll_success", "Whether the last poll of the job succeeded (1) or failed (0)."),
    ("batchjob_last_poll_success_timestamp_seconds", "When the job was last polled successfully."),
)
(
    F_TOTAL, F_REMAINING, F_COMPLETED, F_SUCCESSFUL, F_ERROR, F_BY_CODE, F_STATUS,
    F_DURATION, F_CREATED, F_FINISHED, F_INFO, F_POLL, F_LAST_OK,
) = range(len(FAMILIES))  # fmt: skip
_HEADERS = tuple(
    f"# HELP {name} {help_}\n# TYPE {name} gauge\n".encode() for name, help_ in FAMILIES
)
_NAMES = tuple(name.encode() for name, _ in FAMILIES)
_STATUSES = tuple(Status)
_WATCHED_HEADER = (
    b"# HELP batchjob_exporter_watched_jobs Jobs with series on this page, by source.\n"
    b"# TYPE batchjob_exporter_watched_jobs gauge\n"
)


def escape(value: str) -> str:
    """A label value escaped for the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def label_pairs(pairs: tuple[tuple[str, str], ...]) -> str:
    """``a="1",b="2"`` from name/value pairs (names are validated by the config)."""
    return ",".join(f'{name}="{escape(value)}"' for name, value in pairs)


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


@dataclass(slots=True)
class JobEntry:
    """Everything the table knows about one job, and its rendered lines."""

    key: JobKey
    api: str
    labels: tuple[tuple[str, str], ...]
    prefix: str  # 'source="evo",job_id="7fb1c2"'
    snapshot: Snapshot | None = None
    first_seen: float | None = None
    seen_finished: float | None = None
    errors_by_code: tuple[tuple[str, int], ...] | None = None
    poll_success: bool | None = None
    last_success: float | None = None
    not_found_streak: int = 0
    expires_at: float | None = None
    lines: list[bytes] = field(default_factory=lambda: [b""] * len(FAMILIES))

    @property
    def finished(self) -> bool:
        """Whether the last good poll found the job finished."""
        return self.snapshot is not None and self.snapshot.status.finished

    def duration_bounds(self) -> tuple[float | None, float | None]:
        """Start and end of the job's duration; the end is ``None`` while it runs."""
        snap = self.snapshot
        if snap is None:
            return None, None
        start = snap.created if snap.created is not None else self.first_seen
        end = None
        if snap.status.finished:
            end = snap.finished if snap.finished is not None else self.seen_finished
        return start, end


class JobTable:
    """The watched jobs and what their last polls said."""

    def __init__(self, *, retention: float) -> None:
        self._jobs: dict[JobKey, JobEntry] = {}
        self._retention = retention
        self._expiry: list[tuple[float, JobKey]] = []
        self._per_source: dict[str, int] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[JobEntry]:
        return iter(self._jobs.values())

    def get(self, key: JobKey) -> JobEntry | None:
        """The entry for ``key``, if watched."""
        return self._jobs.get(key)

    def add(self, key: JobKey, api: str, labels: tuple[tuple[str, str], ...] = ()) -> JobEntry:
        """Start watching a job (no series until its first poll)."""
        source, job_id = key
        prefix = f'source="{escape(source)}",job_id="{escape(job_id)}"'
        entry = self._jobs[key] = JobEntry(key, api, labels, prefix)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._render(entry)
        return entry

    def remove(self, key: JobKey) -> None:
        """Stop watching a job; its series disappear from the next scrape."""
        if self._jobs.pop(key, None) is not None:
            self._per_source[key[0]] -= 1
            if not self._per_source[key[0]]:
                del self._per_source[key[0]]

    def record_success(self, key: JobKey, snap: Snapshot, now: float) -> JobEntry:
        """Store a good poll's snapshot taken at wall time ``now``."""
        entry = self._jobs[key]
        if entry.first_seen is None:
            entry.first_seen = now
        if snap.status.finished:
            if entry.seen_finished is None:
                entry.seen_finished = now
            if entry.expires_at is None:
                entry.expires_at = now + self._retention
                heapq.heappush(self._expiry, (entry.expires_at, key))
        entry.snapshot = snap
        entry.poll_success = True
        entry.last_success = now
        entry.not_found_streak = 0
        self._render(entry)
        return entry

    def record_errors(self, key: JobKey, counts: tuple[tuple[str, int], ...]) -> None:
        """Store a job's failed items by error code (read once it finished)."""
        entry = self._jobs[key]
        entry.errors_by_code = counts
        self._render(entry)

    def record_failure(self, key: JobKey) -> None:
        """A poll failed: last good values stay, ``batchjob_poll_success`` drops to 0."""
        entry = self._jobs[key]
        if entry.poll_success is not False:
            entry.poll_success = False
            self._render(entry)

    def expire(self, now: float) -> list[JobKey]:
        """Drop finished jobs whose retention has passed; returns their keys."""
        gone: list[JobKey] = []
        while self._expiry and self._expiry[0][0] <= now:
            at, key = heapq.heappop(self._expiry)
            entry = self._jobs.get(key)
            if entry is not None and entry.expires_at == at:
                self.remove(key)
                gone.append(key)
        return gone

    def render(self, now: float) -> bytes:
        """The job families and ``batchjob_exporter_watched_jobs`` as exposition bytes."""
        entries = self._jobs.values()
        out: list[bytes] = []
        for family, header in enumerate(_HEADERS):
            if family == F_DURATION:
                chunk = b"".join(self._duration_lines(now))
            else:
                chunk = b"".join([e.lines[family] for e in entries])
            if chunk:
                out += (header, chunk)
        if self._per_source:
            out.append(_WATCHED_HEADER)
            out += [
                f'batchjob_exporter_watched_jobs{{source="{escape(s)}"}} {n}\n'.encode()
                for s, n in sorted(self._per_source.items())
            ]
        return b"".join(out)

    def _duration_lines(self, now: float) -> Iterator[bytes]:
        name = _NAMES[F_DURATION]
        for entry in self._jobs.values():
            cached = entry.lines[F_DURATION]
            if cached:
                yield cached
            elif entry.snapshot is not None:
                start, _ = entry.duration_bounds()
                if start is not None:
                    value = max(now - start, 0.0)
                    yield b"%s{%s} %.3f\n" % (name, entry.prefix.encode(), value)

    def _render(self, entry: JobEntry) -> None:
        lines = entry.lines
        p = entry.prefix
        snap = entry.snapshot
        for i in range(len(FAMILIES)):
            lines[i] = b""
        if snap is not None:
            for family, value in (
                (F_TOTAL, snap.total_items),
                (F_REMAINING, snap.remaining_items),
                (F_COMPLETED, snap.completed_items),
                (F_SUCCESSFUL, snap.successful_items),
                (F_ERROR, snap.error_items),
                (F_CREATED, snap.created),
                (F_FINISHED, snap.finished),
            ):
                if value is not None:
                    lines[family] = f"{FAMILIES[family][0]}{{{p}}} {_num(value)}\n".encode()
            lines[F_STATUS] = "".join(
                f'batchjob_status{{{p},status="{s.value}"}} {int(s is snap.status)}\n'
                for s in _STATUSES
            ).encode()
            start, end = entry.duration_bounds()
            if start is not None and end is not None:
                lines[F_DURATION] = (
                    f"batchjob_duration_seconds{{{p}}} {max(end - start, 0.0):.3f}\n".encode()
                )
        if entry.errors_by_code is not None:
            lines[F_BY_CODE] = "".join(
                f'batchjob_errors_by_code{{{p},code="{escape(code)}"}} {n}\n'
                for code, n in entry.errors_by_code
            ).encode()
        info = (
            ("api", entry.api),
            ("vendor_status", snap.vendor_status if snap else ""),
            *entry.labels,
            *(snap.info if snap else ()),
        )
        lines[F_INFO] = f"batchjob_info{{{p},{label_pairs(info)}}} 1\n".encode()
        if entry.poll_success is not None:
            lines[F_POLL] = f"batchjob_poll_success{{{p}}} {int(entry.poll_success)}\n".encode()
        if entry.last_success is not None:
            last = _num(entry.last_success)
            lines[F_LAST_OK] = f"{FAMILIES[F_LAST_OK][0]}{{{p}}} {last}\n".encode()
