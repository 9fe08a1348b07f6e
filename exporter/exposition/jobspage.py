"""The jobs page at ``/`` as HTML: pure rendering, no I/O, every outside value escaped.

Job IDs, labels, vendor statuses, error codes, source names and failure
reasons all come from outside (a config, an app, a vendor): each goes through
:func:`html.escape` on its way in, attribute values and URLs included, and the
page's policy (:mod:`exporter.exposition.jobsstyle`) runs no script at all.
The page refreshes itself every :data:`REFRESH` seconds with a meta refresh
(no JavaScript needed) to the view it shows.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from exporter.exposition.jobsquery import POLL_FAILED, STATUSES, Query, Selection
from exporter.exposition.jobsstyle import HEADERS, STYLE
from exporter.jobs.view import JobSummary
from exporter.polling.gate import GateState

__all__ = ["REFRESH", "HtmlAnswer", "SourceRow", "bad_request", "jobs_page"]

REFRESH = 5  # seconds
TOP_ERRORS = 3
STATUS_TEXT = {
    POLL_FAILED: "last poll failed",
    "not_found": "not found",
    "unpolled": "not polled yet",
}
GATE_REASONS = {
    "retry-after": "the vendor's Retry-After",
    "backoff": "backing off after errors",
    "auth": "credentials refused (401/403)",
}
NONE = '<span class="muted">none</span>'
esc = html.escape


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One source as the page shows it: its API and its manners right now."""

    name: str
    api: str | None  # None: no longer configured, but jobs of it are still watched
    gate: GateState | None
    budget_used: float | None = None  # share of its request budget used, once there is one


@dataclass(frozen=True, slots=True)
class HtmlAnswer:
    """A page and how to send it."""

    status: int
    body: str
    headers: Mapping[str, str]


def _status_text(name: str) -> str:
    return STATUS_TEXT.get(name, name)


def _href(pairs: Sequence[tuple[str, str]]) -> str:
    """A same-page link to the view of ``pairs``, escaped for an attribute."""
    return esc("?" + urlencode(pairs))


