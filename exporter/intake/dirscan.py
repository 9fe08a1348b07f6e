"""One scan of a watch dir, off the event loop: which job files are there, and their jobs.

:func:`collect` lists the directory, stats every job file, and reads a file
only when its fingerprint (device, inode, mtime, size) is new and has held for
two scans in a row, or at once on the first scan.  Reading caps the size,
never blocks on a FIFO, and gives up on a file that changes while read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.config._nodes import quote
from exporter.intake.jobfiles import is_job_file, parse_or_reject
from exporter.jobs.keys import JobKey, Labels

MAX_FILE_BYTES = 1 << 20

Fingerprint = tuple[int, int, int, int]


@dataclass(slots=True)
class Outcome:
    """What reading one file gave: its jobs, or ``None`` when it is unusable as a whole."""

    fingerprint: Fingerprint
    jobs: dict[JobKey, Labels] | None
    problems: list[str]


@dataclass(slots=True)
class Listing:
    """What one scan found: every job file present, and the outcome of each one read."""

    error: str | None = None  # the directory could not be listed
    present: dict[str, Fingerprint] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def shown(name: str) -> str:
    """A file name as messages show it: quoted unless it is all printable."""
    return name if name.isprintable() else quote(name)


def collect(
    directory: str,
    known: Mapping[str, tuple[Fingerprint | None, Fingerprint | None]],
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
        try:
            st = os.stat(os.path.join(directory, name))  # follows links, as into ..data
        except FileNotFoundError:
            continue  # gone, or a dangling link
        except OSError as exc:  # kept with its last good jobs, reported once
            listing.present[name] = fp = (-1, exc.errno or 0, 0, 0)
            if fp != read:
                problem = f"{shown(name)}: cannot stat: {exc.strerror}"
                listing.outcomes[name] = Outcome(fp, None, [problem])
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        listing.present[name] = fp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if fp != read and (eager or fp == seen):
            outcome = _read(os.path.join(directory, name), shown(name), fp, sources)
            if outcome is not None:
                listing.outcomes[name] = outcome
    return listing


def _read(path: str, name: str, fp: Fingerprint, sources: frozenset[str]) -> Outcome | None:
    """The file's jobs; ``None`` if it changed while read (the next scan tries again)."""
    if fp[3] > MAX_FILE_BYTES:
        return Outcome(fp, None, [f"{name}: {fp[3]} bytes, over the {MAX_FILE_BYTES} limit"])
    try:
        # Non-blocking: a FIFO swapped in after the stat must not hang the thread.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
            st = os.fstat(handle.fileno())
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Outcome(fp, None, [f"{name}: cannot read: {exc.strerror or type(exc).__name__}"])
    if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) != fp or len(data) != fp[3]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return Outcome(fp, None, [f"{name}:{line}: not valid UTF-8"])
    jobs, problems, usable = parse_or_reject(name, text, sources)
    found = {(job.source, job.job_id): job.labels for job in jobs} if usable else None
    return Outcome(fp, found, problems)
