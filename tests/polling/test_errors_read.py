"""Reading a finished job's errors pages: under a rate cap, after a 429, and past the page limit.

The first two run end to end against the simulator; the page limit is passed to a
poller over a fake client (see ``test_poller_paths``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable

import pytest

from exporter.simulator import Fault
from exporter.simulator.jobs import error_code_counts
from tests.harness import EVO, Harness, source_yaml
from tests.polling.test_poller_paths import DONE, A, answer, rig

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
    return {code or "unknown": n for code, n in error_code_counts(errors).items()}


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
    await h.advance(110)
    assert not [t for t in evo_times(h) if limited < t < limited + 40]
    assert h.status("evo", "r") == "completed"
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
