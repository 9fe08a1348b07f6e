"""``--demo``: a lively set of jobs on the simulator and the config that watches them.

The jobs run from about one to about ten minutes and come from each vendor
module's ``demo_jobs``; finished jobs stay finished.  :data:`DEMO_MISSING_ID`
is never added, so the demo config, which lists it on the vendors that ask,
shows how the exporter reports a job the vendor does not know.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from exporter.config import Config, format_duration, parse_config
from exporter.simulator.credentials import SimCredentials
from exporter.simulator.state import SimState
from exporter.simulator.vendors import VENDORS, source_config, vendor_url
from exporter.vendors import REGISTRY

DEMO_MISSING_ID = "no-such-job"
DEMO_INTERVAL = 5.0
DEMO_RETENTION = 3600.0
DEMO_LABELS = {"team": "demo"}

DEMO_JOBS: dict[str, tuple[str, ...]] = {
    api: tuple(job.id for job in vendor.demo_jobs) for api, vendor in VENDORS.items()
}
"""The IDs of the demo jobs, by API."""


def demo_jobs(sim: SimState) -> None:
    """Add the demo jobs to ``sim``, starting now by its clock."""
    for api, vendor in VENDORS.items():
        for job in vendor.demo_jobs:
            sim.add_job(
                api,
                job.id,
                total=job.total,
                rate=job.rate,
                error_every=job.error_every,
                outcome=job.outcome,
                start_delay=job.start_delay,
                **asdict(job.options),
            )


def demo_config(sim: SimState, creds: SimCredentials | None = None) -> Config:
    """Watch every demo job, plus one ID the vendor has never heard of.

    The config goes through the exporter's own parser, from the vendors'
    config snippets, as a user's file would.
    """
    interval = format_duration(DEMO_INTERVAL)
    sources = []
    for api, vendor in VENDORS.items():
        ids = (*DEMO_JOBS[api], *((DEMO_MISSING_ID,) if vendor.demo_missing else ()))
        entry = source_config(
            api,
            name=vendor.prefix,
            base_url=vendor_url(sim.url, api),
            jobs=[{"id": job_id, "labels": DEMO_LABELS} for job_id in ids],
            credentials=creds or sim.credentials,
        )
        sources.append({**entry, "poll_interval": interval})
    text = json.dumps(
        {
            "global": {
                "poll_interval": interval,
                "finished_job_retention": format_duration(DEMO_RETENTION),
            },
            "sources": sources,
        }
    )
    return parse_config(text, "<demo>", REGISTRY)
