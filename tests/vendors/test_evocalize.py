"""Evocalize batch report and errors page parsers (seed 000)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.model import ErrorsPage, Response, Snapshot, Status, VendorError
from exporter.vendors.evocalize import (
    SPEC,
    describe_error,
    parse_errors_page,
    parse_job,
    sign,
    signature,
    string_to_sign,
)

# Verbatim from seed 000 ("Get Report Response").
REPORT_EXAMPLE = """
{
  "data": {
    "totalItems": 750,
    "remainingItems": 500,
    "completedItems": 250,
    "successfulItems": 250,
    "errorItems": 0,
    "isCompleted": false
  }
}
"""

# Verbatim from seed 000 ("Get Errors Batch Rquests"), its `//` comments removed.
ERRORS_EXAMPLE = """
{
  "data": [
    {
      "input": {
        "id": "test_user_id",
        "name": "Test User",
        "email": "example@evocalize.com",
        "groups": [
          {
            "id": "seattle_office",
            "name": "Seattle Office",
            "role": "group_admin"
          }
        ]
      },
      "errorMessage":"Duplicate user create request detected: user with example@evocalize.com has already been associated to another user id.",
      "restErrorCode": "EV_BAD_REQUEST_DUPLICATE"
    }
  ],
  "nextPageToken": "test_next_page_token",
  "previousPageToken": "test_previous_page_token"
}
"""  # noqa: E501 - the seed document verbatim
SEED_NEXT_PAGE = "test_next_page_token"

COUNT_FIELDS = ("totalItems", "remainingItems", "completedItems", "successfulItems", "errorItems")


def response(body: str | bytes, status: int = 200) -> Response:
    """Build a response from a body given as text or bytes."""
    raw = body.encode() if isinstance(body, str) else body
    return Response(status=status, headers={"Content-Type": "application/json"}, body=raw)


def report(**fields: object) -> Response:
    """Build a report response: the seed's ``data`` with ``fields`` replaced."""
    data: dict[str, object] = json.loads(REPORT_EXAMPLE)["data"]
    data.update(fields)
    return response(json.dumps({"data": data}))


def without(key: str) -> Response:
    """Build a report response: the seed's ``data`` without ``key``."""
    data: dict[str, object] = json.loads(REPORT_EXAMPLE)["data"]
    del data[key]
    return response(json.dumps({"data": data}))


def errors_page(items: list[object], **extra: object) -> Response:
    """Build an errors page response with ``items`` as ``data``."""
    return response(json.dumps({"data": items, **extra}))


def test_seed_report_example() -> None:
    """The seed's report parses into a running snapshot with all five counts."""
    assert parse_job(response(REPORT_EXAMPLE)) == Snapshot(
        status=Status.RUNNING,
        vendor_status="isCompleted=false",
        total_items=750,
        remaining_items=500,
        completed_items=250,
        successful_items=250,
        error_items=0,
    )


@pytest.mark.parametrize(
    ("flag", "status", "vendor_status"),
    [
        (False, Status.RUNNING, "isCompleted=false"),
        (True, Status.COMPLETED, "isCompleted=true"),
    ],
)
def test_is_completed_maps_to_status(flag: bool, status: Status, vendor_status: str) -> None:
    """``isCompleted`` false is running, true is completed, and vendor_status keeps the flag."""
    snapshot = parse_job(report(isCompleted=flag))
    assert (snapshot.status, snapshot.vendor_status) == (status, vendor_status)


def counts(snapshot: Snapshot) -> tuple[int | None, ...]:
    """Return the five item counts in ``COUNT_FIELDS`` order."""
    return (
        snapshot.total_items,
        snapshot.remaining_items,
        snapshot.completed_items,
        snapshot.successful_items,
        snapshot.error_items,
    )


@pytest.mark.parametrize("field", COUNT_FIELDS)
def test_absent_count_is_none(field: str) -> None:
    """A count the report leaves out gives no value rather than zero; the others are kept."""
    values = counts(parse_job(without(field)))
    assert values[COUNT_FIELDS.index(field)] is None
    assert values.count(None) == 1


