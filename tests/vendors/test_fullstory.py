"""Fullstory batch import job and errors listing parsers (seed 001 and Fullstory's Swagger)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.model import ErrorsPage, Response, Snapshot, Status, VendorError
from exporter.vendors.fullstory import SPEC, failed, parse_errors_page, parse_job

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
    """``errors`` is only sent for failed imports: absent from a finished one means none."""
    body = {"imports": 42, "job": {"id": "abd123=", "status": "COMPLETED"}}
    snapshot = parse_job(response(json.dumps(body)))
    assert snapshot == Snapshot(
        status=Status.COMPLETED, vendor_status="COMPLETED", successful_items=42, error_items=0
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


@pytest.mark.parametrize(
    ("imports", "errors", "expected"),
    [(42, 2, (42, 2)), ("42", "2", (42, 2)), ("42", 2, (42, 2)), ("0042", "0", (42, 0))],
)
def test_counts_as_numbers_or_decimal_strings(
    imports: object, errors: object, expected: tuple[int, int]
) -> None:
    """proto3 JSON may write a count as a decimal string: it is read as its number."""
    snapshot = parse_job(job_body({"imports": imports, "errors": errors}))
    assert (snapshot.successful_items, snapshot.error_items) == expected


@pytest.mark.parametrize("raw", ["COMPLETED", "FAILED", "failed"])
def test_omitted_counts_of_a_finished_job_are_zero(raw: str) -> None:
    """proto3 leaves zero counts out: absent ``imports``/``errors`` of a finished job are 0."""
    snapshot = parse_job(response(json.dumps({"job": {"id": "abd123=", "status": raw}})))
    assert (snapshot.successful_items, snapshot.error_items) == (0, 0)


@pytest.mark.parametrize("raw", ["PROCESSING", "QUEUED"])
def test_omitted_counts_of_an_unfinished_job_stay_unknown(raw: str) -> None:
    """While processing (or in an unknown state) an absent count gives no value, not a zero."""
    snapshot = parse_job(response(json.dumps({"job": {"id": "abd123=", "status": raw}})))
    assert (snapshot.successful_items, snapshot.error_items) == (None, None)


def test_a_failed_import_that_imported_nothing() -> None:
    """The seed's failed import without ``imports`` (proto3's zero): 0 imported, 2 errors."""
    snapshot = parse_job(dropped("imports"))
    assert (snapshot.successful_items, snapshot.error_items) == (0, 2)


@pytest.mark.parametrize(
    "value",
    [-1, 4.2, 42.0, True, [], {}, "4x", "-1", "4.0", "", " 4", "+4", "4 ", "\u0664", "1" * 20],
)
@pytest.mark.parametrize("key", ["imports", "errors"])
def test_wrong_typed_count_is_rejected(key: str, value: object) -> None:
    """A count that is neither a non-negative integer nor its decimal string is a shape error."""
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


EVENTS_NEXT_PAGE = "asd543="  # the Swagger's example page token
USERS_NEXT_PAGE = "asd543"  # the users Swagger's example

# The events listing: total_records and next_page_token are its Swagger's examples (given
# per property); the two results are ours, shaped as its FailedEventsImport, one without code.
EVENTS_ERRORS_EXAMPLE = """
{
"results": [
{"message": "Event name is required", "code": "required_field", "event": {"name": ""}},
{"message": "A description of the failure", "event": {"name": "Support Ticket"}}
],
"total_records": "98",
"next_page_token": "asd543="
}
"""

# Verbatim from the Swagger of users imports (``GetBatchUserImportErrorsResponse``).
USERS_ERRORS_EXAMPLE = """
{
  "results": [
    {
      "message": "The error message",
      "code": "error_code",
      "user": {
        "uid": "xyz123",
        "display_name": "Daniel Falko",
        "email": "daniel.falko@example.com",
        "properties": {"pricing_plan": "paid", "popup_help": true, "total_spent": 14.55},
        "schema": null,
        "type_conflicts": null
      }
    },
    {
      "message": "The error message",
      "code": "error_code",
      "user": {
        "display_name": "Stan Bandee",
        "email": "stan.bandee@example.com",
        "properties": {"pricing_plan": "free", "popup_help": true, "total_spent": 0},
        "schema": null,
        "type_conflicts": null
      }
    }
  ],
  "total_records": "98",
  "next_page_token": "asd543"
}
"""


def listing(results: object = None, **top: object) -> Response:
    """An errors page with ``results`` (left out when None) and other top-level keys."""
    body = dict(top) if results is None else {"results": results, **top}
    return response(json.dumps(body))


def test_events_errors_example() -> None:
    """The documented page: failures counted by code (one without counts as unknown)."""
    assert parse_errors_page(response(EVENTS_ERRORS_EXAMPLE)) == ErrorsPage(
        counts=(("required_field", 1), ("unknown", 1)), next_token=EVENTS_NEXT_PAGE, total=98
    )


def test_users_errors_example() -> None:
    """The users listing's verbatim example: two failures of one code, 98 in all."""
    assert parse_errors_page(response(USERS_ERRORS_EXAMPLE)) == ErrorsPage(
        counts=(("error_code", 2),), next_token=USERS_NEXT_PAGE, total=98
    )


