"""An errors listing's own signals: "not ready" answers, repeated page tokens, its total.

The unit tests script a fake client (see ``test_poller_paths``) whose API answers
202 while its listing is not ready and pages carry a ``total``; the end-to-end
ones read Fullstory's listing from the simulator over loopback.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from exporter.model import ErrorsPage, Response, Snapshot, Status
from exporter.simulator.vendors import fullstory
from tests.harness import FS, Harness, source_yaml
from tests.polling.test_errors_read import poll_until_done
from tests.polling.test_poller_paths import DONE, INTERVAL, SOURCE, SPEC, A, Rig, answer, rig

MakeHarness = Callable[..., Awaitable[Harness]]
LISTING = "exporter.polling.errors_read"
DONE_SNAP = Snapshot(Status.COMPLETED, "completed", remaining_items=0)  # DONE, parsed


def _parse_page(resp: Response) -> ErrorsPage:
    """The fake API's errors page with its total: ``{"counts": ..., "next": ..., "total": n}``."""
    body = json.loads(resp.body)
    return ErrorsPage(tuple(sorted(body["counts"].items())), body.get("next"), body.get("total"))


def listing_rig(*, retention: float = 600.0) -> Rig:
    """One job, on a fake API whose listing answers 202 until it is ready."""
    r = rig(jobs=("a",))
    r.runtime.spec = replace(
        SPEC, errors_pending_statuses=frozenset({202}), parse_errors_page=_parse_page
    )
    r.table.retention = retention
    return r


def page(counts: dict[str, int], nxt: str | None = None, total: int | None = None) -> Response:
    """One errors page, with a next-page token and the listing's total where given."""
    extra = {"next": nxt} if nxt else {}
    return answer(200, {"counts": counts, **extra, **({"total": total} if total else {})})


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The errors read's log lines at ``level``."""
    return [
        rec.getMessage() for rec in caplog.records if rec.name == LISTING and rec.levelno == level
    ]


# -- not ready yet ----------------------------------------------------------------------------


async def test_a_listing_not_ready_is_asked_again_each_interval_without_failing() -> None:
    """Two 202s: each poll comes back after the interval; nothing failed; the job asked once."""
    r = listing_rig()
    r.client.script = [DONE, answer(202), answer(202), page({"E": 2})]
    delays = await poll_until_done(r, 5)
    assert delays == [INTERVAL, INTERVAL, None]
    assert r.paths() == ["/jobs/a", "/jobs/a/errors", "/jobs/a/errors", "/jobs/a/errors"]
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code, entry.poll_success) == (True, (("E", 2),), True)
    assert r.stats.failed == Counter()


async def test_while_the_listing_is_not_ready_the_job_waits_unfinished() -> None:
    """Until its listing answers, the job keeps its pending finish and has no error counts."""
    r = listing_rig()
    r.client.script = [DONE, answer(202)]
    assert await r.poller.poll(A) == INTERVAL
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code, entry.pending_finish) == (False, None, DONE_SNAP)


async def test_a_listing_not_ready_mid_read_resumes_from_its_page() -> None:
    """A 202 after the first page: the next poll asks for the second page, nothing counted twice."""
    r = listing_rig()
    r.client.script = [DONE, page({"E": 1}, "p0"), answer(202), page({"E": 2, "F": 1})]
    assert await poll_until_done(r, 5) == [INTERVAL, None]
    resumed = "/jobs/a/errors?pageToken=p0"
    assert r.paths()[1:] == ["/jobs/a/errors", resumed, resumed]
    entry = r.table.get(A)
    assert entry is not None
    assert entry.errors_by_code == (("E", 3), ("F", 1))