@pytest.mark.parametrize("field", COUNT_FIELDS)
def test_null_count_is_none(field: str) -> None:
    """A count sent as null gives no value rather than zero; the others are kept."""
    values = counts(parse_job(report(**{field: None})))
    assert values[COUNT_FIELDS.index(field)] is None
    assert values.count(None) == 1


def test_large_count_is_kept() -> None:
    """Counts are not capped at 32 bits."""
    assert parse_job(report(totalItems=2**40)).total_items == 2**40


@pytest.mark.parametrize("value", ["abc", "750", -1, 1.5, 3.0, True, False, [], {}])
@pytest.mark.parametrize("field", COUNT_FIELDS)
def test_wrong_typed_count_is_rejected(field: str, value: object) -> None:
    """A count that is not a non-negative integer (bool included) is an unexpected shape."""
    with pytest.raises(VendorError, match=f"^data\\.{field}: expected a non-negative integer"):
        parse_job(report(**{field: value}))


def test_wrong_typed_count_message_quotes_value() -> None:
    """The error message names the field path and quotes the offending value."""
    with pytest.raises(VendorError) as caught:
        parse_job(report(totalItems="abc"))
    assert caught.value.reason == "unexpected_shape"
    assert str(caught.value) == 'data.totalItems: expected a non-negative integer, got "abc"'


def test_long_wrong_value_is_cut_in_message() -> None:
    """A long offending string is quoted only in part."""
    with pytest.raises(VendorError) as caught:
        parse_job(report(totalItems="x" * 5000))
    assert len(str(caught.value)) < 150
    assert str(caught.value).endswith("x...")


def test_huge_wrong_number_is_cut_in_message() -> None:
    """A huge non-integer number is quoted only in part."""
    with pytest.raises(VendorError) as caught:
        parse_job(response('{"data": {"isCompleted": true, "errorItems": -' + "9" * 4000 + "}}"))
    assert len(str(caught.value)) < 150


def test_absent_is_completed_is_rejected() -> None:
    """Without ``isCompleted`` the report's state is unknown: an unexpected shape."""
    with pytest.raises(VendorError, match=r"^data\.isCompleted: missing") as caught:
        parse_job(without("isCompleted"))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize("value", [None, "true", "false", 1, 0, [], {}])
def test_non_bool_is_completed_is_rejected(value: object) -> None:
    """``isCompleted`` must be a JSON boolean, not null, a string or a number."""
    with pytest.raises(VendorError, match=r"^data\.isCompleted: expected a boolean") as caught:
        parse_job(report(isCompleted=value))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize("body", ["{}", '{"data": null}', '{"data": []}', '{"data": "x"}'])
def test_data_must_be_an_object(body: str) -> None:
    """A report whose ``data`` is absent or not an object is an unexpected shape."""
    with pytest.raises(VendorError, match=r"^data: ") as caught:
        parse_job(response(body))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        REPORT_EXAMPLE[: len(REPORT_EXAMPLE) // 2].encode(),
        b"",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
    ],
    ids=["html", "truncated", "empty", "binary", "deeply-nested"],
)
def test_non_json_body_is_invalid_json(body: bytes) -> None:
    """A body that is not JSON (proxy page, cut-off answer, nesting bomb) is invalid_json."""
    with pytest.raises(VendorError) as caught:
        parse_job(response(body))
    assert caught.value.reason == "invalid_json"


def test_html_body_is_quoted_briefly() -> None:
    """The invalid_json message quotes only the start of the body."""
    with pytest.raises(VendorError) as caught:
        parse_job(response("<html>" + "x" * 10_000 + "</html>"))
    assert "<html>" in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize("body", ["[]", "[1, 2]", '"data"', "42", "null"])
