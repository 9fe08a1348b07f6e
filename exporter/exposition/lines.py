"""The exposition lines of one job: the metric families, escaping, and a job's entry.

:func:`job_lines` renders everything the table knows about a job into one run
of lines per family (empty where the job has no series), except the duration
of a running job, which changes with every scrape: it is returned as a line
prefix and a start time for the table to format at scrape time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.exposition.blocks import Block
from exporter.exposition.page import Piece
from exporter.jobs.keys import JobKey
from exporter.model import Snapshot, Status

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
HEADERS = tuple(
    Piece(f"# HELP {name} {help_}\n# TYPE {name} gauge\n".encode()) for name, help_ in FAMILIES
)
N_FAMILIES = len(FAMILIES)
_STATUSES = tuple(Status)
WATCHED_HEADER = Piece(
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
    """Everything the table knows about one job; its lines live in its block."""

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
    failures: int = 0  # failed polls in a row, for the job's backoff
    expires_at: float | None = None
    block: Block | None = field(default=None, repr=False, compare=False)
    slot: int = field(default=0, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the last good poll found the job finished."""
        return self.snapshot is not None and self.snapshot.status.finished

    @property
    def lines(self) -> list[bytes]:
        """The job's exposition lines, one (possibly empty) run per family."""
        block = self.block
        return block.lines(self.slot) if block else [b""] * N_FAMILIES

    def duration_bounds(self) -> tuple[float | None, float | None]:
        """Start and end of the job's duration; the end is ``None`` while it runs."""
        snap = self.snapshot
        if snap is None:
            return None, None
        start = snap.created
        if start is None:
            if snap.status.finished and self.seen_finished == self.first_seen:
                # Finished (or gone) at the first look: how long it ran is unknown, not 0.
                return None, None
            start = self.first_seen
        end = None
        if snap.status.finished:
            end = snap.finished if snap.finished is not None else self.seen_finished
        return start, end


def job_lines(entry: JobEntry) -> tuple[list[bytes], tuple[bytes, float] | None]:
    """The job's lines by family, and (line prefix, start) if its duration ticks."""
    lines = [b""] * N_FAMILIES
    p = entry.prefix
    snap = entry.snapshot
    ticking = None
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
        elif start is not None:
            ticking = f"batchjob_duration_seconds{{{p}}} ".encode(), start
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
    return lines, ticking
