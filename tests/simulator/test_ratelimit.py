"""The per-account rate limiter: pure token buckets, then the simulator's 429s over HTTP."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from exporter.simulator import EVOCALIZE, FULLSTORY, TALKDESK, Fault, Simulator
from exporter.simulator.__main__ import parse_args
from exporter.simulator.ratelimit import RateLimiter, retry_after
from exporter.simulator.vendors import ACCOUNTS, APIS, VENDORS
from exporter.simulator.vendors.base import no_account
from tests.simulator.helpers import (
    EVO_HEADERS,
    EVO_REPORT,
    FS_BATCH,
    FS_HEADERS,
    TD_JOBS,
    FakeClock,
    call,
    token,
)

# -- the buckets, on explicit times ----------------------------------------------------


def test_a_burst_is_let_in_then_refused_until_a_token_refills() -> None:
    """``burst`` requests pass at once; the next waits for the refill, then passes."""
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.admit("a", 10.0) for _ in range(3)] == [None, None, None]
    assert limiter.admit("a", 10.0) == 1.0
    assert limiter.admit("a", 10.4) == 1.0  # 0.8 tokens: 0.1 s short, rounded up
    assert limiter.admit("a", 10.5) is None
    assert limiter.admit("a", 10.5) == 1.0
    assert (limiter.admitted, limiter.rejected) == (4, 3)


def test_retry_after_is_the_wait_rounded_up_and_is_enough() -> None:
    """A slow bucket answers whole seconds until a token, and a request after that passes."""
    limiter = RateLimiter(rate=0.25, burst=1)
    assert limiter.admit("a", 0.0) is None
    assert limiter.admit("a", 0.0) == 4.0
    assert limiter.admit("a", 0.3) == 4.0  # 3.7 s to go
    assert limiter.admit("a", 3.1) == 1.0  # 0.9 s to go
    assert limiter.admit("a", 4.0) is None
    wait = limiter.admit("a", 4.0)
    assert wait == 4.0
    assert limiter.admit("a", 4.0 + wait) is None
    assert retry_after(3.2) == "4"
    assert retry_after(0.01) == "1"
    assert retry_after(2.0) == "2"


def test_the_bucket_refills_at_the_rate_and_holds_at_most_the_burst() -> None:
    """A long pause saves up ``burst`` tokens, never more."""
    limiter = RateLimiter(rate=1.0, burst=2)
    assert limiter.admit("a", 0.0) is None
    assert limiter.tokens("a", 0.0) == 1.0
    assert limiter.tokens("a", 0.5) == 1.5
    assert limiter.tokens("a", 100.0) == 2.0
    assert [limiter.admit("a", 100.0) for _ in range(3)] == [None, None, 1.0]
    assert limiter.tokens("never-seen", 0.0) == 2.0


def test_accounts_have_budgets_of_their_own() -> None:
    """One account spending its budget leaves another's whole."""
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.admit("a", 0.0) is None
    assert limiter.admit("a", 0.0) == 1.0
    assert limiter.admit("b", 0.0) is None
    assert limiter.admit("b", 0.0) == 1.0
    assert limiter.admit("a", 1.0) is None


def test_full_buckets_are_forgotten_so_memory_stays_bounded() -> None:
    """Many accounts once each leave no buckets behind once theirs have filled up again."""
    limiter = RateLimiter(rate=10.0, burst=5)
    for index in range(1000):
        assert limiter.admit(f"account-{index}", index * 0.01) is None
    # Each bucket refills in 0.1 s: only the accounts of the last 0.1 s are held.
    assert limiter.tracked <= 11
    assert limiter.admit("late", 1000.0) is None
    assert limiter.tracked == 1
    assert limiter.admitted == 1001


def test_a_clock_stepping_back_refills_nothing() -> None:
    """Time going backwards neither refills a bucket nor counts the same seconds twice."""
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.admit("a", 10.0) is None
    assert limiter.admit("a", 5.0) == 1.0
    assert limiter.tokens("a", 10.5) == 0.5
    assert limiter.admit("a", 11.0) is None


