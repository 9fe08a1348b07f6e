"""Talkdesk Explore report job parser (seed 002)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.model import Response, Snapshot, Status, VendorError
from exporter.vendors.talkdesk import SPEC, parse_job

# Seed 002 documents the body as a table, without an example; this one follows
# it field by field (statuses in lower case, as the live API sends them).
JOB_EXAMPLE = """
{
  "job": {
    "id": "12b5d9a3e8f34d2c9d1f0a1b2c3d4e5f",
    "name": "Calls Report",
    "timezone": "Europe/Lisbon",
    "status": "processing",
    "format": "csv",
    "timespan": {"from": "2024-03-01T00:00:00Z", "to": "2024-03-31T23:59:59Z"}
  },
  "_links": {
    "self": {"href": "https://api.talkdeskapp.com/data/reports/calls/jobs/12b5d9a3"},
    "files": {"href": "https://api.talkdeskapp.com/data/reports/calls/files/12b5d9a3"}
  }
}
"""

# Verbatim error shape from seed 002 (400/401/403/404): code, message, fields.
NOT_FOUND_EXAMPLE = '{"code": "0000404", "message": "Report job not found", "fields": []}'

# Verbatim from the Reporting API docs (Talkdesk/api, reporting-api/README.md): a done
# report answers "303 See Other" to its files URL, the body "still returning the updated
# job status", at the top level rather than under "job".
SEE_OTHER_LOCATION = "https://api.talkdeskdev.com/reports/calls/files/57add63204c799583700028e"
SEE_OTHER_EXAMPLE = """
{
	"id": "57add63204c799583700028e",
	"status": "done",
	"timespan": {
		"from": "2016-07-29 00:00:00 UTC",
		"to": "2016-07-29 23:59:59 UTC"
	},
	"_links": {
		"self": {
			"href": "https://api.talkdeskdev.com/reports/calls/jobs/57add63204c799583700028e"
		},
		"files": {
			"href": "https://api.talkdeskdev.com/reports/calls/files/57add63204c799583700028e"
		}
	}
}
"""

# The Explore "Download a Report" page's 303 Location default.
EXPLORE_FILE_LOCATION = "https://s3.amazonaws.com/td-sandbox-public-api-mock/calls.json"
SIGNED = "https://td-reports.s3.amazonaws.com/calls.csv?X-Amz-Signature=deadbeefsecret"
INFO = (("name", "Calls Report"), ("format", "csv"), ("timezone", "Europe/Lisbon"))
# 300: the Explore reference page; 303: the Reporting API and the Explore file endpoint's
# page; 302: the file URL's redirect to S3; the rest: any redirect at all.
REDIRECTS = [300, 301, 302, 303, 304, 305, 307, 308, 399]


def response(body: str | bytes, status: int = 200, location: str | None = None) -> Response:
    """Build a response from a body, with an optional ``Location`` header."""
    raw = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": "application/json"}
    if location is not None:
        headers["Location"] = location
    return Response(status=status, headers=headers, body=raw)


def job_body(http_status: int = 200, /, **job: object) -> Response:
    """Build a response from the example with ``job`` fields replaced (``None`` removes one)."""
    body: dict[str, object] = json.loads(JOB_EXAMPLE)
    inner = body["job"]
    assert isinstance(inner, dict)
    for key, value in job.items():
        if value is None:
            del inner[key]
        else:
            inner[key] = value
    return response(
        json.dumps(body),
        status=http_status,
        location=SIGNED if 300 <= http_status < 400 else None,
    )


def test_example_processing_job() -> None:
    """A processing job is running, keeps its raw status and gives name, format and timezone."""
    assert parse_job(response(JOB_EXAMPLE)) == Snapshot(
        status=Status.RUNNING, vendor_status="processing", info=INFO
    )


STATUS_TABLE = [
    ("created", Status.PENDING),
    ("processing", Status.RUNNING),
    ("uploading", Status.RUNNING),
    ("sending", Status.RUNNING),
    ("done", Status.COMPLETED),
    ("failed", Status.FAILED),
    ("canceled", Status.CANCELED),
    ("cancelled", Status.CANCELED),
    ("deleted", Status.DELETED),
]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        *STATUS_TABLE,
        *((raw.upper(), status) for raw, status in STATUS_TABLE),
        *((raw.capitalize(), status) for raw, status in STATUS_TABLE),
    ],
)
def test_status_mapping_ignores_case(raw: str, status: Status) -> None:
    """Every documented status maps whatever its case, and vendor_status is the raw text."""
    snapshot = parse_job(job_body(status=raw))
    assert (snapshot.status, snapshot.vendor_status) == (status, raw)


@pytest.mark.parametrize("raw", ["queued", "sent", "", "done ", "d\u00f6ne", "process\u0131ng"])
def test_unknown_status_keeps_raw_value(raw: str) -> None:
    """An undocumented status is unknown and vendor_status is the raw text."""
    snapshot = parse_job(job_body(status=raw))
    assert (snapshot.status, snapshot.vendor_status) == (Status.UNKNOWN, raw)


def test_long_status_is_bounded() -> None:
    """vendor_status is cut to 100 characters."""
    assert parse_job(job_body(status="s" * 500)).vendor_status == "s" * 100


def test_info_keeps_only_strings_in_order() -> None:
    """Info lists name, format, timezone in that order, skipping absent and non-string ones."""
    snapshot = parse_job(job_body(name=None, format=["csv"], timezone="UTC"))
    assert snapshot.info == (("timezone", "UTC"),)
    assert parse_job(job_body(name=None, format=None, timezone=None)).info == ()


def test_info_values_are_bounded() -> None:
    """Each info value is cut to 200 characters."""
    snapshot = parse_job(job_body(name="n" * 1000))
    assert snapshot.info[0] == ("name", "n" * 200)


def test_no_item_counts() -> None:
    """The report API has no item counts or timestamps: all stay ``None``."""
    snapshot = parse_job(job_body(status="done"))
    assert snapshot.total_items is None
    assert snapshot.remaining_items is None
    assert snapshot.completed_items is None
    assert snapshot.successful_items is None
    assert snapshot.error_items is None
    assert snapshot.created is None
    assert snapshot.finished is None


@pytest.mark.parametrize("code", REDIRECTS)
@pytest.mark.parametrize("body", [b"", b"  \r\n"])
def test_redirect_with_empty_body_is_completed(body: bytes, code: int) -> None:
    """Any 3xx with Location and an empty body means the file exists: completed, done."""
    snapshot = parse_job(response(body, status=code, location=SIGNED))
    assert snapshot == Snapshot(status=Status.COMPLETED, vendor_status="done")


def test_reporting_api_see_other_example_is_completed() -> None:
    """The Reporting API's documented 303 See Other (body at the top level) is completed/done."""
    snapshot = parse_job(response(SEE_OTHER_EXAMPLE, status=303, location=SEE_OTHER_LOCATION))
    assert snapshot == Snapshot(status=Status.COMPLETED, vendor_status="done")