def test_non_object_top_level_is_unexpected_shape(body: str) -> None:
    """A JSON value other than an object at the top level is an unexpected shape."""
    with pytest.raises(VendorError) as caught:
        parse_job(response(body))
    assert caught.value.reason == "unexpected_shape"


def test_seed_errors_example() -> None:
    """The seed's errors page counts its one item by code and carries the next token."""
    assert parse_errors_page(response(ERRORS_EXAMPLE)) == ErrorsPage(
        counts=(("EV_BAD_REQUEST_DUPLICATE", 1),), next_token=SEED_NEXT_PAGE
    )


def test_errors_page_without_tokens_is_last() -> None:
    """A page without ``nextPageToken`` is the last one."""
    page = parse_errors_page(errors_page([{"restErrorCode": "EV_X"}]))
    assert page == ErrorsPage(counts=(("EV_X", 1),), next_token=None)


def test_errors_page_previous_token_alone_is_last() -> None:
    """Only ``nextPageToken`` leads on; ``previousPageToken`` is ignored."""
    page = parse_errors_page(errors_page([], previousPageToken="prev"))
    assert page.next_token is None


@pytest.mark.parametrize("token", [None, ""])
def test_null_or_empty_next_token_is_last(token: str | None) -> None:
    """A null or empty ``nextPageToken`` does not lead to another page."""
    assert parse_errors_page(errors_page([], nextPageToken=token)).next_token is None


@pytest.mark.parametrize("token", [5, True, [], {}])
def test_non_string_next_token_is_rejected(token: object) -> None:
    """A ``nextPageToken`` that is not a string is an unexpected shape."""
    with pytest.raises(VendorError, match=r"^nextPageToken: expected a string") as caught:
        parse_errors_page(errors_page([], nextPageToken=token))
    assert caught.value.reason == "unexpected_shape"


def test_empty_errors_page_has_no_counts() -> None:
    """A report without errors returns an empty ``data`` array: no counts."""
    assert parse_errors_page(errors_page([])) == ErrorsPage(counts=(), next_token=None)


@pytest.mark.parametrize(
    "item",
    [{"errorMessage": "boom"}, {"restErrorCode": None}, {"restErrorCode": ""}, {}],
    ids=["absent", "null", "empty", "bare-object"],
)
def test_missing_error_code_counts_as_unknown(item: dict[str, object]) -> None:
    """An item without a usable ``restErrorCode`` is counted under ``unknown``."""
    assert parse_errors_page(errors_page([item])).counts == (("unknown", 1),)


def test_errors_are_counted_and_sorted_by_code() -> None:
    """Counts are grouped per code and sorted by code."""
    items: list[object] = [
        {"restErrorCode": "EV_B"},
        {"restErrorCode": "EV_A"},
        {"errorMessage": "no code"},
        {"restErrorCode": "EV_B"},
        {"restErrorCode": ""},
    ]
    page = parse_errors_page(errors_page(items, nextPageToken=SEED_NEXT_PAGE))
    assert page.counts == (("EV_A", 1), ("EV_B", 2), ("unknown", 2))
    assert page.next_token == SEED_NEXT_PAGE


def test_long_error_code_is_bounded() -> None:
    """An absurdly long code is cut to 100 characters before it becomes a label."""
    page = parse_errors_page(errors_page([{"restErrorCode": "E" * 1000}]))
    assert page.counts == (("E" * 100, 1),)


@pytest.mark.parametrize("value", [42, True, ["EV_X"], {"code": "EV_X"}])
def test_non_string_error_code_is_rejected(value: object) -> None:
    """A ``restErrorCode`` that is not a string is an unexpected shape naming its item."""
    items: list[object] = [{"restErrorCode": "EV_X"}, {"restErrorCode": value}]
    with pytest.raises(VendorError, match=r"^data\[1\]\.restErrorCode: expected a string"):
        parse_errors_page(errors_page(items))


