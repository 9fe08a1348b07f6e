"""Keeps a state store in step with the job table: a table listener that saves each change."""

from __future__ import annotations

from exporter.jobs.entry import JobView
from exporter.jobs.keys import JobKey
from exporter.state.records import from_entry
from exporter.state.storage import Store

__all__ = ["Saving"]


class Saving:
    """Puts a job's record into ``store`` on every change, and deletes it on removal."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def changed(self, entry: JobView) -> None:
        """Save the job's new record (the store writes it off the loop, in batches)."""
        self._store.put(from_entry(entry))

    def removed(self, key: JobKey) -> None:
        """Forget the job's record."""
        self._store.delete(*key)
