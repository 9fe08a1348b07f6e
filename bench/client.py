"""Timing scrapes: batches of scrapes by curl (a C client), or by aiohttp without curl.

A scrape is timed from sending the request to reading the last byte of the
body, compressed bytes as they came (no decompression is timed), like a
scraper that keeps its connection open between scrapes.  curl is preferred:
Prometheus is a compiled client too, and an aiohttp client reading a 13 MB
page in Python is slower than the servers it would be timing.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import time
from dataclasses import dataclass, field

import aiohttp

CURL_LINE = re.compile(r"(\S+) (\d+) \[(.*)\]")


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class Timings:
    """Durations of repeated scrapes, the size of the last body and how it was encoded."""

    seconds: list[float] = field(default_factory=list)
    size: int = 0
    encoding: str = ""

    def add(self, other: Timings) -> None:
        """Append another batch."""
        self.seconds += other.seconds
        self.size, self.encoding = other.size, other.encoding

    def summary(self) -> dict[str, float | str]:
        """``n``, ``p50_ms``, ``p99_ms``, ``max_ms``, ``bytes`` and ``encoding``."""
        if not self.seconds:
            return {"n": 0}
        s = self.seconds
        return {
            "n": len(s),
            "p50_ms": round(percentile(s, 50) * 1000, 2),
            "p99_ms": round(percentile(s, 99) * 1000, 2),
            "max_ms": round(max(s) * 1000, 2),
            "bytes": self.size,
            "encoding": self.encoding,
        }


def client_session() -> aiohttp.ClientSession:
    """A keep-alive session that leaves bodies compressed."""
    return aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=300))


def accept(use_gzip: bool) -> dict[str, str]:
    """The request headers: gzip, or explicitly no encoding."""
    return {"Accept-Encoding": "gzip" if use_gzip else "identity"}


class Scraper:
    """Scrapes one URL in batches over one connection each: curl if installed, else aiohttp."""

    def __init__(self, url: str, *, prefer_curl: bool = True) -> None:
        self.url = url
        self.curl = shutil.which("curl") if prefer_curl else None
        self._session: aiohttp.ClientSession | None = None

    @property
    def client(self) -> str:
        """Which client times the scrapes."""
        return "curl" if self.curl else "aiohttp"

    async def close(self) -> None:
        """Close the aiohttp session, if one was opened."""
        if self._session is not None:
            await self._session.close()

    async def batch(self, n: int, *, use_gzip: bool) -> Timings:
        """``n`` timed scrapes, one after the other."""
        if self.curl is not None:
            return await self._curl(self.curl, n, use_gzip)
        if self._session is None:
            self._session = client_session()
        out = Timings()
        for _ in range(n):
            started = time.perf_counter()
            async with self._session.get(self.url, headers=accept(use_gzip)) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{self.url}: HTTP {resp.status}")
                out.encoding = resp.headers.get("Content-Encoding", "identity")
            out.seconds.append(time.perf_counter() - started)
            out.size = len(body)
        return out

    async def _curl(self, curl: str, n: int, use_gzip: bool) -> Timings:
        args = ["-s", "-w", "%{time_total} %{size_download} [%header{content-encoding}]\\n"]
        for name, value in accept(use_gzip).items():  # not --compressed: time the bytes as sent
            args += ["-H", f"{name}: {value}"]
        for _ in range(n):
            args += ["-o", "/dev/null", self.url]
        proc = await asyncio.create_subprocess_exec(
            curl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        stdout, _ = await proc.communicate()
        out = Timings()
        for line in stdout.decode().splitlines():
            match = CURL_LINE.fullmatch(line)
            if match is None:
                raise RuntimeError(f"curl {self.url}: unexpected output {line!r}")
            out.seconds.append(float(match.group(1)))
            out.size, out.encoding = int(match.group(2)), match.group(3) or "identity"
        if len(out.seconds) != n:
            raise RuntimeError(f"curl {self.url}: {len(out.seconds)} of {n} scrapes answered")
        return out