@pytest.mark.parametrize("location", [EXPLORE_FILE_LOCATION, SIGNED])
@pytest.mark.parametrize("code", [302, 303])
def test_explore_redirect_to_s3_file_is_completed(code: int, location: str) -> None:
    """A 302/303 with the Explore job body and an S3 Location keeps status and info."""
    snapshot = parse_job(
        response(JOB_EXAMPLE.replace('"processing"', '"done"'), status=code, location=location)
    )
    assert snapshot == Snapshot(status=Status.COMPLETED, vendor_status="done", info=INFO)


@pytest.mark.parametrize("location", [None, "", "   "])
@pytest.mark.parametrize("code", REDIRECTS)
def test_redirect_without_location_fails_the_poll(code: int, location: str | None) -> None:
    """A 3xx without a (non-blank) Location is not a finished report: a VendorError."""
    with pytest.raises(VendorError) as caught:
        parse_job(response(b"", status=code, location=location))
    assert caught.value.reason == "unexpected_status"
    assert str(caught.value) == f"HTTP {code} without a Location header"


@pytest.mark.parametrize("code", REDIRECTS)
def test_redirect_without_location_never_quotes_its_body(code: int) -> None:
    """The failure's message names the code only, not the signed links its body may carry."""
    body = JOB_EXAMPLE.replace(
        "https://api.talkdeskapp.com/data/reports/calls/files/12b5d9a3", SIGNED
    )
    assert json.loads(body)["_links"]["files"]["href"] == SIGNED
    with pytest.raises(VendorError) as caught:
        parse_job(response(body, status=code))
    assert str(caught.value) == f"HTTP {code} without a Location header"


@pytest.mark.parametrize("code", [300, 303])
def test_redirect_with_job_body_keeps_info_and_raw_status(code: int) -> None:
    """A 3xx with the job body is completed and keeps the raw status and info."""
    snapshot = parse_job(job_body(code, status="DONE"))
    assert snapshot == Snapshot(status=Status.COMPLETED, vendor_status="DONE", info=INFO)


@pytest.mark.parametrize("raw", [None, "", 7])
def test_redirect_without_usable_status_is_done(raw: object) -> None:
    """A 3xx whose job lacks a string status is completed with vendor_status done."""
    snapshot = parse_job(job_body(303, status=raw))
    assert snapshot.status is Status.COMPLETED
    assert snapshot.vendor_status == "done"
    assert snapshot.info == (() if raw == 7 else INFO)