@pytest.mark.parametrize(
    ("rate", "burst", "error"),
    [
        (0, 1, "rate"),
        (-1.0, 1, "rate"),
        (math.inf, 1, "rate"),
        (math.nan, 1, "rate"),
        (True, 1, "rate"),
        ("5", 1, "rate"),
        (1.0, 0, "burst"),
        (1.0, 1.5, "burst"),
        (1.0, True, "burst"),
    ],
)
def test_bad_rates_and_bursts_are_refused(rate: object, burst: object, error: str) -> None:
    """A rate must be finite and positive, a burst a positive integer."""
    with pytest.raises(ValueError, match=error):
        RateLimiter(rate=rate, burst=burst)  # type: ignore[arg-type]


# -- the simulator over HTTP -----------------------------------------------------------


async def test_the_simulator_answers_429_with_retry_after_beyond_the_budget(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Within the budget 200s; beyond it the vendor's 429 with an integer ``Retry-After``."""
    async with Simulator(clock=clock, rate_limiter=RateLimiter(rate=0.5, burst=2)) as sim:
        sim.add_job(FULLSTORY, "x")
        url = sim.url + FS_BATCH + "x"
        assert [(await call(http, url, headers=FS_HEADERS)).status for _ in range(2)] == [200, 200]
        refused = await call(http, url, headers=FS_HEADERS)
        assert (refused.status, refused.headers["Retry-After"]) == (429, "2")
        assert refused.json() == {
            "message": "Too many requests. Client has exceeded the rate limit for this endpoint.",
            "code": "too_many_requests",
        }
        clock.advance(1.5)
        assert (await call(http, url, headers=FS_HEADERS)).headers["Retry-After"] == "1"
        clock.advance(0.5)
        assert (await call(http, url, headers=FS_HEADERS)).status == 200
        assert [record.status for record in sim.requests] == [200, 200, 429, 429, 200]
        limiter = sim.rate_limiter
        assert limiter is not None
        assert (limiter.admitted, limiter.rejected) == (3, 2)


async def test_each_vendor_counts_the_account_its_credentials_name(
    http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Evocalize's key ID, Fullstory's API key and Talkdesk's client each have one budget."""
    async with Simulator(clock=clock, rate_limiter=RateLimiter(rate=1.0, burst=1)) as sim:
        sim.add_job(EVOCALIZE, "e", error_every=1)
        sim.add_job(FULLSTORY, "f")
        sim.add_job(TALKDESK, "t")
        evo = sim.url + EVO_REPORT + "e"
        assert (await call(http, evo, headers=EVO_HEADERS)).status == 200
        # Its errors endpoint spends the same account's budget, signed or not.
        errors = await call(http, evo + "/errors", headers=EVO_HEADERS)
        assert (errors.status, errors.json()["errors"][0]["code"]) == (429, "too_many_requests")
        other = {**EVO_HEADERS, "X-Evocalize-Client-Key-Id": "someone-else"}
        assert (await call(http, evo, headers=other)).status == 401  # its own budget, wrong key
        fs = sim.url + FS_BATCH + "f"
        assert (await call(http, fs, headers=FS_HEADERS)).status == 200
        assert (await call(http, fs, headers=FS_HEADERS)).status == 429
        assert (await call(http, fs, headers={"Authorization": "Basic other"})).status == 401
        # The token endpoint is not limited, and tokens are the one client's.
        first, second = await token(http, sim), await token(http, sim)
        td = sim.url + TD_JOBS + "t"
        bearer = {"Authorization": f"Bearer {first}"}
        assert (await call(http, td, headers=bearer)).status == 200
        again = await call(http, td, headers={"Authorization": f"Bearer {second}"})
        assert (again.status, again.json()["code"]) == (429, "too_many_requests")
        # No credentials, or a token never issued: no account, never limited.
        for _ in range(2):
            assert (await call(http, fs)).status == 401
            assert (await call(http, td, headers={"Authorization": "Bearer nope"})).status == 401
        assert sim.token_requests == 2
        limiter = sim.rate_limiter
        assert limiter is not None
        assert (limiter.admitted, limiter.rejected) == (5, 3)


def test_every_api_names_accounts_and_a_vendor_by_default_names_none() -> None:
    """Each simulated API counts its requests against accounts; the default is no account."""
    assert set(ACCOUNTS) == set(APIS)
    assert all(VENDORS[api].account is not no_account for api in APIS)
    assert no_account(Simulator(), make_mocked_request("GET", "/")) is None


async def test_a_refused_request_uses_up_no_fault_and_runs_no_handler(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """The limit answers before faults: a counted fault waits for a request let in."""
    sim.add_job(FULLSTORY, "x")
    sim.set_fault(FULLSTORY, Fault("server_error", count=1))
    sim.set_rate_limit(1.0, 1)
    url = sim.url + FS_BATCH + "x"
    assert (await call(http, url, headers=FS_HEADERS)).status == 500
    assert (await call(http, url, headers=FS_HEADERS)).status == 429
    sim.set_fault(FULLSTORY, Fault("server_error", count=1))
    assert (await call(http, url, headers=FS_HEADERS)).status == 429
    sim.clear_rate_limit()
    assert sim.rate_limiter is None
    assert (await call(http, url, headers=FS_HEADERS)).status == 500
    assert (await call(http, url, headers=FS_HEADERS)).status == 200


async def test_the_control_api_sets_reads_and_lifts_the_limit(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """``/_sim/rate_limit``: off by default, set with rate and burst, counted, lifted."""
    control = sim.url + "_sim/rate_limit"
    off = {"rate": None, "burst": None, "admitted": None, "rejected": None}
    assert (await call(http, control)).json() == off
    sim.add_job(FULLSTORY, "x")
    url = sim.url + FS_BATCH + "x"
    assert [(await call(http, url, headers=FS_HEADERS)).status for _ in range(3)] == [200] * 3
    put = await call(http, control, method="PUT", data=json.dumps({"rate": 1, "burst": 2}))
    assert (put.status, put.json()) == (
        200,
        {"rate": 1.0, "burst": 2, "admitted": 0, "rejected": 0},
    )
    statuses = [(await call(http, url, headers=FS_HEADERS)).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    read = await call(http, control)
    assert read.json() == {"rate": 1.0, "burst": 2, "admitted": 2, "rejected": 1}
    assert (await call(http, control, method="DELETE")).status == 204
    assert (await call(http, control)).json() == off
    assert (await call(http, url, headers=FS_HEADERS)).status == 200
    assert (await call(http, control, method="POST")).status == 405


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"rate": 1}', "rate and burst are required"),
        ('{"rate": 1, "burst": 1, "per": "minute"}', "unknown keys: per"),
        ('{"rate": 0, "burst": 1}', "rate must be a finite positive number, got 0"),
        ('{"rate": 1, "burst": 0.5}', "burst must be a positive integer, got 0.5"),
        ("[]", "body must be a JSON object"),
    ],
)
async def test_a_bad_limit_is_a_400_and_leaves_the_limit_as_it_was(
    sim: Simulator, http: aiohttp.ClientSession, body: str, error: str
) -> None:
    """Missing, unknown or invalid settings are refused with the reason."""
    answer = await call(http, sim.url + "_sim/rate_limit", method="PUT", data=body)
    assert (answer.status, answer.json()) == (400, {"error": error})
    assert sim.rate_limiter is None


def test_the_command_line_sets_a_limit_with_a_burst_of_a_seconds_worth() -> None:
    """``--rate-limit`` alone gets a burst of one second's requests; ``--burst`` needs it."""
    limiter = parse_args(["--rate-limit", "2.5"]).limiter
    assert isinstance(limiter, RateLimiter)
    assert (limiter.rate, limiter.burst) == (2.5, 3)
    limiter = parse_args(["--rate-limit", "0.2", "--burst", "4"]).limiter
    assert isinstance(limiter, RateLimiter)
    assert (limiter.rate, limiter.burst) == (0.2, 4)
    assert parse_args([]).limiter is None
    for bad in (["--burst", "3"], ["--rate-limit", "0"], ["--rate-limit", "inf"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
