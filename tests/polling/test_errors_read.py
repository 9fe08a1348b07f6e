"""Reading a finished job's errors pages: under a rate cap, after a 429, and past the page limit.

The first two run end to end against the simulator; the page limit is passed to a
poller over a fake client (see ``test_poller_paths``).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from exporter.jobs.keys import Origin
from exporter.model import Response, Snapshot, Status
from exporter.polling.errors_read import MAX_READ_FAILURES
from exporter.simulator import Fault
from exporter.simulator.vendors import evocalize
from exporter.state.records import JobRecord
from exporter.state.storage import SqliteStore
from tests.harness import EVO, Harness, source_yaml
from tests.polling.test_poller_paths import DONE, SOURCE, SPEC, A, Rig, answer, rig

MakeHarness = Callable[..., Awaitable[Harness]]

CAP = "    max_requests_per_second: 0.5\n"


def errors_by_code(h: Harness, job_id: str) -> dict[str, float]:
    """The job's batchjob_errors_by_code series, by code."""
    return {
        dict(labels)["code"]: value
        for (name, labels), value in h.samples().items()
        if name == "batchjob_errors_by_code" and dict(labels)["job_id"] == job_id
    }


def expected_codes(errors: int) -> dict[str, float]:
    """What the simulator's first ``errors`` errors count as, missing codes as "unknown"."""
    return {code or "unknown": n for code, n in evocalize.VENDOR.error_code_counts(errors).items()}


def evo_times(h: Harness) -> list[float]:
    """Fake wall times of every Evocalize request, job and errors pages alike, in order."""
    return sorted(h.requests(EVO))


def error_pages(h: Harness) -> list[float]:
    """Fake wall times of the errors-page requests."""
    return [r.time for r in h.sim.requests if r.api == EVO and "/errors" in r.raw_path]


def within_cap(h: Harness) -> bool:
    """Whether Evocalize requests were never closer together than the 0.5/s cap allows."""
    return all(b - a >= 2.0 for a, b in itertools.pairwise(evo_times(h)))


async def advance_until(h: Harness, check: Callable[[], bool], what: str) -> None:
    """Step the fake clock a second at a time until ``check`` holds, at most 100 s."""
    for _ in range(100):
        if check():
            return
        await h.advance(1)
    pytest.fail(f"never happened: {what}")


async def test_rate_capped_source_finishes_jobs_and_reads_every_errors_page(
    make_harness: MakeHarness,
) -> None:
    """Under a rate cap finished jobs complete with their error counts, within the cap, as seen."""
    h = await make_harness()
    h.sim.add_job(EVO, "with-errors", total=20, rate=20, error_every=2)  # 10 errors, 5 pages
    h.sim.add_job(EVO, "clean", total=20, rate=20)
    h.clock.advance(5)  # both finished before the first look
    jobs = ["with-errors", "clean"]
    await h.start(source_yaml(h.sim, EVO, "evo", jobs, extra=CAP))
    await h.advance(100)
    assert h.status("evo", "with-errors") == "completed"
    assert h.status("evo", "clean") == "completed"
    assert errors_by_code(h, "with-errors") == expected_codes(10)
    assert errors_by_code(h, "clean") == {}
    assert len(error_pages(h)) == 5 + 1
    assert within_cap(h), evo_times(h)
    # The job is as its job request saw it, not as of the read's last page, seconds later.
    (seen,) = [
        r.time
        for r in h.sim.requests
        if r.api == EVO and "/with-errors" in r.raw_path and "/errors" not in r.raw_path
    ]
    assert seen < max(error_pages(h))
    last_success = h.value(
        "batchjob_last_poll_success_timestamp_seconds", source="evo", job_id="with-errors"
    )
    assert last_success == seen


async def test_a_429_on_an_errors_page_is_honoured_and_the_read_completes(
    make_harness: MakeHarness,
) -> None:
    """A Retry-After met mid-read silences the source for its window; the counts stay right."""
    h = await make_harness(errors_page_size=1)
    h.sim.add_job(EVO, "r", total=20, rate=20, error_every=2)  # 10 errors, 10 pages
    h.clock.advance(5)
    await h.start(source_yaml(h.sim, EVO, "evo", ["r"], extra=CAP))
    await advance_until(h, lambda: len(error_pages(h)) >= 2, "two errors pages read")
    h.sim.set_fault(EVO, Fault("rate_limit", retry_after="40", count=1))
    await advance_until(h, lambda: any(r.status == 429 for r in h.sim.requests), "a 429")
    limited = next(r.time for r in h.sim.requests if r.status == 429)
    # The read goes on from the page the 429 refused: the finish stays as first seen, so
    # the job is checked before its retention (2 min from that sight) takes it away.
    await advance_until(h, lambda: h.status("evo", "r") == "completed", "the read to finish")
    assert not [t for t in evo_times(h) if limited < t < limited + 40]
    assert errors_by_code(h, "r") == expected_codes(10)
    assert within_cap(h), evo_times(h)


