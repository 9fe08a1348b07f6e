"""Job records: the strict JSON form round-trips, and a table entry becomes a record."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.jobs.keys import Origin
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status
from exporter.state.records import JobRecord, decode, encode, from_entry

T = TypeVar("T")
SNAP = Snapshot(
    Status.COMPLETED,
    "DONE",
    total_items=10,
    remaining_items=0,
    completed_items=10,
    successful_items=7,
    error_items=3,
    created=1_700_000_000.25,
    finished=1_700_000_100,
    info=(("name", 'we"ird\nname'), ("format", "csv")),
)


def record(job_id: str = "j1", **changes: Any) -> JobRecord:
    """A finished job's record, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "source": "fs",
        "job_id": job_id,
        "api": "batch_import_job",
        "origin": Origin.API,
        "labels": (("team", "growth"),),
        "first_seen": 1_700_000_001.5,
        "seen_finished": 1_700_000_101.0,
        "snapshot": SNAP,
        "errors_by_code": (("E1", 2), ("E2", 1)),
        "poll_success": True,
        "last_success": 1_700_000_101.0,
        "expires_at": 1_700_003_701.0,
    }
    return JobRecord(**(fields | changes))


def _opt(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


_numbers = st.integers() | st.floats(allow_nan=False)
_pairs = st.lists(st.tuples(st.text(), st.text())).map(tuple)
_snapshots = st.builds(
    Snapshot,
    status=st.sampled_from(Status),
    vendor_status=st.text(),
    total_items=_opt(st.integers()),
    remaining_items=_opt(st.integers()),
    completed_items=_opt(st.integers()),
    successful_items=_opt(st.integers()),
    error_items=_opt(st.integers()),
    created=_opt(_numbers),
    finished=_opt(_numbers),
    info=_pairs,
)
_records = st.builds(
    JobRecord,
    source=st.text(),
    job_id=st.text(),
    api=st.text(),
    origin=st.sampled_from(Origin),
    labels=_pairs,
    first_seen=_opt(_numbers),
    seen_finished=_opt(_numbers),
    snapshot=_opt(_snapshots),
    errors_by_code=_opt(st.lists(st.tuples(st.text(), st.integers())).map(tuple)),
    poll_success=_opt(st.booleans()),
    last_success=_opt(_numbers),
    expires_at=_opt(_numbers),
    pending_finish=_opt(_snapshots),
    pending_finish_at=_opt(_numbers),
)


@given(_records)
def test_any_record_round_trips_exactly(rec: JobRecord) -> None:
    """decode(encode(r)) is r, down to int versus float, -0.0 and infinity."""
    assert repr(decode(encode(rec))) == repr(rec)


@pytest.mark.parametrize(
    "rec",
    [
        record(),
        record(
            snapshot=None, errors_by_code=None, poll_success=None, first_seen=None,
            seen_finished=None, last_success=None, expires_at=None, labels=(),
        ),
        record(job_id="a/../b \"é\" \\ \n \U0001f600", poll_success=False, errors_by_code=()),
        record(snapshot=Snapshot(Status.UNKNOWN, ""), first_seen=-0.0, expires_at=2**70),
    ],
    ids=["full", "empty", "odd-strings", "edges"],
)  # fmt: skip
def test_edge_records_round_trip(rec: JobRecord) -> None:
    """None stays None, an empty tuple stays empty, odd characters and big numbers survive."""
    assert repr(decode(encode(rec))) == repr(rec)


def test_decode_takes_a_record_without_its_optional_fields() -> None:
    """A record missing every field that may be None decodes with None and no labels."""
    rec = decode('{"source":"s","job_id":"j","api":"a","origin":"dir"}')
    assert rec == JobRecord("s", "j", "a", Origin.DIR, (), None, None, None, None, None, None, None)
    assert rec.origin is Origin.DIR
    snap = decode(
        '{"source":"s","job_id":"j","api":"a","origin":"dir",'
        '"snapshot":{"status":"running","vendor_status":"X","unknown_key":1}}'
    ).snapshot
    assert snap == Snapshot(Status.RUNNING, "X")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '{"job_id":"j","api":"a","origin":"api"}',
        '{"source":1,"job_id":"j","api":"a","origin":"api"}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","labels":[["a"]]}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","labels":"ab"}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","first_seen":"1"}',
        '{"source":"s","job_id":"j","api":"a","origin":"elsewhere"}',
        '{"source":"s","job_id":"j","api":"a","origin":1}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","poll_success":1}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","errors_by_code":[["E",true]]}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","snapshot":[]}',
        '{"source":"s","job_id":"j","api":"a","origin":"api","snapshot":{"status":"x"}}',
        '{"source":"s","job_id":"j","api":"a","origin":"api",'
        '"snapshot":{"status":"running","vendor_status":"X","total_items":1.5}}',
    ],
)
def test_decode_rejects_what_is_not_a_record(text: str) -> None:
    """Bad JSON, a missing key, a wrong type, an unknown origin or status is a ValueError."""
    with pytest.raises(ValueError, match=r"."):
        decode(text)


def test_from_entry_keeps_the_origin_and_own_labels() -> None:
    """A table entry's origin and labels become the record's; its values carry over."""
    table = JobTable(retention=3600)
    entry = table.add(("fs", "j1"), "batch_import_job", (("team", "growth"),), Origin.API)
    table.record_success(("fs", "j1"), SNAP, 1_700_000_101.0)
    table.record_errors(("fs", "j1"), (("E1", 2), ("E2", 1)))
    rec = from_entry(entry)
    assert rec == record(first_seen=1_700_000_101.0)
    bare = from_entry(table.add(("fs", "j2"), "batch_import_job", (("team", "x"),)))
    assert (bare.origin, bare.labels, bare.snapshot) == (Origin.CONFIG, (("team", "x"),), None)


def test_the_origin_is_a_plain_string_in_json() -> None:
    """On disk the origin stays the string field it always was."""
    doc = json.loads(encode(record(origin=Origin.DIR)))
    assert (doc["origin"], type(doc["origin"])) == ("dir", str)
    assert decode(encode(record(origin=Origin.DIR))).origin is Origin.DIR
