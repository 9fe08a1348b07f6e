"""One scan of a watch dir, off the event loop: which job files are there, and their jobs.

:func:`collect` lists the directory, stats every job file, and reads a file
only when its :class:`~exporter.files.Fingerprint` (resolved path, device,
inode, size, mtime) is new and has held for two scans in a row, or at once on
the first scan.  Reading caps the size,
never blocks on a FIFO, and gives up on a file that changes while read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.config import quote
from exporter.files import Fingerprint, stat_file
from exporter.intake.jobfiles import is_job_file, parse_or_reject
from exporter.jobs.keys import JobKey, Labels

MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class StatFailed:
    """A job file that cannot be stat'ed: its errno stands in for a fingerprint.

    So the failure is reported once, and again only when it turns into another.
    """

    errno: int


# What a scan saw of a file: the version it knows the file by.
Version = Fingerprint | StatFailed


@dataclass(slots=True)
class Outcome:
    """What reading one file gave: its jobs, or ``None`` when it is unusable as a whole."""

    fingerprint: Version
    jobs: dict[JobKey, Labels] | None
    problems: list[str]


@dataclass(slots=True)
class Listing:
    """What one scan found: every job file present, and the outcome of each one read."""

    error: str | None = None  # the directory could not be listed
    present: dict[str, Version] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def shown(name: str) -> str:
    """A file name as messages show it: quoted unless it is all printable."""
    return name if name.isprintable() else quote(name)


def collect(
    directory: str,
    known: Mapping[str, tuple[Version | None, Version | None]],
    *,
    eager: bool,
    sources: frozenset[str],
) -> Listing:
    """One pass in a worker thread: list, stat, and read what changed and then held still."""
    listing = Listing()
    try:
        with os.scandir(directory) as it:
            names = [entry.name for entry in it if is_job_file(entry.name)]
    except OSError as exc:
        return Listing(error=exc.strerror or type(exc).__name__)
    for name in names:
        seen, read = known.get(name, (None, None))
        path = os.path.join(directory, name)
        try:
            fp, st = stat_file(path)  # follows links, as into ..data
        except FileNotFoundError:
            continue  # gone, or a dangling link
        except OSError as exc:  # kept with its last good jobs, reported once
            listing.present[name] = failed = StatFailed(exc.errno or 0)
            if failed != read:
                problem = f"{shown(name)}: cannot stat: {exc.strerror}"
                listing.outcomes[name] = Outcome(failed, None, [problem])
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        listing.present[name] = fp
        if fp != read and (eager or fp == seen):
            outcome = _read(path, shown(name), fp, sources)
            if outcome is not None:
                listing.outcomes[name] = outcome
    return listing


def _read(path: str, name: str, fp: Fingerprint, sources: frozenset[str]) -> Outcome | None:
    """The file's jobs; ``None`` if it changed while read (the next scan tries again)."""
    if fp.size > MAX_FILE_BYTES:
        return Outcome(fp, None, [f"{name}: {fp.size} bytes, over the {MAX_FILE_BYTES} limit"])
    try:
        # Non-blocking: a FIFO swapped in after the stat must not hang the thread.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
            st = os.fstat(handle.fileno())
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Outcome(fp, None, [f"{name}: cannot read: {exc.strerror or type(exc).__name__}"])
    # The path stays the one stat'ed: what was opened must be that same file, unchanged.
    if Fingerprint.of(fp.path, st) != fp or len(data) != fp.size:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Outcome(fp, None, [f"{name}:{line}: not valid UTF-8"])
    jobs, problems, usable = parse_or_reject(name, text, sources)
    found = {(job.source, job.job_id): job.labels for job in jobs} if usable else None
    return Outcome(fp, found, problems)