async def test_hitting_the_errors_page_limit_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """Stopping at the page limit logs one warning naming source and job; counts are partial."""
    r = rig(jobs=("a",), max_error_pages=3)
    pages = [answer(200, {"counts": {"E": 2}, "next": f"p{i}"}) for i in range(5)]
    r.client.script = [DONE, *pages]
    caplog.set_level(logging.DEBUG)
    assert await r.poller.poll(A) is None
    assert r.paths() == [
        "/jobs/a",
        "/jobs/a/errors",
        "/jobs/a/errors?pageToken=p0",
        "/jobs/a/errors?pageToken=p1",
    ]
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code) == (True, (("E", 6),))
    truncated = [rec for rec in caplog.records if "truncated" in rec.getMessage()]
    assert [(rec.levelno, rec.getMessage()) for rec in truncated] == [
        (logging.WARNING, "errors of src/a: stopped after 3 pages; its error counts are truncated")
    ]


def page(counts: dict[str, int], nxt: str | None = None) -> Response:
    """One errors page of the fake API."""
    return answer(200, {"counts": counts, **({"next": nxt} if nxt else {})})


async def poll_until_done(r: Rig, polls: int) -> list[float | None]:
    """Poll job A up to ``polls`` times, waiting each returned delay; the delays returned."""
    delays: list[float | None] = []
    for _ in range(polls):
        delay = await r.poller.poll(A)
        delays.append(delay)
        if delay is None:
            break
        r.clock.advance(delay)
    return delays


async def test_a_failed_errors_page_is_retried_from_itself_without_the_job_request() -> None:
    """A 5xx, then a timeout, mid-listing: each poll resumes there; nothing counted twice."""
    r = rig(jobs=("a",))
    r.client.script = [DONE, page({"E": 2}, "p0"), answer(500), "timeout", page({"E": 3, "F": 1})]
    delays = await poll_until_done(r, 5)
    assert len(delays) == 3
    assert delays[-1] is None
    assert r.paths() == [
        "/jobs/a",
        "/jobs/a/errors",
        "/jobs/a/errors?pageToken=p0",
        "/jobs/a/errors?pageToken=p0",
        "/jobs/a/errors?pageToken=p0",
    ]
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code) == (True, (("E", 5), ("F", 1)))
    assert (entry.pending_finish, entry.pending_finish_at) == (None, None)
    assert r.stats.failed == Counter({(SOURCE, "server_error"): 1, (SOURCE, "timeout"): 1})


async def test_the_finish_is_recorded_as_the_job_request_saw_it() -> None:
    """After failed pages, the last good poll is the job request's time, not the last page's."""
    r = rig(jobs=("a",))
    seen = r.clock.time()
    r.client.script = [DONE, answer(500), page({"E": 1})]
    await poll_until_done(r, 3)
    entry = r.table.get(A)
    assert entry is not None
    assert r.clock.time() > seen
    assert (entry.last_success, entry.seen_finished, entry.first_seen) == (seen,) * 3


