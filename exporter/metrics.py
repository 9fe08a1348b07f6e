"""The job table and its rendering into the Prometheus text format.

Each job keeps its exposition lines pre-rendered per metric family and
re-renders them only when a poll changes it.  Jobs are grouped in blocks of
:data:`BLOCK_SIZE`, finished jobs apart from unfinished ones; each block
caches, per family, the join of its jobs' lines as a
:class:`~exporter.server.Piece`, dropped only when one of those lines changes
(a finished job never changes again, so its block stays cached until jobs
expire).  A scrape strings the pieces into a :class:`~exporter.server.Page`
and formats one number per running job (its duration); the server streams the
page, or gzips it from each piece's cached deflate.  Series order within a
family follows the blocks, not the order jobs were added.  A job removed from
the table leaves no series behind.  Sample output::

    # HELP batchjob_remaining_items Items the vendor has not processed yet.
    # TYPE batchjob_remaining_items gauge
    batchjob_remaining_items{source="evo",job_id="7fb1c2"} 500
    # HELP batchjob_status Job state as a state-set: exactly one series is 1.
    # TYPE batchjob_status gauge
    batchjob_status{source="evo",job_id="7fb1c2",status="running"} 1
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from exporter.model import Snapshot, Status
from exporter.server import Page, Piece

JobKey = tuple[str, str]  # (source, job_id)
# Jobs per block: small enough that rebuilding a block's changed families is cheap,
# large enough that a page of 50,000 jobs is a few thousand pieces.
BLOCK_SIZE = 256

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
    Piece(f"# HELP {name} {help_}\n# TYPE {name} gauge\n".encode()) for name, help_ in FAMILIES
)
_N = len(FAMILIES)
_STATUSES = tuple(Status)
_WATCHED_HEADER = Piece(
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
    expires_at: float | None = None
    block: _Block | None = field(default=None, repr=False, compare=False)
    slot: int = field(default=0, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """Whether the last good poll found the job finished."""
        return self.snapshot is not None and self.snapshot.status.finished

    @property
    def lines(self) -> list[bytes]:
        """The job's exposition lines, one (possibly empty) run per family."""
        block = self.block
        return [col[self.slot] for col in block.cols] if block else [b""] * _N

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


_EMPTY = Piece(b"")


class _Block:
    """Up to :data:`BLOCK_SIZE` jobs, their lines by family, and each family's cached join.

    Lines are kept column-wise (``cols[family][slot]``) so a join reads one list;
    a job that leaves empties its slot, reused only when the table compacts.
    """

    __slots__ = ("cols", "finished", "live", "pieces", "size")

    def __init__(self, finished: bool) -> None:
        self.finished = finished
        self.cols: list[list[bytes]] = [[] for _ in range(_N)]
        self.size = self.live = 0
        self.pieces: list[Piece | None] = [_EMPTY] * _N  # None: stale, join again

    def add(self, entry: JobEntry, lines: list[bytes]) -> None:
        """Put ``entry`` with ``lines`` in the next slot."""
        entry.block, entry.slot = self, self.size
        self.size += 1
        self.live += 1
        for family, (col, line) in enumerate(zip(self.cols, lines, strict=True)):
            col.append(line)
            if line:
                self.pieces[family] = None

    def drop(self, entry: JobEntry) -> None:
        """Empty ``entry``'s slot; the families it had series in go stale."""
        for family, col in enumerate(self.cols):
            if col[entry.slot]:
                col[entry.slot] = b""
                self.pieces[family] = None
        self.live -= 1
        entry.block = None

    def piece(self, family: int) -> Piece:
        """The family's lines of every job in the block, joined once per change."""
        piece = self.pieces[family]
        if piece is None:
            piece = self.pieces[family] = Piece(b"".join(self.cols[family]))
        return piece