def _span(seconds: float) -> str:
    """A duration for people: 42s, 12m 05s, 3h 04m, 2d 03h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(wall))


def _head(title: str, refresh: str | None) -> list[str]:
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
    ]
    if refresh is not None:
        out.append(f'<meta http-equiv="refresh" content="{REFRESH}; url={refresh}">')
    out += [
        f"<title>{esc(title)}</title>",
        '<link rel="icon" href="data:,">',
        f"<style>{STYLE}</style></head><body>",
    ]
    return out


def _header(version: str, now: float) -> str:
    return (
        f'<header><h1>batch-job-exporter</h1><span class="muted">version {esc(version)} · '
        f"updated {_clock(now)}</span>"
        '<nav aria-label="Endpoints"><a href="metrics">metrics</a>'
        '<a href="healthz">healthz</a><a href="readyz">readyz</a></nav></header>'
    )


def _manners(gate: GateState | None, now: float) -> str:
    if gate is None:
        return '<span class="muted">not configured</span>'
    if gate.closed_for <= 0:
        return '<span class="gate-open">open</span>'
    why = GATE_REASONS.get(gate.reason or "", gate.reason or "")
    return (
        f'<span class="gate-closed">closed for {_span(gate.closed_for + 0.999)}</span>'
        f'<span class="sub">until {_clock(now + gate.closed_for)}: {esc(why)}</span>'
    )


def _sources(rows: Sequence[SourceRow], counts: Mapping[str, Mapping[str, int]], now: float) -> str:
    budget = any(row.budget_used is not None for row in rows)
    out = [
        '<section aria-labelledby="sources-h"><h2 id="sources-h">Sources</h2><div class="wrap">',
        '<table><thead><tr><th scope="col">Source</th><th scope="col">API</th>'
        '<th scope="col" class="num">Jobs</th><th scope="col">By status</th>'
        '<th scope="col">Manners now</th><th scope="col">Rate cap</th>',
        '<th scope="col">Budget used</th>' if budget else "",
        "</tr></thead><tbody>",
    ]
    for row in rows:
        by_status = counts.get(row.name, {})
        jobs = sum(n for name, n in by_status.items() if name != POLL_FAILED)
        chips = "".join(
            f'<a class="badge b-{name}" href="{_href([("source", row.name), ("status", name)])}">'
            f"{n:,} {_status_text(name)}</a>"
            for name in STATUSES
            if (n := by_status.get(name, 0))
        )
        cap = None if row.gate is None else row.gate.max_rate
        out += [
            f'<tr><th scope="row"><a href="{_href([("source", row.name)])}">',
            f"{esc(row.name)}</a></th>",
            f'<td>{esc(row.api or "-")}</td><td class="num">{jobs:,}</td>',
            f'<td><span class="counts">{chips or NONE}</span></td>',
            f"<td>{_manners(row.gate, now)}</td>",
            f"<td>{'none' if cap is None else f'{cap:g} requests/s'}</td>",
        ]
        if budget:
            used = row.budget_used
            out.append(f'<td class="num">{"-" if used is None else f"{used:.0%}"}</td>')
        out.append("</tr>")
    if not rows:
        out.append('<tr><td colspan="6" class="muted">No sources are configured.</td></tr>')
    out.append("</tbody></table></div></section>")
    return "".join(out)


def _option(value: str, text: str, selected: bool) -> str:
    return f'<option value="{esc(value)}"{" selected" if selected else ""}>{esc(text)}</option>'


def _form(query: Query, sources: Sequence[str], counts: Mapping[str, Mapping[str, int]]) -> str:
    in_view = [counts[s] for s in counts if not query.sources or s in query.sources]
    per_status = {name: sum(c.get(name, 0) for c in in_view) for name in STATUSES}
    source_options = "".join(_option(s, s, s in query.sources) for s in sources)
    status_options = "".join(
        _option(name, f"{_status_text(name)} ({per_status[name]:,})", name in query.statuses)
        for name in STATUSES
    )
    one_source = len(query.sources) <= 1
    one_status = len(query.statuses) <= 1
    return (
        '<form method="get" role="search" aria-label="Filter jobs">'
        '<div><label for="f-source">Source</label><select id="f-source" name="source"'
        f"{'' if one_source else ' multiple'}>"
        f"{_option('', 'all sources', not query.sources)}{source_options}</select></div>"
        '<div><label for="f-status">Status</label><select id="f-status" name="status"'
        f"{'' if one_status else ' multiple'}>"
        f"{_option('', 'any status', not query.statuses)}{status_options}</select></div>"
        '<div><label for="f-q">Job ID contains</label><input id="f-q" name="q" type="search" '
        f'value="{esc(query.q)}" placeholder="part of a job ID"></div>'
        '<div><button type="submit">Show</button></div>'
        '<div><a href="?">clear filters</a></div></form>'
    )


def _progress(job: JobSummary) -> str:
    total, done = job.total_items, job.done_items()
    errors = job.error_items or 0
    if total:
        ok = job.successful_items if job.successful_items is not None else (done or 0) - errors
        scale = 100.0 / total
        kind = "bar"
        text = (
            f"total {total:,}"
            if done is None
            else f"{done:,} of {total:,} · {min(done * 100 // total, 100)}%"
        )
    elif job.successful_items is not None or job.error_items is not None:
        # No total: the bar shows successful against failed items, not how far along it is.
        ok = job.successful_items or 0
        scale = 100.0 / max(ok + errors, 1)
        ended = job.status is not None and job.status.finished
        text = f"{ok:,} successful" if ended else f"{ok:,} successful so far"
        kind = "bar split"
    else:
        return '<span class="muted">-</span>'
    w_ok = min(max(ok, 0) * scale, 100.0)
    w_err = min(errors * scale, 100.0 - w_ok)
    bar = (
        f'<svg class="{kind}" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
        '<rect class="track" width="100" height="6"/>'
        f'<rect class="ok" width="{w_ok:.2f}" height="6"/>'
        f'<rect class="err" x="{w_ok:.2f}" width="{w_err:.2f}" height="6"/></svg>'
    )
    failed = f' · <span class="errs">{errors:,} failed</span>' if errors else ""
    return f"{bar}{text}{failed}"


def _top_errors(job: JobSummary) -> str:
    if not job.errors_by_code:
        return '<span class="muted">-</span>'
    ranked = sorted(job.errors_by_code, key=lambda item: (-item[1], item[0]))
    shown = "".join(
        f'<span class="sub"><code>{esc(code)}</code> {n:,}</span>'
        for code, n in ranked[:TOP_ERRORS]
    )
    more = len(ranked) - TOP_ERRORS
    return shown + (f'<span class="sub">and {more:,} more codes</span>' if more > 0 else "")


def _last_poll(job: JobSummary, now: float) -> str:
    seen = "never" if job.last_success is None else f"{_span(now - job.last_success)} ago"
    if job.poll_success is not False:
        return seen
    why = esc(job.last_failure or "reason unknown (before a restart)")
    return f'{seen}<span class="sub warn">failing: {why}</span>'


def _row(job: JobSummary, now: float) -> str:
    name = "unpolled" if job.status is None else job.status.value
    labels = "".join(f'<span class="label">{esc(k)}={esc(v)}</span>' for k, v in job.labels)
    labels = f'<span class="sub">{labels}</span>' if labels else ""
    vendor = (
        "" if job.vendor_status is None else f'<span class="sub">{esc(job.vendor_status)}</span>'
    )
    duration = job.duration(now)
    return (
        f'<tr><th scope="row"><span class="id">{esc(job.job_id)}</span>{labels}</th>'
        f'<td>{esc(job.source)}<span class="sub">{esc(job.api)}</span></td>'
        f'<td><span class="badge b-{name}">{_status_text(name)}</span>{vendor}</td>'
        f"<td>{_progress(job)}</td><td>{_top_errors(job)}</td>"
        f'<td class="num">{"-" if duration is None else _span(duration)}</td>'
        f"<td>{_last_poll(job, now)}</td><td>{job.origin.value}</td></tr>"
    )


def _pager(query: Query, sel: Selection) -> str:
    def link(page: int, text: str, rel: str) -> str:
        if page < 1 or page > sel.pages or page == sel.page:
            return f'<span class="muted">{text}</span>'
        return f'<a rel="{rel}" href="{_href(query.params(page))}">{text}</a>'

    return (
        f'<nav class="pager" aria-label="Pages">{link(sel.page - 1, "← previous", "prev")}'
        f"<span>page {sel.page:,} of {sel.pages:,}</span>{link(sel.page + 1, 'next →', 'next')}"
        "</nav>"
    )


def jobs_page(
    *,
    selection: Selection,
    jobs: Sequence[JobSummary],
    sources: Sequence[SourceRow],
    query: Query,
    now: float,
    version: str,
) -> HtmlAnswer:
    """The jobs page: sources and their manners, the filter form, one page of jobs."""
    sel = selection
    shown = query.params(sel.page)
    out = _head("Jobs · batch-job-exporter", _href(shown))
    out += [
        _header(version, now),
        "<main>",
        _sources(sources, sel.counts, now),
        '<section aria-labelledby="jobs-h"><h2 id="jobs-h">Jobs</h2>',
        _form(query, [row.name for row in sources], sel.counts),
    ]
    first, last = (sel.offset + 1, sel.offset + len(jobs)) if jobs else (0, 0)
    out.append(
        f'<p role="status">{first:,}&ndash;{last:,} of {sel.matched:,} matching '
        f"({sel.total:,} watched), failed and failing first · refreshes every {REFRESH}s</p>"
    )
    out += [
        '<div class="wrap"><table><thead><tr><th scope="col">Job</th><th scope="col">Source</th>'
        '<th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Top errors</th>'
        '<th scope="col" class="num">Duration</th><th scope="col">Last good poll</th>'
        '<th scope="col">Origin</th></tr></thead><tbody>',
        *(_row(job, now) for job in jobs),
    ]
    if not jobs:
        empty = "No jobs match these filters." if sel.total else "No jobs are watched yet."
        out.append(f'<tr><td colspan="8" class="muted">{empty}</td></tr>')
    out += ["</tbody></table></div>", _pager(query, sel), "</section></main></body></html>\n"]
    return HtmlAnswer(200, "".join(out), HEADERS)


def bad_request(message: str, *, version: str, now: float) -> HtmlAnswer:
    """A 400 page for a query the jobs page cannot show: what is wrong, and a way back."""
    out = _head("Bad request · batch-job-exporter", None)
    out += [
        _header(version, now),
        f'<main><p class="alert" role="alert">{esc(message)}</p>',
        '<p><a href="?">Show every job</a></p></main></body></html>\n',
    ]
    return HtmlAnswer(400, "".join(out), HEADERS)