async def test_a_listing_never_ready_is_given_up_after_the_retention(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """202 for 30 s of retention: the job is recorded finished without counts, one warning."""
    r = listing_rig(retention=30.0)
    r.client.script = [DONE]
    r.client.default = answer(202)
    caplog.set_level(logging.DEBUG, logger=LISTING)
    assert await poll_until_done(r, 10) == [INTERVAL, INTERVAL, INTERVAL, None]
    assert r.paths() == ["/jobs/a"] + ["/jobs/a/errors"] * 4
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code, entry.poll_success) == (True, (), True)
    assert r.stats.failed == Counter()
    assert messages(caplog, logging.WARNING) == [
        "errors of src/a: listing still not ready (HTTP 202) 30s after the job finished; "
        "recording it finished with the 0 pages read"
    ]


async def test_a_202_is_a_failure_for_an_api_that_does_not_say_otherwise() -> None:
    """Without 202 among its pending statuses an API's 202 listing fails the poll."""
    r = rig(jobs=("a",))
    r.client.script = [DONE, answer(202)]
    assert await r.poller.poll(A) is not None
    assert r.stats.failed == Counter({(SOURCE, "errors_endpoint"): 1})


async def test_an_unexpected_listing_answer_is_logged_with_the_vendors_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 400 on the listing fails the poll and quotes the vendor's code and message once."""
    r = listing_rig()
    r.client.script = [DONE, answer(400, {"code": "invalid_argument", "message": "bad token"})]
    caplog.set_level(logging.WARNING, logger=LISTING)
    await r.poller.poll(A)
    assert messages(caplog, logging.WARNING) == [
        "errors of src/a: unexpected answer: invalid_argument: bad token"
    ]
    assert r.stats.failed == Counter({(SOURCE, "errors_endpoint"): 1})


# -- page tokens and totals -------------------------------------------------------------------


async def test_a_repeated_page_token_ends_the_read_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """p0, p1, then p0 again: three pages are counted, the fourth is never asked for."""
    r = listing_rig()
    r.client.script = [DONE, page({"E": 1}, "p0"), page({"E": 1}, "p1"), page({"F": 1}, "p0")]
    caplog.set_level(logging.DEBUG, logger=LISTING)
    assert await r.poller.poll(A) is None
    assert r.paths()[1:] == [
        "/jobs/a/errors",
        "/jobs/a/errors?pageToken=p0",
        "/jobs/a/errors?pageToken=p1",
    ]
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code) == (True, (("E", 2), ("F", 1)))
    assert messages(caplog, logging.WARNING) == [
        "errors of src/a: the listing repeated a page token; stopped after 3 pages, "
        "its error counts may be truncated"
    ]


async def test_a_listing_repeating_its_token_forever_costs_two_requests() -> None:
    """Every page names the same next token: the second page is the last one asked for."""
    r = listing_rig()
    r.client.script = [DONE]
    r.client.default = page({"E": 1}, "same")
    assert await r.poller.poll(A) is None
    assert r.paths() == ["/jobs/a", "/jobs/a/errors", "/jobs/a/errors?pageToken=same"]


async def test_pages_listing_fewer_failures_than_the_total_say_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two pages of 3 failures in all, the last saying 5: one info line names both counts."""
    r = listing_rig()
    r.client.script = [DONE, page({"E": 2}, "p0", total=5), page({"F": 1}, total=5)]
    caplog.set_level(logging.DEBUG, logger=LISTING)
    assert await r.poller.poll(A) is None
    assert messages(caplog, logging.INFO) == [
        "errors of src/a: the listing counts 5 failures but its 2 pages list 3"
    ]
    entry = r.table.get(A)
    assert entry is not None
    assert entry.errors_by_code == (("E", 2), ("F", 1))


@pytest.mark.parametrize(
    ("first", "last"),
    [(None, None), (3, 3), (9, 3), (None, 2)],
    ids=["none", "equal", "last", "more"],
)
async def test_pages_adding_up_to_the_last_pages_total_are_not_remarked(
    caplog: pytest.LogCaptureFixture, first: int | None, last: int | None
) -> None:
    """No total, the total met (or exceeded), or only an earlier page's total short: no line."""
    r = listing_rig()
    r.client.script = [DONE, page({"E": 2}, "p0", total=first), page({"F": 1}, total=last)]
    caplog.set_level(logging.DEBUG, logger=LISTING)
    assert await r.poller.poll(A) is None
    assert messages(caplog, logging.INFO) == []


