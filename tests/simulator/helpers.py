"""Helpers for the simulator's HTTP tests: a fake clock, exact requests, Talkdesk tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from exporter.simulator import EVOCALIZE, SimJob, Simulator

T0 = 1_700_000_000.0
EVO_HEADERS = {"X-Evocalize-Client-Key": "evo-demo-key", "X-Evocalize-Client-Key-Id": "evo-demo-id"}
FS_HEADERS = {"Authorization": "Basic fs-demo-key"}
EVO_REPORT = "evocalize/management/v1/items/report/"
FS_BATCH = "fullstory/v2/events/batch/"
TD_JOBS = "talkdesk/data/reports/calls/jobs/"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FORM_HEADER = b"Content-Type: application/x-www-form-urlencoded\r\n"
# Keys of the seeds' examples: the contract the exporter parses.
EVO_REPORT_KEYS = {
    "totalItems",
    "remainingItems",
    "completedItems",
    "successfulItems",
    "errorItems",
    "isCompleted",
}
FS_JOB_KEYS = {"id", "status", "created", "finished"}
TD_JOB_KEYS = {"id", "name", "timezone", "status", "format", "timespan"}
TD_ERROR_KEYS = {"code", "message", "description", "fields"}
RFC3339_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class FakeClock:
    """A wall clock that only moves when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        """Return the fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the fake time forward."""
        self.now += seconds


def make(**kwargs: object) -> SimJob:
    """Build an Evocalize job created at ``T0``, with the given settings."""
    settings: dict[str, object] = {"api": EVOCALIZE, "id": "job-1", "created": T0, **kwargs}
    return SimJob(**settings)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Answer:
    """What the simulator answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)


async def call(
    http: aiohttp.ClientSession,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | str | None = None,
) -> Answer:
    """Send one request to ``url`` exactly as written (no normalisation) and read the answer."""
    async with http.request(
        method, URL(url, encoded=True), headers=headers, data=data, allow_redirects=False
    ) as response:
        return Answer(response.status, response.headers, await response.read())


def basic(user: str, password: str) -> dict[str, str]:
    """Build a Basic ``Authorization`` header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def token(http: aiohttp.ClientSession, sim: Simulator, scope: str | None = None) -> str:
    """Get a Talkdesk access token with the demo credentials."""
    body = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
    answer = await call(
        http,
        f"{sim.url}talkdesk/oauth/token",
        method="POST",
        headers={**basic("td-demo-client", "td-demo-secret"), **FORM},
        data=body,
    )
    assert answer.status == 200
    value = answer.json()["access_token"]
    assert isinstance(value, str)
    return value


GRANT = "grant_type=client_credentials"
DEMO_CLIENT = basic("td-demo-client", "td-demo-secret")


async def raw_http(sim: Simulator, head: bytes, body: bytes = b"") -> bytes:
    """Send one hand-written request (request line and headers) and return the raw answer."""
    url = URL(sim.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        length = f"Content-Length: {len(body)}\r\n".encode()
        writer.write(head + b"Host: x\r\nConnection: close\r\n" + length + b"\r\n" + body)
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()
        await writer.wait_closed()