@pytest.mark.parametrize("item", ["EV_X", 1, None, []])
def test_non_object_error_item_is_rejected(item: object) -> None:
    """Every ``data`` entry must be an object; the message names its index."""
    with pytest.raises(VendorError, match=r"^data\[1\]: expected an object") as caught:
        parse_errors_page(errors_page([{}, item]))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{}", r"^data: missing, expected an array"),
        ('{"data": null}', r"^data: expected an array, got null"),
        ('{"data": {"restErrorCode": "EV_X"}}', r"^data: expected an array, got an object"),
    ],
)
def test_errors_data_must_be_a_list(body: str, message: str) -> None:
    """An errors page whose ``data`` is absent or not an array is an unexpected shape."""
    with pytest.raises(VendorError, match=message):
        parse_errors_page(response(body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>Service Unavailable</html>", "invalid_json"),
        (ERRORS_EXAMPLE[:100].encode(), "invalid_json"),
        (b"[]", "unexpected_shape"),
    ],
    ids=["html", "truncated", "array"],
)
def test_bad_errors_body(body: bytes, reason: str) -> None:
    """An errors page that is not a JSON object fails with the matching reason."""
    with pytest.raises(VendorError) as caught:
        parse_errors_page(response(body))
    assert caught.value.reason == reason


def test_spec() -> None:
    """The spec wires both parsers and the documented paths."""
    assert SPEC.name == "evocalize_batch_report"
    assert SPEC.vendor == "evocalize"
    assert SPEC.default_path == "management/v1/items/report/{id}"
    assert SPEC.default_errors_path == "management/v1/items/report/{id}/errors"
    assert SPEC.ok_statuses == frozenset({200})
    assert SPEC.parse_job is parse_job
    assert SPEC.parse_errors_page is parse_errors_page
    assert SPEC.describe_error is describe_error
    assert SPEC.signature_key == "evocalize_signature"
    assert SPEC.sign is sign
    assert SPEC.signature_conflicts == frozenset(
        {
            "x-evocalize-client-key",
            "x-evocalize-client-key-id",
            "x-evocalize-timestamp",
            "x-evocalize-signature",
        }
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
REPORT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "data": JSON
        | st.fixed_dictionaries({}, optional=dict.fromkeys((*COUNT_FIELDS, "isCompleted"), JSON))
    },
)
ERRORS_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "data": JSON | st.lists(JSON | st.fixed_dictionaries({}, optional={"restErrorCode": JSON})),
        "nextPageToken": JSON,
    },
)


@given(JSON | REPORT_LIKE)
def test_parse_job_returns_snapshot_or_vendor_error(value: object) -> None:
    """Any JSON value gives a snapshot or a VendorError, never another exception."""
    try:
        result = parse_job(response(json.dumps(value)))
    except VendorError:
        return
    assert isinstance(result, Snapshot)


@given(JSON | ERRORS_LIKE)
def test_parse_errors_page_returns_page_or_vendor_error(value: object) -> None:
    """Any JSON value gives an errors page or a VendorError, never another exception."""
    try:
        result = parse_errors_page(response(json.dumps(value)))
    except VendorError:
        return
    assert isinstance(result, ErrorsPage)


# -- signed requests ("Request And Response", Signature Authentication) -------------

# The docs' key ID, and their client key standing in for a secret; their timestamp example.
KEY_ID = "a5646c38-fc29-11e9-8f0b-362b9e155667"
DOC_SECRET = "690a0ac5a5a219bb4a773f5bc116a325"  # noqa: S105 - the docs' example key
STAMP = 1604094273
HOSTILE_PATH = "/management/v1/items/report/a%2Fb%20c"


