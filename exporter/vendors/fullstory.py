"""Fullstory batch import job: ``GET /v2/events/batch/{id}`` and its errors (seed 001).

``imports`` counts the items imported; ``errors`` is only sent for failed
imports.  ``job.created``/``job.finished`` are RFC 3339 timestamps.  The
answers are proto3 JSON: a zero count is left out, and a count may come as a
decimal string.  ``GET .../{id}/errors`` lists a ``FAILED`` import's failures
(``COMPLETED`` means finished without any) a page at a time, ``page_token``
in and ``next_page_token`` out, ``total_records`` (a string) counting them
all; while the import is processing it answers 202.  Users imports
(``v2/users/batch/{id}``) have the same shapes.
"""

from __future__ import annotations

from exporter.model import ErrorsPage, Response, Snapshot, Status, VendorError
from exporter.vendors.base import (
    ApiSpec,
    bounded,
    count_codes,
    load_json_object,
    map_status,
    read_lenient_count,
    read_list,
    read_object,
    read_optional_str,
    read_optional_timestamp,
    read_str,
)

MAX_VENDOR_STATUS = 100
LISTING_KEYS = frozenset({"results", "next_page_token", "total_records"})

STATUSES = {
    "PROCESSING": Status.RUNNING,
    "COMPLETED": Status.COMPLETED,
    "FAILED": Status.FAILED,
}


def _count(body: dict[str, object], key: str, status: Status) -> int | None:
    """A count, where proto3 leaving it out of a finished job's answer means 0.

    While the job runs an absent count stays unknown: no made-up zero.
    """
    if key not in body and status.finished:
        return 0
    return read_lenient_count(body, key)


def parse_job(response: Response) -> Snapshot:
    """Read a batch import job; ``vendor_status`` is ``job.status`` as sent (bounded)."""
    body = load_json_object(response)
    job = read_object(body, "job")
    raw = read_str(job, "status", "job")
    status = map_status(raw, STATUSES)
    return Snapshot(
        status=status,
        vendor_status=bounded(raw, MAX_VENDOR_STATUS),
        successful_items=_count(body, "imports", status),
        error_items=_count(body, "errors", status),
        created=read_optional_timestamp(job, "created", "job"),
        finished=read_optional_timestamp(job, "finished", "job"),
    )


def parse_errors_page(response: Response) -> ErrorsPage:
    """Count one page of import failures by ``code`` (missing or empty: ``unknown``).

    proto3 leaves an empty ``results`` out; ``total_records`` is the listing's
    own count of failures, across every page.  So ``{}`` is an empty last page,
    but an object of other keys only is no page of this listing (a proxy's or
    another endpoint's answer): taken as one, it would end the read early.
    """
    body = load_json_object(response)
    if body and not body.keys() & LISTING_KEYS:
        keys = ", ".join(sorted(LISTING_KEYS))
        raise VendorError("unexpected_shape", f"an errors page has none of {keys}")
    items = read_list(body, "results") if body.get("results") is not None else []
    token = read_optional_str(body, "next_page_token")
    return ErrorsPage(
        counts=count_codes(items, "results", "code"),
        next_token=token or None,
        total=read_lenient_count(body, "total_records"),
    )


def failed(snapshot: Snapshot) -> bool:
    """Whether a finished import has failures to list: ``COMPLETED`` means none."""
    return snapshot.status is Status.FAILED


SPEC = ApiSpec(
    name="batch_import_job",
    vendor="fullstory",
    default_path="v2/events/batch/{id}",
    parse_job=parse_job,
    default_errors_path="v2/events/batch/{id}/errors",
    parse_errors_page=parse_errors_page,
    info_labels=frozenset(),  # no batchjob_info series
    default_page_token_param="page_token",  # noqa: S106 - a query parameter name
    errors_pending_statuses=frozenset({202}),
    has_errors=failed,
    stage_hints=(),  # PROCESSING says nothing of the end, and there is no total to count to
)