@pytest.mark.parametrize("raw", ["processing", "sending"])
def test_redirect_status_code_wins_over_body_status(raw: str) -> None:
    """A 3xx is completed even if its body still says it runs (the file exists)."""
    snapshot = parse_job(job_body(302, status=raw))
    assert snapshot.status is Status.COMPLETED
    assert snapshot.vendor_status == raw


@pytest.mark.parametrize("code", [300, 302, 303])
@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Multiple Choices</body></html>",
        JOB_EXAMPLE[:80].encode(),
        b"[]",
        b"{}",
        b'{"job": null}',
        b'{"job": "done"}',
        NOT_FOUND_EXAMPLE.encode(),
    ],
    ids=["html", "truncated", "array", "empty-object", "null-job", "string-job", "error-body"],
)
def test_redirect_with_unusable_body_is_still_completed(body: bytes, code: int) -> None:
    """At 3xx the status code is the truth: any body it cannot read gives completed/done."""
    snapshot = parse_job(response(body, status=code, location=SIGNED))
    assert snapshot == Snapshot(status=Status.COMPLETED, vendor_status="done")


def test_location_url_is_never_kept() -> None:
    """The (possibly signed) Location URL appears nowhere in the snapshot, whatever the code."""
    body = JOB_EXAMPLE.replace('"processing"', '"done"')
    answers = [response(body, code, SIGNED) for code in REDIRECTS]
    answers += [response(b"", code, SIGNED) for code in REDIRECTS]
    answers.append(response(body, 200, SIGNED))
    for resp in answers:
        snapshot = parse_job(resp)
        assert "deadbeefsecret" not in repr(snapshot)
        assert "amazonaws" not in repr(snapshot)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"_links": {}}', r"^job: missing, expected an object"),
        ('{"job": null}', r"^job: expected an object, got null"),
        ('{"job": ["done"]}', r"^job: expected an object, got an array"),
        ('{"job": {"id": "x"}}', r"^job\.status: missing, expected a string"),
        ('{"job": {"status": null}}', r"^job\.status: expected a string, got null"),
        ('{"job": {"status": true}}', r"^job\.status: expected a string, got true"),
    ],
)
def test_200_requires_job_and_status(body: str, message: str) -> None:
    """At 200 the body must carry ``job.status`` as a string; the message names the path."""
    with pytest.raises(VendorError, match=message) as caught:
        parse_job(response(body))
    assert caught.value.reason == "unexpected_shape"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><head><title>Bad Gateway</title></head></html>", "invalid_json"),
        (JOB_EXAMPLE[:120].encode(), "invalid_json"),
        (b"", "invalid_json"),
        (b'{"job":' * 60_000, "invalid_json"),
        (b"[]", "unexpected_shape"),
        (f"[{JOB_EXAMPLE}]".encode(), "unexpected_shape"),
        (NOT_FOUND_EXAMPLE.encode(), "unexpected_shape"),
    ],
    ids=["html", "truncated", "empty", "deeply-nested", "empty-array", "array", "error-body"],
)
def test_200_bad_body(body: bytes, reason: str) -> None:
    """At 200 a body that is not a job object fails with invalid_json or unexpected_shape."""
    with pytest.raises(VendorError) as caught:
        parse_job(response(body))
    assert caught.value.reason == reason


def test_spec() -> None:
    """The spec takes the report type as a path parameter and accepts 200 and every 3xx."""
    assert SPEC.name == "report_job"
    assert SPEC.vendor == "talkdesk"
    assert SPEC.default_path == "data/reports/{report_type}/jobs/{id}"
    assert SPEC.path_params == ("report_type",)
    assert SPEC.ok_statuses == frozenset({200, *range(300, 400)})
    assert SPEC.parse_job is parse_job
    assert SPEC.default_errors_path is None
    assert SPEC.parse_errors_page is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
JOB_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "job": JSON
        | st.fixed_dictionaries(
            {},
            optional={
                key: JSON | st.sampled_from(["done", "FAILED", "Uploading"])
                for key in ("status", "name", "format", "timezone")
            },
        ),
        "_links": JSON,
    },
)


@given(JSON | JOB_LIKE, st.sampled_from([200, *REDIRECTS]))
def test_parse_job_returns_snapshot_or_vendor_error(value: object, status: int) -> None:
    """Any JSON value at 200 or 3xx gives a snapshot or a VendorError, never another exception."""
    try:
        result = parse_job(response(json.dumps(value), status=status, location=SIGNED))
    except VendorError:
        assert status == 200
        return
    assert isinstance(result, Snapshot)
