"""The source pool across reloads: which clients are kept, and what a kept one re-reads."""

from __future__ import annotations

import dataclasses
import random
import ssl
from pathlib import Path

from exporter.clock import FakeClock
from exporter.config import (
    AdaptivePolling,
    Config,
    RequestSignature,
    Secret,
    SourceConfig,
    TLSConfig,
)
from exporter.model import Response, Snapshot, Status
from exporter.polling.pool import SourcePool
from exporter.vendors import REGISTRY, ApiSpec
from tests.polling.test_client_tls import Stats, make_ca


def trusted(context: ssl.SSLContext) -> list[object]:
    """The subjects of the CAs a context trusts."""
    return [cert["subject"] for cert in context.get_ca_certs()]


async def test_a_reload_keeps_the_client_and_makes_it_reread_its_tls_files(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Same settings: the same client, which looks at its rotated ca_file at once."""
    ca1, ca2 = make_ca(tmp_path, "ca1"), make_ca(tmp_path, "ca2")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca1.cert.read_bytes())
    src = SourceConfig(
        name="vendor",
        api="batch_import_job",
        base_url="https://127.0.0.1:9/",
        path="jobs/{id}",
        poll_interval=30.0,
        tls_config=TLSConfig(ca_file=str(ca_file)),
    )
    config = Config(sources=(src,))
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0))
    try:
        await pool.update(config)
        client = pool.runtimes["vendor"].client
        before = await client.tls.current()
        assert trusted(before) == [((("commonName", "ca1"),),)]
        ca_file.write_bytes(ca2.cert.read_bytes())
        assert await client.tls.current() is before  # the next check is seconds away
        assert await pool.update(config) == set()
        assert pool.runtimes["vendor"].client is client
        assert trusted(await client.tls.current()) == [((("commonName", "ca2"),),)]
    finally:
        await pool.close()


def _parse_job(response: Response) -> Snapshot:
    """Stand in for a vendor parser: the pool never calls it."""
    return Snapshot(Status.UNKNOWN, str(response.status))


def _sign(path: str, unix_seconds: int, key_id: str, secret: str) -> tuple[tuple[str, str], ...]:
    """A signer whose one header shows everything it was given."""
    return (("X-Signed", f"{path} {unix_seconds} {key_id} {secret}"),)


async def test_the_pool_takes_each_api_from_the_registry_it_is_given(clock: FakeClock) -> None:
    """A source's runtime holds the given registry's spec, and its client signs with its sign."""
    spec = ApiSpec(
        name="test_api",
        vendor="test",
        default_path="jobs/{id}",
        parse_job=_parse_job,
        signature_key="test_signature",
        sign=_sign,
    )
    src = SourceConfig(
        name="t",
        api="test_api",
        base_url="http://127.0.0.1:9/",
        path="jobs/{id}",
        poll_interval=30.0,
        signature=RequestSignature("key", Secret(inline="s3cret")),
    )
    pool = SourcePool(registry={"test_api": spec}, stats=Stats(), clock=clock, rng=random.Random(0))
    try:
        assert await pool.update(Config(sources=(src,))) == set()
        runtime = pool.runtimes["t"]
        assert runtime.spec is spec
        assert runtime.client.auth.signed("/jobs/r") == {
            "X-Signed": f"/jobs/r {int(clock.time())} key s3cret"
        }
    finally:
        await pool.close()


class PlanStats:
    """Lateness observed per source."""

    def __init__(self) -> None:
        self.late: list[tuple[str, float]] = []

    def plan_lateness(self, source: str, seconds: float) -> None:
        """Note one observation."""
        self.late.append((source, seconds))


def _adaptive(**changes: object) -> SourceConfig:
    """A Talkdesk source with adaptive polling (its stage hints come from the registry)."""
    settings: dict[str, object] = {
        "name": "td",
        "api": "report_job",
        "base_url": "https://127.0.0.1:9/",
        "path": "jobs/{id}",
        "poll_interval": 30.0,
        "adaptive_polling": AdaptivePolling(5.0, 600.0),
        **changes,
    }
    return SourceConfig(**settings)  # type: ignore[arg-type]


async def test_adaptive_sources_get_plans_and_rate_capped_ones_a_budget(clock: FakeClock) -> None:
    """Plans for adaptive sources; a budget for every rate-capped one, ranked by plan if any."""
    stats = PlanStats()
    pool = SourcePool(
        registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0), plan_stats=stats
    )
    fixed = _adaptive(name="fixed", adaptive_polling=None, max_requests_per_second=4.0)
    try:
        await pool.update(Config(sources=(_adaptive(), _adaptive(name="capped",
                                 max_requests_per_second=2.0), fixed)))  # fmt: skip
        td, capped, plain = (pool.runtimes[name] for name in ("td", "capped", "fixed"))
        assert td.plan is not None
        assert (td.budget, plain.plan) == (None, None)
        assert plain.budget is not None
        assert (plain.budget.plans, plain.budget.gate) == ({}, plain.gate)
        assert pool.lane(("fixed", "x")) is plain.budget
        assert capped.budget is not None
        assert capped.budget.plans == {"capped": capped.plan}
        assert pool.lane(("capped", "x")) is capped.budget
        assert pool.lane(("td", "x")) is None
        assert pool.lane(("gone", "x")) is None
        assert capped.plan is not None
        assert capped.plan.rate == 2.0
        td.plan.started("j", 0.0)
        td.plan.succeeded("j", Snapshot(Status.RUNNING, "uploading"), now=0.0, wall=0.0,
                          first_seen=0.0)  # fmt: skip
        td.plan.started("j", 9.0)  # planned at min_interval: uploading is a last stage
        td.plan.succeeded("j", Snapshot(Status.RUNNING, "uploading"), now=9.0, wall=9.0,
                          first_seen=0.0)  # fmt: skip
        assert stats.late == [("td", 4.0)]
        capped.gate.acquire(clock.monotonic())
        assert pool.budgets(clock.monotonic()) == {"capped": (1 / 120, 1.0), "fixed": (0.0, None)}
    finally:
        await pool.close()


async def test_a_reload_keeps_the_plans_with_new_bounds(clock: FakeClock) -> None:
    """New bounds or rate: the same plans (what they learned too) and the same budget."""
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0))
    try:
        await pool.update(Config(sources=(_adaptive(max_requests_per_second=2.0),)))
        before = pool.runtimes["td"]
        faster = AdaptivePolling(1.0, 60.0)
        await pool.update(
            Config(sources=(_adaptive(max_requests_per_second=3.0, adaptive_polling=faster),))
        )
        after = pool.runtimes["td"]
        assert after is not before
        assert after.plan is before.plan
        assert after.budget is before.budget
        assert after.plan is not None
        assert (after.plan.bounds, after.plan.rate) == (faster, 3.0)
        await pool.update(Config(sources=(_adaptive(adaptive_polling=None),)))
        assert pool.runtimes["td"].plan is None  # fixed again; the plans are kept aside
        await pool.update(Config(sources=(_adaptive(),)))
        assert pool.runtimes["td"].plan is before.plan
        await pool.update(Config(sources=(_adaptive(api="batch_import_job"),)))
        assert pool.runtimes["td"].plan is not before.plan  # another API: its jobs start over
    finally:
        await pool.close()


async def test_sources_of_one_account_share_one_gate_across_reloads(clock: FakeClock) -> None:
    """Two sources naming one account share a gate: a Retry-After on one closes both."""
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0))
    a = _adaptive(name="a", account="prod", adaptive_polling=None)
    b = _adaptive(name="b", account="prod", adaptive_polling=None, path="other/{id}")
    alone = _adaptive(name="prod2", adaptive_polling=None)
    try:
        await pool.update(Config(sources=(a, b, alone)))
        gates = {name: rt.gate for name, rt in pool.runtimes.items()}
        assert gates["a"] is gates["b"]
        assert gates["prod2"] is not gates["a"]
        gates["a"].retry_after(clock.monotonic(), 30.0)
        assert pool.runtimes["b"].gate.closed_for(clock.monotonic()) == 30.0
        # b changes (a new client) and a third source joins the account: the same gate.
        c = _adaptive(name="c", account="prod", adaptive_polling=None)
        b_changed = dataclasses.replace(b, poll_interval=60.0)
        await pool.update(Config(sources=(a, b_changed, c)))
        assert pool.runtimes["b"].gate is gates["a"]
        assert pool.runtimes["c"].gate is gates["a"]
        # A source without an account is its own: named like the account, it joins it.
        d = _adaptive(name="prod", adaptive_polling=None)
        await pool.update(Config(sources=(a, d)))
        assert pool.runtimes["prod"].gate is gates["a"]
    finally:
        await pool.close()


async def test_the_sources_of_one_account_share_one_lane_and_its_cap(clock: FakeClock) -> None:
    """One budget lane per account gate, ranked by each source's plan; a reload sets the cap."""
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0))
    a = _adaptive(name="a", account="prod", adaptive_polling=None)
    b = _adaptive(name="b", account="prod", path="other/{id}")
    try:
        await pool.update(Config(sources=(a, b)))
        ra, rb = pool.runtimes["a"], pool.runtimes["b"]
        assert (ra.gate is rb.gate, ra.gate.max_rate, ra.budget, rb.budget) == (
            True, None, None, None)  # fmt: skip
        capped = tuple(dataclasses.replace(s, max_requests_per_second=2.0) for s in (a, b))
        await pool.update(Config(sources=capped))
        ra, rb = pool.runtimes["a"], pool.runtimes["b"]
        assert (ra.gate is rb.gate, ra.gate.max_rate) == (True, 2.0)
        assert ra.budget is not None
        assert ra.budget is rb.budget
        assert ra.budget.gate is ra.gate
        assert ra.budget.plans == {"b": rb.plan}
        lane = ra.budget
        await pool.update(Config(sources=(a, b)))
        ra, rb = pool.runtimes["a"], pool.runtimes["b"]
        assert (ra.gate is rb.gate, ra.gate.max_rate, ra.budget, rb.budget) == (
            True, None, None, None)  # fmt: skip
        await pool.update(Config(sources=capped))
        assert pool.runtimes["a"].budget is not lane  # a fresh lane: the old one drained
        assert pool.runtimes["a"].budget is pool.runtimes["b"].budget
    finally:
        await pool.close()


