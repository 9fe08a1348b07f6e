"""End to end: two exporter processes on one vendor account share its politeness through Redis.

A simulator holds the account to 10 requests/s (its per-account limiter); each
exporter watches 30 running jobs of its own polled every second, with
``max_requests_per_second: 10`` for the account.  Alone, each would send 10/s and
the account would see 20/s; with ``global.fleet`` on one real redis-server the
fleet keeps to the account's budget, and a 429 with ``Retry-After`` met by
either closes the account for both.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from exporter.jobs.shard import Shard
from exporter.simulator.vendors import source_config, vendor_url
from tests.fleet.conftest import RedisServer
from tests.test_e2e_prometheus import (
    START_TIMEOUT,
    Processes,
    request,
    send_json,
    start_simulators,
    wait_for,
)

pytestmark = pytest.mark.e2e

FS = "batch_import_job"
BUDGET = 10
JOBS = 30


def requests_log(sim: str) -> list[dict[str, object]]:
    """The simulator's request log."""
    status, body = request("GET", sim + "_sim/requests")
    assert status == 200
    log: list[dict[str, object]] = json.loads(body)
    return log


def config(sim: str, redis_url_file: Path, prefix: str) -> dict[str, object]:
    """An exporter watching ``JOBS`` Fullstory jobs of its own, in the fleet."""
    src = source_config(
        FS,
        name="fs",
        base_url=vendor_url(sim, FS),
        jobs=[f"{prefix}{n}" for n in range(JOBS)],
    )
    src |= {"account": "fs-prod", "max_requests_per_second": BUDGET}
    return {
        "global": {
            "poll_interval": "1s",
            "request_timeout": "2s",
            "fleet": {"redis_url_file": str(redis_url_file), "name": "e2e", "size": 2},
        },
        "sources": [src],
    }