async def test_a_listing_that_keeps_failing_is_given_up_after_twenty_tries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twenty failed pages in a row: the job is finished with what was read, and one warning."""
    r = rig(jobs=("a",))
    r.table.retention = 86_400.0  # the backoff would reach a shorter retention first
    r.client.script = [DONE, page({"E": 2}, "p0")]
    r.client.default = answer(503)
    caplog.set_level(logging.WARNING, logger="exporter.polling.poller")
    delays = await poll_until_done(r, 30)
    assert len(delays) == MAX_READ_FAILURES
    assert delays[-1] is None
    assert r.paths() == ["/jobs/a", "/jobs/a/errors"] + ["/jobs/a/errors?pageToken=p0"] * 20
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code, entry.poll_success) == (True, (("E", 2),), True)
    given_up = [
        rec.getMessage() for rec in caplog.records if "recording the job" in rec.getMessage()
    ]
    assert given_up == [
        "errors of src/a: listing failed 20 times in a row (server_error); "
        "recording the job finished with the 1 pages read"
    ]
    assert r.stats.failed == Counter({(SOURCE, "server_error"): 20})


async def test_a_listing_failing_for_the_retention_is_given_up_sooner() -> None:
    """With a short retention the read is abandoned once it has failed that long."""
    r = rig(jobs=("a",))
    r.table.retention = 30.0
    r.client.script = [DONE]
    r.client.default = answer(500)
    delays = await poll_until_done(r, 30)
    assert delays[-1] is None
    assert 2 < len(delays) < MAX_READ_FAILURES
    waited = sum(d for d in delays if d is not None)
    assert waited >= 30.0
    assert waited - (delays[-2] or 0.0) < 30.0  # given up at the first failure past 30 s
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code) == (True, ())


async def test_a_job_seen_finished_before_a_restart_reads_its_listing_not_the_job() -> None:
    """A restored pending finish reads the listing from the first page; the job is not asked."""
    r = rig(jobs=())
    done = Snapshot(Status.COMPLETED, "completed", remaining_items=0)
    saved = JobRecord(
        SOURCE, "a", SPEC.name, Origin.API, (), 900.0, None, None, None, False, 900.0, None,
        pending_finish=done, pending_finish_at=950.0,
    )  # fmt: skip
    r.table.restore(A, SPEC.name, (), Origin.API, saved)
    r.clock.advance(1_000.0)
    r.client.script = [page({"E": 1}, "p0"), page({"E": 1})]
    assert await r.poller.poll(A) is None
    assert r.paths() == ["/jobs/a/errors", "/jobs/a/errors?pageToken=p0"]
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.snapshot, entry.errors_by_code, entry.last_success) == (done, (("E", 2),), 950.0)
    assert entry.pending_finish is None


async def test_against_a_flaky_vendor_each_finished_report_is_asked_for_once(
    make_harness: MakeHarness,
) -> None:
    """One answer in seven fails: each job's report is read once after its finish, listing whole."""
    h = await make_harness(errors_page_size=2)
    jobs = [f"j{i}" for i in range(40)]
    for i, job_id in enumerate(jobs):
        h.sim.add_job(EVO, job_id, total=12 + 4 * (i % 5), rate=0.5 + i % 3, error_every=1 + i % 4)
    h.sim.set_fault(EVO, Fault("server_error", every=7))
    await h.start(source_yaml(h.sim, EVO, "evo", jobs), retention="1h")
    await h.advance(900)
    now = h.clock.time()
    failed = [r for r in h.sim.requests if r.status == 500]
    assert len(failed) >= len(h.sim.requests) // 8  # the vendor really was flaky
    assert len([r for r in failed if "/errors" in r.raw_path]) >= 10  # listing pages too
    for job_id in jobs:
        job = h.sim.find_job(EVO, job_id)
        assert job is not None
        finish = job.finished_at(now)
        assert finish is not None
        asked = [
            r.status
            for r in h.sim.requests
            if r.job_id == job_id and "/errors" not in r.raw_path and r.time >= finish
        ]
        # Job requests that failed may be asked again; after the one that saw the finish,
        # none at all.
        assert asked.count(200) == 1, (job_id, asked)
        assert asked[-1] == 200, (job_id, asked)
        assert h.status("evo", job_id) == "completed"
        assert errors_by_code(h, job_id) == expected_codes(job.errors(now)), job_id


async def test_after_a_restart_an_unfinished_listing_is_read_without_the_job_request(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    """Seen finished, listing failed, exporter restarted on its state file: listing only."""
    db = str(tmp_path / "state.db")
    h = await make_harness(errors_page_size=2)
    h.sim.add_job(EVO, "r", total=20, rate=20, error_every=2)  # 10 errors, 5 pages
    h.clock.advance(5)
    h.sim.set_fault(EVO, Fault("server_error", every=2))  # the job request passes, page 1 fails
    await h.start(source_yaml(h.sim, EVO, "evo", ["r"]), store=SqliteStore(db))
    await advance_until(h, lambda: any(r.status == 500 for r in h.sim.requests), "a failed page")
    assert h.exporter is not None
    await h.exporter.close()
    h.sim.clear_faults()
    before = len(h.sim.requests)
    await h.start(source_yaml(h.sim, EVO, "evo", ["r"]), store=SqliteStore(db))
    await advance_until(h, lambda: h.status("evo", "r") == "completed", "the listing read")
    after = [r.raw_path.rsplit("/", 2)[-2:] for r in h.sim.requests[before:]]
    assert len(after) == 5  # five pages from the first, and not the job request
    assert after[0] == ["r", "errors"]
    assert all(part[1].startswith("errors?pageToken=") for part in after[1:])
    assert errors_by_code(h, "r") == expected_codes(10)


async def test_rate_limits_on_the_listing_do_not_wear_the_read_out() -> None:
    """Twenty-five honoured 429s mid-listing: the read is not given up and ends complete."""
    r = rig(jobs=("a",))
    r.table.retention = 86_400.0
    r.client.script = [
        DONE,
        page({"E": 2}, "p0"),
        *[answer(429, Retry_After="1")] * 25,
        page({"E": 1}),
    ]
    delays = await poll_until_done(r, 40)
    assert len(delays) == 26  # the first poll reads p0 and meets the first 429
    assert delays[-1] is None
    entry = r.table.get(A)
    assert entry is not None
    assert (entry.finished, entry.errors_by_code) == (True, (("E", 3),))
    assert r.stats.failed == Counter({(SOURCE, "rate_limited"): 25})


async def test_a_listing_given_up_keeps_its_series_for_the_retention_from_then() -> None:
    """Recorded finished when given up: the series stay a whole retention, not already gone."""
    r = rig(jobs=("a",))
    r.table.retention = 30.0
    r.client.script = [DONE]
    r.client.default = answer(500)
    await poll_until_done(r, 30)
    entry = r.table.get(A)
    assert entry is not None
    assert entry.expires_at == r.clock.time() + 30.0
    assert r.table.expire(r.clock.time()) == []
