"""Fullstory batch import job parser (seed 001)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.model import Response, Snapshot, Status, VendorError
from exporter.vendors.fullstory import SPEC, parse_job

# Verbatim from seed 001 (the 200 example).
JOB_EXAMPLE = """
{
"imports": 42,
"errors": 2,
"job": {
"id": "abd123=",
"status": "FAILED",
"created": "2019-04-18T14:36:11.123Z",
"finished": "2019-04-18T15:36:11.123Z"
}
}
"""

# Verbatim from seed 001 (the 404 example): an error body, not a job.
NOT_FOUND_EXAMPLE = """
{
"message": "Requested resource does not exist",
"code": "resource_not_found"
}
"""

CREATED = 1555598171.123  # 2019-04-18T14:36:11.123Z
FINISHED = 1555601771.123  # 2019-04-18T15:36:11.123Z


def response(body: str | bytes, status: int = 200) -> Response:
    """Build a response from a body given as text or bytes."""
    raw = body.encode() if isinstance(body, str) else body
    return Response(status=status, headers={"Content-Type": "application/json"}, body=raw)


def job_body(top: dict[str, object] | None = None, /, **job: object) -> Response:
    """Build a response from the seed's example with ``job`` fields and top-level keys replaced."""
    body: dict[str, object] = json.loads(JOB_EXAMPLE)
    inner = body["job"]
    assert isinstance(inner, dict)
    inner.update(job)
    body.update(top or {})
    return response(json.dumps(body))


def dropped(*keys: str, job_keys: tuple[str, ...] = ()) -> Response:
    """Build a response from the seed's example without some top-level and job keys."""
    body: dict[str, object] = json.loads(JOB_EXAMPLE)
    for key in keys:
        del body[key]
    inner = body["job"]
    assert isinstance(inner, dict)
    for key in job_keys:
        del inner[key]
    return response(json.dumps(body))


def test_seed_example() -> None:
    """The seed's failed import parses into counts, status and both timestamps."""
    snapshot = parse_job(response(JOB_EXAMPLE))
    assert replace(snapshot, created=None, finished=None) == Snapshot(
        status=Status.FAILED, vendor_status="FAILED", successful_items=42, error_items=2
    )
    assert snapshot.created == pytest.approx(CREATED)
    assert snapshot.finished == pytest.approx(FINISHED)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("PROCESSING", Status.RUNNING),
        ("COMPLETED", Status.COMPLETED),
        ("FAILED", Status.FAILED),
        ("processing", Status.RUNNING),
        ("completed", Status.COMPLETED),
        ("failed", Status.FAILED),
        ("Processing", Status.RUNNING),
        ("CoMpLeTeD", Status.COMPLETED),
    ],
)
def test_status_mapping_ignores_case(raw: str, status: Status) -> None:
    """Each documented status maps to the exporter's state whatever its case; raw text is kept."""
    snapshot = parse_job(job_body(status=raw))
    assert (snapshot.status, snapshot.vendor_status) == (status, raw)


@pytest.mark.parametrize(
    "raw", ["PENDING", "QUEUED", "", " COMPLETED", "PROCESS\u0130NG", "process\u0131ng", "DONE"]
)
def test_unknown_status_keeps_raw_value(raw: str) -> None:
    """An undocumented status (or a non-ASCII look-alike) is unknown, vendor_status verbatim."""
    snapshot = parse_job(job_body(status=raw))
    assert (snapshot.status, snapshot.vendor_status) == (Status.UNKNOWN, raw)


def test_long_unknown_status_is_bounded() -> None:
    """vendor_status is cut to 100 characters."""
    snapshot = parse_job(job_body(status="X" * 1000))
    assert snapshot.vendor_status == "X" * 100


def test_completed_import_without_errors_field() -> None:
    """``errors`` is only sent for failed imports: absent gives no value, not zero."""
    body = {"imports": 42, "job": {"id": "abd123=", "status": "COMPLETED"}}
    snapshot = parse_job(response(json.dumps(body)))
    assert snapshot == Snapshot(
        status=Status.COMPLETED, vendor_status="COMPLETED", successful_items=42
    )


@pytest.mark.parametrize("key", ["imports", "errors"])
def test_null_count_is_none(key: str) -> None:
    """A count sent as null gives no value."""
    snapshot = parse_job(job_body({key: None}))
    assert (snapshot.successful_items if key == "imports" else snapshot.error_items) is None


def test_processing_job_without_counts_or_finish() -> None:
    """A job still processing may send only ``job`` with id, status and created."""
    body = (
        '{"job": {"id": "abd123=", "status": "PROCESSING", "created": "2019-04-18T14:36:11.123Z"}}'
    )
    snapshot = parse_job(response(body))
    assert snapshot.status is Status.RUNNING
    assert snapshot.successful_items is None
    assert snapshot.error_items is None
    assert snapshot.finished is None
    assert snapshot.created == pytest.approx(CREATED)


