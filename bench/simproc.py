"""The simulator in a process of its own, driven by commands on its standard input.

``python -m bench.simproc SPEC.json`` where SPEC holds
``{"jobs": [[api, id, total, rate, outcome], ...]}``.  Prints the line
``simulator listening on URL`` like ``python -m exporter.simulator``, then
answers one JSON line per command line on stdin, and stops when stdin closes
(the benchmark holds the other end, so the simulator never outlives it):

* ``add API ID TOTAL RATE OUTCOME``: one more job (no answer line, to keep it cheap);
* ``mark``: start counting afresh;
* ``stats``: vendor requests answered since the mark, distinct jobs asked about, and
  the *gaps*: per job, from the end of one answer to the arrival of the next request.
  A job polled every ``interval`` has gaps of ``interval`` plus its scheduling lateness
  (and the exporter's own handling of the answer), so ``gap - interval`` is an upper
  bound on how late the poll started.

Times are ``time.monotonic()`` (one clock for every process on the machine).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from exporter.simulator import RecordedRequest, Simulator

KEEP_REQUESTS = 1000  # the simulator's request log is trimmed to this many past this many x 20


class CountingSimulator(Simulator):
    """A simulator that keeps counts and per-job gaps instead of a growing request log."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = 0
        self.gaps: list[float] = []
        self.seen: set[tuple[str, str]] = set()
        self._last_end: dict[tuple[str, str], float] = {}

    def mark(self) -> None:
        """Start counting afresh (gaps still need the last answer before the mark)."""
        self.answered = 0
        self.gaps = []
        self.seen = set()

    def _settle(self, record: RecordedRequest, status: int) -> None:
        super()._settle(record, status)
        if record.api is None or record.job_id is None:
            return  # the token endpoint, or not a vendor request
        key = (record.api, record.job_id)
        now = time.monotonic()
        last = self._last_end.get(key)
        if last is not None:
            self.gaps.append(record.monotonic - last)
        self._last_end[key] = now
        self.answered += 1
        self.seen.add(key)
        if len(self.requests) > 20 * KEEP_REQUESTS:
            del self.requests[:-KEEP_REQUESTS]

    def stats(self) -> dict[str, object]:
        """What ``stats`` answers."""
        gaps = sorted(self.gaps)

        def q(p: float) -> float:
            return round(gaps[min(len(gaps) - 1, int(p * len(gaps)))], 4) if gaps else 0.0

        return {
            "answered": self.answered,
            "jobs_seen": len(self.seen),
            "gaps": {"n": len(gaps), "p50": q(0.5), "p99": q(0.99), "max": q(1.0)},
            "monotonic": time.monotonic(),
        }


def command(sim: CountingSimulator, line: str) -> str | None:
    """Run one command line; the JSON answer, if it has one."""
    words = line.split()
    if not words:
        return None
    if words[0] == "add":
        _, api, job_id, total, rate, outcome = words
        sim.add_job(api, job_id, total=int(total), rate=float(rate), outcome=outcome)
        return None
    if words[0] == "mark":
        sim.mark()
        return json.dumps({"marked": time.monotonic()})
    if words[0] == "stats":
        return json.dumps(sim.stats())
    return json.dumps({"error": f"unknown command {words[0]!r}"})


async def serve(spec_path: str) -> None:
    """Start the simulator with the jobs of ``spec_path``; obey stdin until it closes."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))  # noqa: ASYNC240 - start-up
    sim = CountingSimulator()
    for api, job_id, total, rate, outcome in spec["jobs"]:
        sim.add_job(api, job_id, total=total, rate=rate, outcome=outcome)
    await sim.start("127.0.0.1", 0)
    print(f"simulator listening on {sim.url}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async for raw in reader:
            answer = command(sim, raw.decode())
            if answer is not None:
                print(answer, flush=True)
    finally:
        await sim.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