def test_two_exporters_keep_to_the_accounts_budget_and_share_its_retry_after(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Fleet-wide requests within the budget, no 429 from the limiter, and one 429 closes both."""
    procs = Processes(tmp_path)
    url_file = tmp_path / "redis-url"
    url_file.write_text(redis_server.url)
    try:
        (sim,) = start_simulators(procs, "simulator")
        for prefix in ("a", "b"):
            for n in range(JOBS):
                send_json(
                    "POST",
                    sim + "_sim/jobs",
                    {"api": FS, "id": f"{prefix}{n}", "total": 10**9, "rate": 1},
                )
        # The vendor's own limit on the account, a burst of one second's worth.
        send_json("PUT", sim + "_sim/rate_limit", {"rate": BUDGET, "burst": BUDGET})
        for name in ("a", "b"):
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config(sim, url_file, name)))
            procs.start(
                name,
                [sys.executable, "-m", "exporter", f"--config.file={path}",
                 "--web.listen-address=127.0.0.1:0"],
            )  # fmt: skip

        def serving() -> bool:
            return all("serving /metrics" in procs.log(n).read_text() for n in ("a", "b"))

        wait_for("both exporters", serving, START_TIMEOUT, procs)
        time.sleep(8)  # warm-up: the leases settle, both members counted
        start = time.time()
        time.sleep(10)
        window = [r for r in requests_log(sim) if float(r["time"]) >= start]  # type: ignore[arg-type]
        rate = len(window) / 10
        rejected = [r for r in window if r["status"] == 429]
        assert rejected == []
        assert BUDGET * 0.7 <= rate <= BUDGET * 1.1, rate
        # One 429 with Retry-After: 4 to whichever exporter asks next: both stop.
        send_json(
            "PUT", sim + "_sim/faults/" + FS, {"kind": "rate_limit", "retry_after": "4", "count": 1}
        )
        wait_for(
            "the 429",
            lambda: any(r["status"] == 429 for r in requests_log(sim)),
            10.0,
            procs,
        )
        told = max(float(r["time"]) for r in requests_log(sim) if r["status"] == 429)  # type: ignore[arg-type]
        time.sleep(4.5)
        during = [
            r
            for r in requests_log(sim)
            if told + 0.25 < float(r["time"]) < told + 3.9  # type: ignore[arg-type]
        ]
        assert during == []
        after = [r for r in requests_log(sim) if float(r["time"]) > told + 4.0]  # type: ignore[arg-type]
        assert after != []
        for name in ("a", "b"):
            log = procs.log(name).read_text()
            assert "Traceback" not in log
            assert redis_server.url not in log
    finally:
        procs.stop()


def api_port(procs: Processes, shard: int) -> int:
    """The registration API's port from shard ``shard``'s log; 0 before it says."""
    match = re.search(r"registration API on port (\d+)", procs.log(f"s{shard}").read_text())
    return int(match[1]) if match else 0


def api_up(procs: Processes, shard: int) -> bool:
    """Whether shard ``shard`` has said where its registration API is."""
    return api_port(procs, shard) > 0


def api_request(
    port: int, method: str, path: str, token: str, body: bytes | None = None
) -> tuple[int, object]:
    """One request to a registration API on loopback: the status and the JSON answer."""
    headers = {"Authorization": f"Bearer {token}"}
    status, answer = request(method, f"http://127.0.0.1:{port}/api/v1/{path}", body, headers)
    return status, json.loads(answer) if answer else None


def test_a_registration_on_any_replica_is_watched_by_its_shard(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """PUT to shard 0 of shard 1's job: stored, watched by 1, listed by both; 503 without Redis."""
    procs = Processes(tmp_path)
    url_file = tmp_path / "redis-url"
    url_file.write_text(redis_server.url)
    token = tmp_path / "token"
    token.write_text("t0ken")
    try:
        (sim,) = start_simulators(procs, "simulator")
        ports: list[int] = []
        for shard in (0, 1):
            path = tmp_path / f"s{shard}.yaml"
            doc = config(sim, url_file, "none-")
            doc["sources"][0]["jobs"] = []  # type: ignore[index]
            path.write_text(yaml.safe_dump(doc))
            procs.start(
                f"s{shard}",
                [sys.executable, "-m", "exporter", f"--config.file={path}",
                 "--web.listen-address=127.0.0.1:0", "--api.listen-address=127.0.0.1:0",
                 f"--api.token-file={token}", f"--shard={shard}", "--total-shards=2"],
            )  # fmt: skip
        for shard in (0, 1):
            wait_for(
                f"shard {shard}'s API",
                functools.partial(api_up, procs, shard),
                START_TIMEOUT,
                procs,
            )
            ports.append(api_port(procs, shard))
        job = next(f"j{n}" for n in range(100) if Shard(0, 2).of(("fs", f"j{n}")) == 1)
        send_json("POST", sim + "_sim/jobs", {"api": FS, "id": job, "total": 10**9, "rate": 1})
        status, answer = api_request(ports[0], "PUT", f"sources/fs/jobs/{job}", "t0ken", b"{}")
        assert (status, answer) == (201, {"source": "fs", "id": job, "created": True})

        def listed_by_owner() -> bool:
            _, doc = api_request(ports[1], "GET", "jobs", "t0ken")
            jobs = doc["jobs"]  # type: ignore[index]
            return any(j["id"] == job and j["status"] == "running" for j in jobs)

        wait_for("shard 1 to watch and poll it", listed_by_owner, 30.0, procs)
        assert api_request(ports[0], "GET", "jobs", "t0ken")[1] == {
            "jobs": [{"source": "fs", "id": job, "origin": "api", "labels": {}, "shard": 1}]
        }
        status, _ = api_request(ports[0], "DELETE", f"sources/fs/jobs/{job}", "t0ken")
        assert status == 204

        def gone_from_owner() -> bool:
            return api_request(ports[1], "GET", "jobs", "t0ken")[1] == {"jobs": []}

        wait_for("shard 1 to drop it", gone_from_owner, 10.0, procs)
        redis_server.kill()
        status, answer = api_request(ports[0], "PUT", f"sources/fs/jobs/{job}", "t0ken", b"{}")
        assert status == 503
        assert answer == {"error": "the fleet's Redis cannot take registrations now"}
        for shard in (0, 1):
            assert "Traceback" not in procs.log(f"s{shard}").read_text()
    finally:
        procs.stop()