class JobTable:
    """The watched jobs and what their last polls said."""

    def __init__(self, *, retention: float) -> None:
        self._jobs: dict[JobKey, JobEntry] = {}
        self._retention = retention
        self._expiry: list[tuple[float, JobKey]] = []
        self._per_source: dict[str, int] = {}
        self._blocks: dict[bool, list[_Block]] = {True: [], False: []}  # by ``finished``
        # Running jobs' durations, formatted at scrape time: key -> (line prefix, start).
        self._ticking: dict[JobKey, tuple[bytes, float]] = {}
        # Told of every change to a job and every removal (the state store listens).
        self.on_change: Callable[[JobEntry], None] | None = None
        self.on_remove: Callable[[JobKey], None] | None = None

    @property
    def retention(self) -> float:
        """How long a finished job keeps its series; a change applies to jobs finishing later."""
        return self._retention

    @retention.setter
    def retention(self, seconds: float) -> None:
        self._retention = seconds

    def refresh(self, key: JobKey) -> JobEntry:
        """Re-render a job whose fields were set from outside (restored state, new labels)."""
        entry = self._jobs[key]
        if entry.expires_at is not None:
            heapq.heappush(self._expiry, (entry.expires_at, key))
        self._render(entry)
        return entry

    def __contains__(self, key: object) -> bool:
        return key in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[JobEntry]:
        return iter(self._jobs.values())

    def get(self, key: JobKey) -> JobEntry | None:
        """The entry for ``key``, if watched."""
        return self._jobs.get(key)

    def count(self, source: str) -> int:
        """How many jobs of ``source`` are watched, in constant time."""
        return self._per_source.get(source, 0)

    def add(self, key: JobKey, api: str, labels: tuple[tuple[str, str], ...] = ()) -> JobEntry:
        """Start watching a job (no series until its first poll); a watched key starts over."""
        self.remove(key)
        source, job_id = key
        prefix = f'source="{escape(source)}",job_id="{escape(job_id)}"'
        entry = self._jobs[key] = JobEntry(key, api, labels, prefix)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._render(entry)
        return entry

    def remove(self, key: JobKey) -> None:
        """Stop watching a job; its series disappear from the next scrape."""
        entry = self._jobs.pop(key, None)
        if entry is None:
            return
        self._per_source[key[0]] -= 1
        if not self._per_source[key[0]]:
            del self._per_source[key[0]]
        self._ticking.pop(key, None)
        self._unplace(entry)
        if self.on_remove is not None:
            self.on_remove(key)

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
        return bytes(self.page(now))

    def page(self, now: float, tail: bytes = b"") -> Page:
        """What :meth:`render` returns, followed by ``tail``, as a page of cached pieces."""
        for blocks in self._blocks.values():
            if len(blocks) > 2 * (sum(b.live for b in blocks) // BLOCK_SIZE) + 2:
                self._compact(blocks)
        blocks = self._blocks[True] + self._blocks[False]
        parts: list[Piece | bytes] = []
        for family, header in enumerate(_HEADERS):
            pieces: list[Piece | bytes] = [p for b in blocks if (p := b.piece(family)).data]
            if family == F_DURATION and self._ticking:
                ticking = self._ticking.values()
                pieces.append(
                    b"".join([b"%s%.3f\n" % (p, now - t if t < now else 0.0) for p, t in ticking])
                )
            if pieces:
                parts += (header, *pieces)
        if self._per_source:
            parts.append(_WATCHED_HEADER)
            parts += [
                f'batchjob_exporter_watched_jobs{{source="{escape(s)}"}} {n}\n'.encode()
                for s, n in sorted(self._per_source.items())
            ]
        if tail:
            parts.append(tail)
        return Page(parts)

    def _place(self, entry: JobEntry, lines: list[bytes]) -> None:
        blocks = self._blocks[entry.finished]
        if not blocks or blocks[-1].size >= BLOCK_SIZE:
            blocks.append(_Block(entry.finished))
        blocks[-1].add(entry, lines)

    def _unplace(self, entry: JobEntry) -> None:
        block = entry.block
        if block is not None:
            block.drop(entry)
            if not block.live:
                self._blocks[block.finished].remove(block)

    def _compact(self, blocks: list[_Block]) -> None:
        """Regroup jobs into full blocks once departures have left many slots empty."""
        moving = [(e, e.lines) for e in self._jobs.values() if e.block and e.block in blocks]
        blocks.clear()
        for entry, lines in moving:
            entry.block = None
            self._place(entry, lines)

    def _render(self, entry: JobEntry) -> None:
        lines = [b""] * _N
        p = entry.prefix
        snap = entry.snapshot
        self._ticking.pop(entry.key, None)
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
                self._ticking[entry.key] = (f"batchjob_duration_seconds{{{p}}} ".encode(), start)
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
        if self.on_change is not None:
            self.on_change(entry)
        block = entry.block
        if block is None or block.finished != entry.finished:  # new, finished, or revived
            self._unplace(entry)
            self._place(entry, lines)
            return
        for family, (line, col) in enumerate(zip(lines, block.cols, strict=True)):
            if col[entry.slot] != line:
                col[entry.slot] = line
                block.pieces[family] = None
