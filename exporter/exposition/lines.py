"""The exposition lines of one job: the metric families and escaping.

:func:`job_lines` renders everything the table knows about a job into one run
of lines per family (empty where the job has no series), except the duration
of a running job, which changes with every scrape: it is returned as a line
prefix and a start time for :class:`~exporter.exposition.jobseries.JobSeries`
to format at scrape time.  ``batchjob_info`` carries ``api``, ``vendor_status``,
``origin``, the job's own labels, then the vendor's descriptive ones.
"""

from __future__ import annotations

from exporter.exposition.page import Piece
from exporter.jobs.entry import JobView
from exporter.jobs.keys import JobKey
from exporter.model import Status

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


def job_prefix(key: JobKey) -> str:
    """The labels every series of the job starts with: ``source="evo",job_id="7fb1c2"``."""
    source, job_id = key
    return f'source="{escape(source)}",job_id="{escape(job_id)}"'


def job_lines(entry: JobView, prefix: str) -> tuple[list[bytes], tuple[bytes, float] | None]:
    """The job's lines by family, and (line prefix, start) if its duration ticks.

    ``prefix`` is the job's :func:`job_prefix`, made once per job rather than per change.
    """
    lines = [b""] * N_FAMILIES
    p = prefix
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
        ("origin", entry.origin),
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
