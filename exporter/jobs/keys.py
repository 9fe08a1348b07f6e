"""What names a watched job: its key, its own labels, and where it came from."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobKey", "Labels", "Origin"]

JobKey = tuple[str, str]  # (source, job_id)
Labels = tuple[
    tuple[str, str], ...
]  # the job's own labels, as the config or registration gave them


class Origin(StrEnum):
    """Where a watched job came from, as ``batchjob_info{origin}`` and the API show it."""

    CONFIG = "config"
    API = "api"
    DIR = "dir"
