"""PromQL shared by the dashboards: job selectors, joins and derived item counts."""

from __future__ import annotations

# The job label used for the "team" variable; rename it here if your config uses another.
TEAM_LABEL = "team"

FINISHED = "completed|failed|canceled|deleted"
# A job's identity across scrape targets: join on it so two exporters never collide.
KEY = "job, instance, source, job_id"

JOBS = 'source=~"$source", job_id=~"$job_id"'
# The selected jobs of the selected team(s).  "All" is ".*", which also matches jobs
# without the label.
TEAM_INFO = f'batchjob_info{{{JOBS}, {TEAM_LABEL}=~"${TEAM_LABEL}"}}'
# Appended to a per-job expression: keep only jobs of the selected team(s).
TEAM = f"and on ({KEY}) {TEAM_INFO}"


def running(sel: str) -> str:
    """Appended to a per-job expression: keep only jobs that are running."""
    return f'and on ({KEY}) (batchjob_status{{{sel}, status="running"}} == 1)'


def per_job(expr: str) -> str:
    """``expr`` with only the job's identity as labels: no ``__name__``.

    Grafana's merge transformation puts two tables' rows together only where every
    column they share agrees; a metric name left in each would split a job's row.
    """
    return f"max by ({KEY}) ({expr})"


def processed(sel: str) -> str:
    """Items processed: ``completed`` where the API sends it, else successful + error."""
    return (
        f"(batchjob_completed_items{{{sel}}} or on ({KEY}) "
        f'sum by ({KEY}) ({{__name__=~"batchjob_(successful|error)_items", {sel}}}))'
    )


def successful_plus_error(sel: str) -> str:
    """Successful + error items, whichever of the two the API sends."""
    return f'sum by ({KEY}) ({{__name__=~"batchjob_(successful|error)_items", {sel}}})'
