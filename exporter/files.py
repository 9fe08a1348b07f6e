"""What a file on disk is right now, cheaply: the fingerprint every file watcher compares."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What ``path`` resolved to and that file's identity and size; equal means unchanged.

    Kubernetes updates a mounted ConfigMap or Secret by writing a new directory and
    swapping the ``..data`` symlink, so the name never changes while what it resolves
    to does: the resolved path and the inode show that swap even when the new file
    has the old size and (to the second) the old mtime.
    """

    path: str  # resolved: every symlink followed
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, resolved: str, st: os.stat_result) -> Fingerprint:
        """The fingerprint of ``st``, taken of the file ``resolved`` names."""
        return cls(resolved, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def stat_file(path: str) -> tuple[Fingerprint, os.stat_result]:
    """The fingerprint of what ``path`` resolves to now, and its stat; ``OSError`` if none."""
    resolved = os.path.realpath(path)
    st = os.stat(resolved)
    return Fingerprint.of(resolved, st), st


def fingerprint(path: str) -> Fingerprint | None:
    """The fingerprint of what ``path`` resolves to now; ``None`` if it cannot be stat'ed."""
    try:
        return stat_file(path)[0]
    except OSError:
        return None
