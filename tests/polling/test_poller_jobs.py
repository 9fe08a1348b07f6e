"""A job's own paths through the poller: its backoff, its errors read, its 404s.

Run like ``test_poller_paths``: a poller over a fake client on the fake clock, each
poll called by the test, jitter drawn from a seeded rng and expected exactly.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from exporter.model import Response, Snapshot, Status
from tests.polling.test_poller_paths import (
    DONE,
    INTERVAL,
    RUNNING,
    SEED,
    SOURCE,
    SPEC,
    A,
    B,
    Hold,
    answer,
    backoff,
    parse_job,
    poll_success,
    rig,
    spread,
    together,
)


async def test_a_jobs_own_failures_back_it_off_beyond_the_interval() -> None:
    """Answers the poller cannot use fail the job; from the sixth in a row it waits longer."""
    r = rig(jobs=("a",))
    expect = random.Random(SEED)
    r.client.default = answer(418)
    delays = [await r.poller.poll(A) for _ in range(6)]
    expected = [max(INTERVAL, backoff(expect, n)) for n in range(1, 7)]
    assert delays == expected
    assert expected[-1] > INTERVAL
    assert r.stats.failed == Counter({(SOURCE, "unexpected_status"): 6})
    r.client.default = RUNNING
    assert await r.poller.poll(A) == INTERVAL
    r.client.default = answer(418)
    assert await r.poller.poll(A) == max(INTERVAL, backoff(expect, 1))  # the count started over


async def test_a_deferred_errors_read_resumes_from_the_page_it_could_not_send() -> None:
    """Under a rate cap the read waits for its slot and goes on where it stopped."""
    r = rig(jobs=("a",), max_rate=0.5)  # one request every 2 s
    expect = random.Random(SEED)
    seen_at = r.clock.time()
    r.client.script = [
        DONE,
        answer(200, {"counts": {"E1": 2}, "next": "p2"}),
        answer(200, {"counts": {"E1": 1, "E2": 1}}),
    ]
    assert await r.poller.poll(A) == spread(expect, 2.0)
    assert poll_success(r, A) is None  # nothing recorded until the read is whole
    r.clock.advance(2)
    assert await r.poller.poll(A) == spread(expect, 2.0)
    r.clock.advance(2)
    assert await r.poller.poll(A) is None  # finished: never again
    assert r.paths() == ["/jobs/a", "/jobs/a/errors", "/jobs/a/errors?pageToken=p2"]
    entry = r.table.get(A)
    assert entry is not None
    assert entry.errors_by_code == (("E1", 3), ("E2", 1))
    assert (entry.last_success, entry.poll_success) == (seen_at, True)
    assert r.stats.failed == Counter()


async def test_three_404s_in_a_row_make_a_job_not_found() -> None:
    """Two 404s fail the poll; the third records not_found and stops polling, errors unread."""
    r = rig(jobs=("a",))
    r.client.default = answer(404)
    assert await r.poller.poll(A) == INTERVAL
    assert await r.poller.poll(A) == INTERVAL
    assert poll_success(r, A) is False
    assert await r.poller.poll(A) is None
    entry = r.table.get(A)
    assert entry is not None
    assert entry.snapshot == Snapshot(Status.NOT_FOUND, "http_404")
    assert entry.poll_success is True
    assert r.paths() == ["/jobs/a"] * 3
    assert r.stats.failed == Counter({(SOURCE, "not_found"): 2})


async def test_a_good_answer_between_404s_starts_the_count_over() -> None:
    """404, 404, found, then two more 404s: still only failed polls, no not_found."""
    r = rig(jobs=("a",))
    r.client.script = [answer(404), answer(404), RUNNING, answer(404), answer(404)]
    delays = [await r.poller.poll(A) for _ in range(5)]
    assert delays == [INTERVAL] * 5
    entry = r.table.get(A)
    assert entry is not None
    assert entry.snapshot == parse_job(RUNNING)
    assert r.stats.failed == Counter({(SOURCE, "not_found"): 4})


async def test_a_job_not_in_the_table_is_not_polled() -> None:
    """A key the table does not hold (dropped before its turn) ends its polling unsent."""
    r = rig(jobs=("a",))
    assert await r.poller.poll(B) is None
    assert (r.client.sent, r.stats.failed) == ([], Counter())


@pytest.mark.parametrize("replaced", [False, True], ids=["dropped", "replaced"])
@pytest.mark.parametrize("reply", [RUNNING, answer(500)], ids=["answer", "server-error"])
async def test_a_job_dropped_during_its_request_is_left_alone(
    reply: Response, *, replaced: bool
) -> None:
    """An answer for a job gone (or added anew) meanwhile is not recorded; the gate still learns."""
    r = rig(jobs=("a",))
    r.client.hold = hold = Hold(1)
    r.client.script = [reply]

    def drop() -> None:
        r.table.remove(A)
        if replaced:
            r.table.add(A, SPEC.name)

    assert await together(r, hold, A, meanwhile=drop) == [None]
    entry = r.table.get(A)
    if replaced:
        assert entry is not None
        assert (entry.snapshot, entry.poll_success, entry.last_success) == (None, None, None)
    else:
        assert entry is None
    assert r.stats.failed == Counter()
    assert r.runtime.gate.failures == (0 if reply is RUNNING else 1)  # a 5xx still backs off


@pytest.mark.parametrize(
    "page", [answer(200, {"counts": {"E1": 1}}), answer(500)], ids=["read", "server-error"]
)
async def test_a_job_dropped_during_its_errors_read_records_nothing(page: Response) -> None:
    """A finished job dropped while its errors page is in flight: nothing recorded or counted."""
    r = rig(jobs=("a",))
    r.client.hold = hold = Hold(1, skip=1)  # the job request passes, the errors page waits
    r.client.script = [DONE, page]
    assert await together(r, hold, A, meanwhile=lambda: r.table.remove(A)) == [None]
    assert r.table.get(A) is None
    assert r.paths() == ["/jobs/a", "/jobs/a/errors"]
    assert r.stats.failed == Counter()
