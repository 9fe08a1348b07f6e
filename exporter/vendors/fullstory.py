"""Fullstory batch import job: ``GET /v2/events/batch/{id}`` (seed 001).

``imports`` counts the items imported; ``errors`` is only sent for failed
imports.  ``job.created``/``job.finished`` are RFC 3339 timestamps.
"""

from __future__ import annotations

from exporter.model import Response, Snapshot, Status
from exporter.vendors.base import (
    ApiSpec,
    bounded,
    load_json_object,
    map_status,
    read_count,
    read_object,
    read_optional_timestamp,
    read_str,
)

MAX_VENDOR_STATUS = 100

STATUSES = {
    "PROCESSING": Status.RUNNING,
    "COMPLETED": Status.COMPLETED,
    "FAILED": Status.FAILED,
}


def parse_job(response: Response) -> Snapshot:
    """Read a batch import job; ``vendor_status`` is ``job.status`` as sent (bounded)."""
    body = load_json_object(response)
    job = read_object(body, "job")
    raw = read_str(job, "status", "job")
    return Snapshot(
        status=map_status(raw, STATUSES),
        vendor_status=bounded(raw, MAX_VENDOR_STATUS),
        successful_items=read_count(body, "imports"),
        error_items=read_count(body, "errors"),
        created=read_optional_timestamp(job, "created", "job"),
        finished=read_optional_timestamp(job, "finished", "job"),
    )


SPEC = ApiSpec(
    name="batch_import_job",
    vendor="fullstory",
    default_path="v2/events/batch/{id}",
    parse_job=parse_job,
    info_labels=frozenset(),  # no batchjob_info series
)
