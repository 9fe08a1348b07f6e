"""The configuration ``--demo`` runs: the three APIs on the built-in simulator."""

from __future__ import annotations

from exporter.config import (
    Authorization,
    Config,
    GlobalConfig,
    Header,
    JobConfig,
    OAuth2,
    Secret,
    SourceConfig,
)
from exporter.simulator import SimCredentials, Simulator
from exporter.simulator.demo import DEMO_JOBS, DEMO_MISSING_ID, DEMO_REPORT_TYPE

DEMO_INTERVAL = 5.0


def demo_config(sim: Simulator, creds: SimCredentials | None = None) -> Config:
    """Watch every demo job, plus one ID the vendor has never heard of."""
    c = creds or SimCredentials()
    evo, fs, td = "evocalize_batch_report", "batch_import_job", "report_job"

    def jobs(api: str, *extra: str) -> tuple[JobConfig, ...]:
        labels = (("team", "demo"),)
        return tuple(JobConfig(i, labels) for i in (*DEMO_JOBS[api], *extra))

    return Config(
        global_=GlobalConfig(poll_interval=DEMO_INTERVAL, finished_job_retention=3600.0),
        sources=(
            SourceConfig(
                name="evocalize",
                api=evo,
                base_url=sim.base_url(evo),
                path="management/v1/items/report/{id}",
                errors_path="management/v1/items/report/{id}/errors",
                poll_interval=DEMO_INTERVAL,
                jobs=jobs(evo, DEMO_MISSING_ID),
                http_headers=(
                    Header("X-Evocalize-Client-Key", secrets=(Secret(inline=c.evocalize_key),)),
                    Header("X-Evocalize-Client-Key-Id", values=(c.evocalize_key_id,)),
                ),
            ),
            SourceConfig(
                name="fullstory",
                api=fs,
                base_url=sim.base_url(fs),
                path="v2/events/batch/{id}",
                poll_interval=DEMO_INTERVAL,
                jobs=jobs(fs),
                authorization=Authorization("Basic", Secret(inline=c.fullstory_api_key)),
            ),
            SourceConfig(
                name="talkdesk",
                api=td,
                base_url=sim.base_url(td),
                path="data/reports/{report_type}/jobs/{id}",
                path_params=(("report_type", DEMO_REPORT_TYPE),),
                poll_interval=DEMO_INTERVAL,
                jobs=jobs(td),
                oauth2=OAuth2(
                    client_id=c.talkdesk_client_id,
                    client_secret=Secret(inline=c.talkdesk_client_secret),
                    token_url=sim.base_url(td) + "oauth/token",
                    scopes=("data-reports:read",),
                ),
            ),
        ),
    )
