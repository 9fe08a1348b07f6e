"""Evocalize batch report: ``GET management/v1/items/report/{reportId}`` (seed 000).

The report gives five item counts and an ``isCompleted`` flag; there is no
failed state, so a finished report is ``completed`` and its failures show in
``errorItems`` and on the paged errors endpoint, counted by ``restErrorCode``.
"""

from __future__ import annotations

from exporter.model import ErrorsPage, Response, Snapshot, Status
from exporter.vendors.base import (
    ApiSpec,
    bounded,
    load_json_object,
    read_bool,
    read_count,
    read_list,
    read_object,
    read_optional_str,
    shape_error,
)

UNKNOWN_CODE = "unknown"
MAX_CODE = 100


def parse_job(response: Response) -> Snapshot:
    """Read a batch report into a snapshot; ``vendor_status`` is ``isCompleted=<bool>``."""
    data = read_object(load_json_object(response), "data")
    completed = read_bool(data, "isCompleted", "data")
    return Snapshot(
        status=Status.COMPLETED if completed else Status.RUNNING,
        vendor_status="isCompleted=true" if completed else "isCompleted=false",
        total_items=read_count(data, "totalItems", "data"),
        remaining_items=read_count(data, "remainingItems", "data"),
        completed_items=read_count(data, "completedItems", "data"),
        successful_items=read_count(data, "successfulItems", "data"),
        error_items=read_count(data, "errorItems", "data"),
    )


def parse_errors_page(response: Response) -> ErrorsPage:
    """Count one page of item errors by ``restErrorCode`` (missing or empty: ``unknown``)."""
    body = load_json_object(response)
    items = read_list(body, "data")
    counts: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise shape_error("data", f"[{index}]", "an object", item)
        code = read_optional_str(item, "restErrorCode", f"data[{index}]")
        key = bounded(code, MAX_CODE) if code else UNKNOWN_CODE
        counts[key] = counts.get(key, 0) + 1
    token = read_optional_str(body, "nextPageToken")
    return ErrorsPage(counts=tuple(sorted(counts.items())), next_token=token or None)


SPEC = ApiSpec(
    name="evocalize_batch_report",
    vendor="evocalize",
    default_path="management/v1/items/report/{id}",
    parse_job=parse_job,
    default_errors_path="management/v1/items/report/{id}/errors",
    parse_errors_page=parse_errors_page,
    info_labels=frozenset(),  # no batchjob_info series
)