@pytest.mark.parametrize("value", ["42", -1, 4.2, 42.0, True, [], {}])
@pytest.mark.parametrize("key", ["imports", "errors"])
def test_wrong_typed_count_is_rejected(key: str, value: object) -> None:
    """A count that is not a non-negative integer is an unexpected shape naming the field."""
    with pytest.raises(VendorError, match=f"^{key}: expected a non-negative integer") as caught:
        parse_job(job_body({key: value}))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-04-18T14:36:11.123Z", CREATED),
        ("2019-04-18T14:36:11Z", 1555598171.0),
        ("2019-04-18T14:36:11.123+00:00", CREATED),
        ("2019-04-18T16:36:11.123+02:00", CREATED),
        ("2019-04-18T09:06:11.123-05:30", CREATED),
        ("2019-04-18T14:36:11-00:00", 1555598171.0),
        ("2019-04-18t14:36:11.123z", CREATED),
        ("2019-04-18 14:36:11.123Z", CREATED),
        ("2019-04-18T14:36:11.123456789Z", 1555598171.123456789),
        ("2019-04-18T14:36:11.1Z", 1555598171.1),
        ("2016-12-31T23:59:60Z", 1483228800.0),
    ],
)
def test_timestamps_with_offsets_and_fractions(text: str, expected: float) -> None:
    """RFC 3339 timestamps with Z or offsets, any fraction and leap seconds become Unix seconds."""
    snapshot = parse_job(job_body(created=text, finished=text))
    assert snapshot.created == pytest.approx(expected, abs=1e-6)
    assert snapshot.finished == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("key", ["created", "finished"])
def test_absent_or_null_timestamp_is_none(key: str) -> None:
    """A timestamp that is absent or null gives no value."""
    assert getattr(parse_job(dropped(job_keys=(key,))), key) is None
    assert getattr(parse_job(job_body(**{key: None})), key) is None


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "2019-04-18",
        "2019-04-18T14:36:11",
        "2019-04-18T14:36:11.Z",
        "2019-04-18T14:36Z",
        "2019-02-30T00:00:00Z",
        "2019-13-01T00:00:00Z",
        "2019-04-18T24:00:00Z",
        "2019-04-18T14:36:11+24:00",
        "2019-04-18T14:36:11+02:60",
        "2019-04-18T14:36:11+0200",
        "1555598171",
        "2019-04-18T14:36:11.123Z trailing",
        "0000-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("key", ["created", "finished"])
def test_unparsable_timestamp_is_rejected(key: str, text: str) -> None:
    """A timestamp that is not RFC 3339 with an offset is an unexpected shape naming the field."""
    with pytest.raises(
        VendorError, match=f"^job\\.{key}: expected an RFC 3339 timestamp"
    ) as caught:
        parse_job(job_body(**{key: text}))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize("value", [1555598171, 1555598171.123, True, [], {}])
def test_non_string_timestamp_is_rejected(value: object) -> None:
    """A timestamp sent as a number or other non-string is an unexpected shape."""
    with pytest.raises(VendorError, match=r"^job\.created: expected a string") as caught:
        parse_job(job_body(created=value))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"imports": 42}', r"^job: missing, expected an object"),
        ('{"job": null}', r"^job: expected an object, got null"),
        ('{"job": "FAILED"}', r'^job: expected an object, got "FAILED"'),
        ('{"job": [{"status": "FAILED"}]}', r"^job: expected an object, got an array"),
        ('{"job": {"id": "a"}}', r"^job\.status: missing, expected a string"),
        ('{"job": {"status": null}}', r"^job\.status: expected a string, got null"),
        ('{"job": {"status": 3}}', r"^job\.status: expected a string, got 3"),
    ],
)
def test_job_and_status_are_required(body: str, message: str) -> None:
    """``job`` must be an object with a string ``status``; the message names the path."""
    with pytest.raises(VendorError, match=message) as caught:
        parse_job(response(body))
    assert caught.value.reason == "unexpected_shape"


def test_error_body_on_ok_status_is_rejected() -> None:
    """The seed's error body (no ``job``) is an unexpected shape if it ever arrives as a 200."""
    with pytest.raises(VendorError) as caught:
        parse_job(response(NOT_FOUND_EXAMPLE))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<!DOCTYPE html><html><head><title>504</title></head></html>", "invalid_json"),
        (JOB_EXAMPLE[:60].encode(), "invalid_json"),
        (b"", "invalid_json"),
        (b"[" * 50_000 + b"]" * 50_000, "invalid_json"),
        (b"[]", "unexpected_shape"),
        (f"[{JOB_EXAMPLE}]".encode(), "unexpected_shape"),
        (b'"FAILED"', "unexpected_shape"),
    ],
    ids=["html", "truncated", "empty", "deeply-nested", "empty-array", "array", "string"],
)
def test_bad_body(body: bytes, reason: str) -> None:
    """A body that is not a JSON object fails with invalid_json or unexpected_shape."""
    with pytest.raises(VendorError) as caught:
        parse_job(response(body))
    assert caught.value.reason == reason


def test_spec() -> None:
    """The spec names the API and its documented path, with no errors endpoint."""
    assert SPEC.name == "batch_import_job"
    assert SPEC.vendor == "fullstory"
    assert SPEC.default_path == "v2/events/batch/{id}"
    assert SPEC.ok_statuses == frozenset({200})
    assert SPEC.parse_job is parse_job
    assert SPEC.default_errors_path is None
    assert SPEC.parse_errors_page is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
TIMESTAMPS = st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())
JOB_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "imports": JSON,
        "errors": JSON,
        "job": JSON
        | st.fixed_dictionaries(
            {},
            optional={
                "status": JSON | st.sampled_from(["PROCESSING", "completed", "Failed"]),
                "created": JSON | TIMESTAMPS,
                "finished": JSON | TIMESTAMPS,
            },
        ),
    },
)


@given(JSON | JOB_LIKE)
def test_parse_job_returns_snapshot_or_vendor_error(value: object) -> None:
    """Any JSON value gives a snapshot or a VendorError, never another exception."""
    try:
        result = parse_job(response(json.dumps(value)))
    except VendorError:
        return
    assert isinstance(result, Snapshot)