# -- Fullstory over loopback ------------------------------------------------------------------


def errors_by_code(h: Harness, source: str, job_id: str) -> dict[str, float]:
    """The job's batchjob_errors_by_code series, by code."""
    return {
        dict(labels)["code"]: value
        for (name, labels), value in h.samples().items()
        if name == "batchjob_errors_by_code" and dict(labels)["job_id"] == job_id
        if dict(labels)["source"] == source
    }


def error_codes(errors: int) -> dict[str, int]:
    """The first ``errors`` simulated Fullstory failures by code, as the exporter counts them."""
    counts = fullstory.VENDOR.error_code_counts(errors)
    return {code or "unknown": n for code, n in counts.items()}


def listing_paths(h: Harness, job_id: str) -> list[str]:
    """The raw paths of the listing requests for ``job_id``, in order."""
    return [r.raw_path for r in h.sim.requests if r.job_id == job_id and "/errors" in r.raw_path]


async def test_a_failed_fullstory_import_counts_its_errors_over_every_page(
    make_harness: MakeHarness,
) -> None:
    """FAILED: every page of its listing is summed by code; a COMPLETED import's is never read."""
    h = await make_harness(errors_page_size=3)
    h.sim.add_job(FS, "bad", total=20, rate=1000, error_every=2, outcome="failed")  # 10, 4 pages
    h.sim.add_job(FS, "users", total=10, rate=1000, error_every=5, outcome="failed")  # 2 errors
    h.sim.add_job(FS, "good", total=20, rate=1000, error_every=2)
    h.clock.advance(5)
    users = "    path: v2/users/batch/{id}\n"
    await h.start(
        source_yaml(h.sim, FS, "fs", ["bad", "good"])
        + source_yaml(h.sim, FS, "fs-users", ["users"], extra=users)
    )
    await h.advance(30)
    assert (h.status("fs", "bad"), h.status("fs", "good")) == ("failed", "completed")
    assert errors_by_code(h, "fs", "bad") == error_codes(10)
    assert sum(error_codes(10).values()) == 10
    assert h.value("batchjob_error_items", source="fs", job_id="bad") == 10
    paths = listing_paths(h, "bad")
    assert len(paths) == 4
    assert paths[0] == "/fullstory/v2/events/batch/bad/errors"
    assert all("/errors?page_token=" in path for path in paths[1:])
    assert listing_paths(h, "good") == []
    assert errors_by_code(h, "fs", "good") == {}
    assert h.value("batchjob_error_items", source="fs", job_id="good") == 0
    assert listing_paths(h, "users") == ["/fullstory/v2/users/batch/users/errors"]
    assert errors_by_code(h, "fs-users", "users") == error_codes(2)


async def test_a_fullstory_listing_repeating_its_token_forever_costs_two_requests(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The simulator's looping listing is read twice, then the job is failed with those pages."""
    h = await make_harness(errors_page_size=2)
    job_id = "fs-loop"
    h.sim.add_job(
        FS,
        job_id,
        total=20,
        rate=1000,
        error_every=2,
        outcome="failed",
        loop_token=True,
        string_counts=True,
    )
    h.clock.advance(5)
    caplog.set_level(logging.WARNING, logger=LISTING)
    await h.start(source_yaml(h.sim, FS, "fs", [job_id]))
    await h.advance(30)
    assert h.status("fs", job_id) == "failed"
    assert len(listing_paths(h, job_id)) == 2
    assert len(h.requests(FS)) == 3  # the job once, the listing twice
    assert errors_by_code(h, "fs", job_id) == error_codes(4)
    assert h.value("batchjob_error_items", source="fs", job_id=job_id) == 10  # sent as "10"
    assert messages(caplog, logging.WARNING) == [
        f"errors of fs/{job_id}: the listing repeated a page token; stopped after 2 pages, "
        "its error counts may be truncated"
    ]