@pytest.mark.parametrize("body", ["{}", '{"results": null}', '{"results": []}'])
def test_a_listing_without_results_is_an_empty_last_page(body: str) -> None:
    """proto3 leaves an empty ``results`` out: no counts, no next page, no total."""
    assert parse_errors_page(response(body)) == ErrorsPage(counts=(), next_token=None, total=None)


@pytest.mark.parametrize("token", [None, ""])
def test_null_or_empty_next_page_token_is_last(token: str | None) -> None:
    """A null or empty ``next_page_token`` does not lead to another page."""
    assert parse_errors_page(listing([], next_page_token=token)).next_token is None


@pytest.mark.parametrize(("value", "total"), [("98", 98), (98, 98), ("0", 0), (None, None)])
def test_total_records_is_read_as_a_number(value: object, total: int | None) -> None:
    """``total_records`` is a decimal string per the Swagger; a number is taken too."""
    assert parse_errors_page(listing([], total_records=value)).total == total


@pytest.mark.parametrize("value", ["98x", "-1", "9.8", 9.8, True, [], {}])
def test_bad_total_records_is_rejected(value: object) -> None:
    """A ``total_records`` that is no count is an unexpected shape naming the field."""
    with pytest.raises(VendorError, match=r"^total_records: expected a non-negative") as caught:
        parse_errors_page(listing([], total_records=value))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    "item",
    [{"message": "boom"}, {"code": None}, {"code": ""}, {}],
    ids=["absent", "null", "empty", "bare-object"],
)
def test_a_failure_without_a_code_counts_as_unknown(item: dict[str, object]) -> None:
    """A failure without a usable ``code`` is counted under ``unknown``."""
    assert parse_errors_page(listing([item])).counts == (("unknown", 1),)


def test_failures_are_counted_and_sorted_by_code_and_long_codes_bounded() -> None:
    """Counts are grouped and sorted by code; a code is cut to 100 characters."""
    items = [{"code": "b"}, {"code": "a"}, {"code": "b"}, {"message": "x"}, {"code": "C" * 500}]
    page = parse_errors_page(listing(items))
    assert page.counts == (("C" * 100, 1), ("a", 1), ("b", 2), ("unknown", 1))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"results": {"code": "x"}}', r"^results: expected an array, got an object"),
        ('{"results": ["x"]}', r'^results\[0\]: expected an object, got "x"'),
        ('{"results": [{"code": 3}]}', r"^results\[0\]\.code: expected a string, got 3"),
        ('{"next_page_token": 5}', r"^next_page_token: expected a string, got 5"),
        # Valid JSON of another shape (the simulator's huge body starts like this): taken as
        # an empty last page, it ended a read with failures still unlisted.
        ('{"data": "xxx"}', r"^an errors page has none of next_page_token, results, total"),
    ],
)
def test_malformed_listing_is_rejected(body: str, message: str) -> None:
    """A listing whose parts have the wrong type is an unexpected shape naming the path."""
    with pytest.raises(VendorError, match=message) as caught:
        parse_errors_page(response(body))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    ("body", "reason"), [(b"<html/>", "invalid_json"), (b"[]", "unexpected_shape")]
)
def test_bad_listing_body(body: bytes, reason: str) -> None:
    """A listing body that is not a JSON object fails with the matching reason."""
    with pytest.raises(VendorError) as caught:
        parse_errors_page(response(body))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("status", "lists"),
    [(Status.FAILED, True), (Status.COMPLETED, False), (Status.RUNNING, False)],
)
def test_only_a_failed_import_has_its_listing_read(status: Status, lists: bool) -> None:
    """COMPLETED means finished without any errors: only a FAILED import's listing is read."""
    assert SPEC.reads_errors(Snapshot(status, status.name)) is lists


def test_spec() -> None:
    """The spec names the API, its documented paths, page token, 202 and failed-only listing."""
    assert SPEC.name == "batch_import_job"
    assert SPEC.vendor == "fullstory"
    assert SPEC.default_path == "v2/events/batch/{id}"
    assert SPEC.ok_statuses == frozenset({200})
    assert SPEC.parse_job is parse_job
    assert SPEC.default_errors_path == "v2/events/batch/{id}/errors"
    assert SPEC.parse_errors_page is parse_errors_page
    assert SPEC.default_page_token_param == "page_token"  # noqa: S105 - a parameter name
    assert SPEC.errors_pending_statuses == frozenset({202})
    assert SPEC.errors_while_running is False
    assert SPEC.has_errors is failed


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


ERRORS_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "results": JSON | st.lists(JSON | st.fixed_dictionaries({}, optional={"code": JSON})),
        "next_page_token": JSON,
        "total_records": JSON | st.integers().map(str),
    },
)


@given(JSON | ERRORS_LIKE)
def test_parse_errors_page_returns_page_or_vendor_error(value: object) -> None:
    """Any JSON value gives an errors page or a VendorError, never another exception."""
    try:
        result = parse_errors_page(response(json.dumps(value)))
    except VendorError:
        return
    assert isinstance(result, ErrorsPage)