def test_signature_of_a_get_is_path_timestamp_and_secret() -> None:
    """No body line for a GET: SHA-256 hex of path, timestamp, secret; the path as sent."""
    exact = f"{HOSTILE_PATH}\n{STAMP}\n{DOC_SECRET}".encode()
    assert string_to_sign(HOSTILE_PATH, STAMP, DOC_SECRET) == exact
    expected = hashlib.sha256(exact).hexdigest()
    assert expected == "f8f38a876afed2b5698d8ff84a6391433a762ff822b6c7ca50ee03538812337d"
    assert signature(HOSTILE_PATH, STAMP, DOC_SECRET) == expected
    assert sign(HOSTILE_PATH, STAMP, KEY_ID, DOC_SECRET) == (
        ("X-Evocalize-Client-Key-Id", KEY_ID),
        ("X-Evocalize-Timestamp", "1604094273"),
        ("X-Evocalize-Signature", expected),
    )


def test_signature_with_a_body_puts_it_on_its_own_line() -> None:
    """A body goes on its own line between path and timestamp; an empty body is none."""
    body = b'{"a":1}'
    assert string_to_sign("/x", STAMP, "s", body) == b'/x\n{"a":1}\n1604094273\ns'
    assert signature("/x", STAMP, "s", body) == (
        "77e29753be574f06440d1a31203b8a3ecfe54355f2a34a88724a296d5a038281"
    )
    assert string_to_sign("/x", STAMP, "s", b"") == b"/x\n1604094273\ns"


def test_signature_depends_on_every_part() -> None:
    """The decoded path, another second or another secret each give another signature."""
    base = signature(HOSTILE_PATH, STAMP, DOC_SECRET)
    others = {
        signature("/management/v1/items/report/a/b c", STAMP, DOC_SECRET),
        signature(HOSTILE_PATH, STAMP + 1, DOC_SECRET),
        signature(HOSTILE_PATH, STAMP, DOC_SECRET + "x"),
    }
    assert base not in others
    assert len(others) == 3


def test_secret_with_non_ascii_and_undecodable_bytes_signs_its_bytes() -> None:
    """A UTF-8 secret hashes as UTF-8; an env var's undecodable byte hashes as that byte."""
    assert string_to_sign("/x", 1, "\u00e9") == b"/x\n1\n\xc3\xa9"
    assert string_to_sign("/x", 1, "\udcff") == b"/x\n1\n\xff"


# -- error answers: {"errors": [{"message", "code", ...}]} ---------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            '{"errors": [{"message": "Unauthorized Request",'
            ' "code": "EV_UNAUTHORIZED_MISSING_HEADERS"}]}',
            "EV_UNAUTHORIZED_MISSING_HEADERS: Unauthorized Request",
        ),
        (
            '{"errors": [{"message": "m", "code": "EV_BAD_REQUEST_INVALID_FIELDS", "field": "id",'
            ' "details": {}}, {"message": "n", "code": "EV_X"}, {}]}',
            "EV_BAD_REQUEST_INVALID_FIELDS: m (field id) (and 2 more)",
        ),
        ('{"errors": [{"code": "EV_OBJECT_NOT_FOUND"}]}', "EV_OBJECT_NOT_FOUND"),
        ('{"errors": [{"message": "line\\nbreak\\u0007"}]}', "line break "),
        ('{"errors": [{"code": 404, "message": null}]}', "404"),
        ('{"message": "plain", "code": "proxy"}', "proxy: plain"),
        ('{"errors": [{}]}', None),
        ('{"errors": []}', None),
        ('{"errors": ["EV_X"]}', None),
        ('{"errors": "EV_X"}', None),
        ("<html>Bad gateway</html>", None),
    ],
)
def test_describe_error_reads_the_envelope(body: str, text: str | None) -> None:
    """The first error's code and message (and how many more); anything else falls back."""
    assert describe_error(response(body, status=401)) == text
    assert SPEC.error_text(response(body, status=401)) == text


def test_describe_error_is_bounded() -> None:
    """A huge code or message is cut to 200 characters each: one short log line."""
    body = json.dumps({"errors": [{"code": "C" * 1000, "message": "m" * 5000}]})
    assert describe_error(response(body, status=400)) == "C" * 200 + ": " + "m" * 200