async def test_a_source_that_leaves_its_account_gets_a_gate_of_its_own(clock: FakeClock) -> None:
    """Moved to another account by a reload: its own gate, cap and lane; the other keeps its."""
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0))
    a = _adaptive(name="a", account="prod", adaptive_polling=None, max_requests_per_second=2.0)
    b = dataclasses.replace(a, name="b", path="other/{id}")
    try:
        await pool.update(Config(sources=(a, b)))
        gate = pool.runtimes["a"].gate
        assert pool.runtimes["b"].gate is gate
        moved = dataclasses.replace(b, account="other", max_requests_per_second=5.0)
        await pool.update(Config(sources=(a, moved)))
        ra, rb = pool.runtimes["a"], pool.runtimes["b"]
        assert (ra.gate is gate, rb.gate is gate) == (True, False)
        assert (ra.gate.max_rate, rb.gate.max_rate) == (2.0, 5.0)
        assert ra.budget is not None
        assert rb.budget is not None
        assert (ra.budget.gate, rb.budget.gate) == (ra.gate, rb.gate)
    finally:
        await pool.close()


async def test_an_account_renamed_keeps_its_gate_and_what_it_holds(clock: FakeClock) -> None:
    """Every source of an account renamed at once: the same gate, its Retry-After in force."""
    pool = SourcePool(registry=REGISTRY, stats=Stats(), clock=clock, rng=random.Random(0))
    a = _adaptive(name="a", account="prod", adaptive_polling=None)
    b = dataclasses.replace(a, name="b", path="other/{id}")
    try:
        await pool.update(Config(sources=(a, b)))
        gate = pool.runtimes["a"].gate
        gate.retry_after(clock.monotonic(), 30.0)
        renamed = tuple(dataclasses.replace(s, account="acme") for s in (a, b))
        await pool.update(Config(sources=renamed))
        assert (pool.runtimes["a"].gate is gate, pool.runtimes["b"].gate is gate) == (True, True)
        assert gate.closed_for(clock.monotonic()) == 30.0
    finally:
        await pool.close()
