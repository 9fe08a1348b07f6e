"""Talkdesk Explore report job: ``GET data/reports/{type}/jobs/{id}`` (seed 002).

The job body has a ``status`` (sent in lower case by the live API) and a few
descriptive strings kept as ``info``.  A finished report answers with a
redirect to its file: ``300`` on the Explore reference page, ``303 See Other``
in the Reporting API's docs (whose file URL then answers ``302`` to a signed
S3 URL).  Any ``3xx`` with a ``Location`` header therefore means "done".  The
client never follows it, and only the header's presence is looked at: the URL
(signed, its query a credential) is never kept, so it cannot reach a log line,
a label or a page.
"""

from __future__ import annotations

from exporter.model import Response, Snapshot, Status, VendorError
from exporter.vendors.base import (
    ApiSpec,
    StageHint,
    bounded,
    load_json_object,
    map_status,
    read_object,
    read_optional_object,
    read_optional_str,
    read_str,
)

MAX_VENDOR_STATUS = 100
MAX_INFO = 200
INFO_KEYS = ("name", "format", "timezone")
# Every redirect: the status code alone says the report's file exists.
REDIRECTS = frozenset(range(300, 400))

# The Explore reference lists created..deleted; the Reporting API's "Executing a
# Report" page adds ``sending`` (its notification email, after the upload, before done).
STATUSES = {
    "CREATED": Status.PENDING,
    "PROCESSING": Status.RUNNING,
    "UPLOADING": Status.RUNNING,
    "SENDING": Status.RUNNING,
    "DONE": Status.COMPLETED,
    "FAILED": Status.FAILED,
    "CANCELED": Status.CANCELED,
    "CANCELLED": Status.CANCELED,
    "DELETED": Status.DELETED,
}

# Uploading the file and sending its email are a report's last stages; a created one has
# not started and may queue for long (adaptive polling reads these).
STAGE_HINTS: tuple[tuple[str, StageHint], ...] = (
    ("created", "wait"),
    ("uploading", "soon"),
    ("sending", "soon"),
)

# A redirect whose body says nothing usable: the status code alone means "done".
LOCATED_SNAPSHOT = Snapshot(status=Status.COMPLETED, vendor_status="done")


def _info(job: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """Collect ``name``, ``format`` and ``timezone`` (those sent as strings), bounded."""
    pairs = []
    for key in INFO_KEYS:
        value = job.get(key)
        if isinstance(value, str):
            pairs.append((key, bounded(value, MAX_INFO)))
    return tuple(pairs)


def _parse_ok(response: Response) -> Snapshot:
    """Read a ``200``: ``job`` and ``job.status`` are required."""
    job = read_object(load_json_object(response), "job")
    raw = read_str(job, "status", "job")
    return Snapshot(
        status=map_status(raw, STATUSES),
        vendor_status=bounded(raw, MAX_VENDOR_STATUS),
        info=_info(job),
    )


def _parse_located(response: Response) -> Snapshot:
    """Read a redirect: always ``completed``; a readable body adds info and the raw status."""
    if not response.body.strip():
        return LOCATED_SNAPSHOT
    try:
        job = read_optional_object(load_json_object(response), "job")
        raw = None if job is None else read_optional_str(job, "status", "job")
    except VendorError:
        return LOCATED_SNAPSHOT
    if job is None:
        return LOCATED_SNAPSHOT
    return Snapshot(
        status=Status.COMPLETED,
        vendor_status=bounded(raw, MAX_VENDOR_STATUS) if raw else "done",
        info=_info(job),
    )


def parse_job(response: Response) -> Snapshot:
    """Read a report job; ``vendor_status`` is ``job.status`` as sent, ``done`` for a bare 3xx."""
    if response.status in REDIRECTS:
        # The report's file is at Location; a 3xx without one is not the vendor's answer
        # (a proxy's "multiple choices", say), so it proves nothing about the report.
        # The message names the code only: the body's links may be signed URLs too.
        if not response.headers.get("Location", "").strip():
            raise VendorError(
                "unexpected_status", f"HTTP {response.status} without a Location header"
            )
        return _parse_located(response)
    return _parse_ok(response)


SPEC = ApiSpec(
    name="report_job",
    vendor="talkdesk",
    default_path="data/reports/{report_type}/jobs/{id}",
    parse_job=parse_job,
    ok_statuses=frozenset({200}) | REDIRECTS,
    path_params=("report_type",),
    info_labels=frozenset(INFO_KEYS),
    stage_hints=STAGE_HINTS,
)
