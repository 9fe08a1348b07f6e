"""Evocalize batch report: ``GET management/v1/items/report/{reportId}`` (seed 000).

The report gives five item counts and an ``isCompleted`` flag; there is no
failed state, so a finished report is ``completed`` and its failures show in
``errorItems`` and on the paged errors endpoint, counted by ``restErrorCode``.

Requests carry a client key (``http_headers``) or, with ``evocalize_signature``,
a signature (:func:`sign`); errors come in an ``{"errors": [...]}`` envelope
(:func:`describe_error`).  Both per the vendor's "Request And Response" page.
"""

from __future__ import annotations

import hashlib

from exporter.model import ErrorsPage, Response, Snapshot, Status
from exporter.vendors.base import (
    ApiSpec,
    count_codes,
    error_detail,
    load_json_object,
    printable,
    read_bool,
    read_count,
    read_list,
    read_object,
    read_optional_str,
)

KEY_HEADER = "X-Evocalize-Client-Key"
KEY_ID_HEADER = "X-Evocalize-Client-Key-Id"
TIMESTAMP_HEADER = "X-Evocalize-Timestamp"
SIGNATURE_HEADER = "X-Evocalize-Signature"
SIGNATURE_KEY = "evocalize_signature"
# The API prefers the client key when a request has both, so a signed source sets neither
# it nor, by hand, any header the signature sends.
SIGNATURE_CONFLICTS = frozenset(
    name.lower() for name in (KEY_HEADER, KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
)


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
    token = read_optional_str(body, "nextPageToken")
    return ErrorsPage(counts=count_codes(items, "data", "restErrorCode"), next_token=token or None)


def string_to_sign(path: str, timestamp: int, secret: str, body: bytes | None = None) -> bytes:
    """The bytes a signature hashes: path, [body,] timestamp and secret, one per line.

    ``path`` is the URL path exactly as sent (percent-encoded, no query);
    a request without a body (every GET) leaves the body line out entirely.
    """
    # surrogateescape: an environment variable may hold bytes that are not UTF-8.
    parts = [path.encode(), *([body] if body else []), str(timestamp).encode()]
    parts.append(secret.encode("utf-8", "surrogateescape"))
    return b"\n".join(parts)


def signature(path: str, timestamp: int, secret: str, body: bytes | None = None) -> str:
    """The ``X-Evocalize-Signature`` value: lower-case hex SHA-256 of :func:`string_to_sign`."""
    return hashlib.sha256(string_to_sign(path, timestamp, secret, body)).hexdigest()


def sign(path: str, timestamp: int, key_id: str, secret: str) -> tuple[tuple[str, str], ...]:
    """The three headers of a signed GET of ``path`` at ``timestamp`` (Unix seconds)."""
    return (
        (KEY_ID_HEADER, key_id),
        (TIMESTAMP_HEADER, str(timestamp)),
        (SIGNATURE_HEADER, signature(path, timestamp, secret)),
    )


def describe_error(response: Response) -> str | None:
    """``code: message`` of the envelope's first error (and how many more), bounded.

    Evocalize answers ``{"errors": [{"message", "code", "field"?, ...}]}``; a
    body without that envelope (a proxy's) falls back to :func:`error_detail`.
    """
    body = response.json_object()
    errors = None if body is None else body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return error_detail(response)
    first = errors[0]
    parts = (first.get(key) for key in ("code", "message"))
    text = ": ".join(printable(part) for part in parts if part is not None)
    if first.get("field") is not None:
        text += f" (field {printable(first['field'])})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return text or None


SPEC = ApiSpec(
    name="evocalize_batch_report",
    vendor="evocalize",
    default_path="management/v1/items/report/{id}",
    parse_job=parse_job,
    default_errors_path="management/v1/items/report/{id}/errors",
    parse_errors_page=parse_errors_page,
    errors_while_running=True,  # the errors endpoint lists items as they fail
    info_labels=frozenset(),  # no batchjob_info series
    describe_error=describe_error,
    stage_hints=(),  # isCompleted says nothing of the end; the counts against totalItems do
    signature_key=SIGNATURE_KEY,
    sign=sign,
    signature_conflicts=SIGNATURE_CONFLICTS,
)
