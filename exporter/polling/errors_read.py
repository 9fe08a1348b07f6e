"""A finished job's errors endpoint, read page by page through the source's gate.

A read the gate defers (the job request just used the source's rate slot), or
whose page fails (a 5xx, a timeout, a body that does not parse), is kept by the
poller, and the next poll goes on from that page: the job request is not sent
again, and no page is counted twice.  A read that keeps failing is abandoned
(:meth:`ErrorsRead.give_up`): the job is recorded finished with what was read.
A listing that answers "not ready yet" (the API's ``errors_pending_statuses``)
is no failure: it is asked again at the source's interval until it answers or
the finished-job retention has passed since the job was seen finished.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from yarl import URL

from exporter.config import SourceConfig
from exporter.jobs.entry import JobView
from exporter.model import ErrorsPage, Response, Snapshot, VendorError
from exporter.polling.outcomes import Deferred, PollFailed
from exporter.polling.runtime import PollClient, Runtime

__all__ = [
    "MAX_ERROR_PAGES",
    "MAX_READ_FAILURES",
    "ErrorsRead",
    "ListingPending",
    "read_errors",
]

LOG = logging.getLogger(__name__)

# An errors endpoint that never stops paging is a vendor bug, not a reason to loop forever.
MAX_ERROR_PAGES = 1000
# A listing failing this many times in a row (or for the finished-job retention) is given up.
MAX_READ_FAILURES = 20

# One request through the source's gate: the poller's, which raises on anything but an answer.
Get = Callable[[Runtime[PollClient], URL], Awaitable[Response]]


class ListingPending(Deferred):
    """The listing is not ready yet: not a failure; the read is kept and asked in ``delay``."""


@dataclass(slots=True)
class ErrorsRead:
    """A finished job's errors read so far: a poll the gate defers resumes it here."""

    entry: JobView
    snap: Snapshot
    seen_at: float  # wall time of the job request that saw it finished
    # The settings it reads with: a reload that changes them starts the read over.
    source: SourceConfig | None = None
    refresh: bool = False  # a running job's re-read: its oddities were logged the first time
    totals: dict[str, int] = field(default_factory=dict)
    token: str | None = None
    seen: set[str] = field(default_factory=set)
    pages: int = 0
    failures: int = 0  # failed pages in a row
    failing_since: float | None = None  # monotonic time of the first of them
    listed: int | None = None  # the listing's own count of failures, as its last page said

    def add(self, page: ErrorsPage) -> None:
        """One more page read: its counts join the totals, and the failures in a row end."""
        self.pages += 1
        self.failures, self.failing_since = 0, None
        self.listed = page.total
        for code, n in page.counts:
            self.totals[code] = self.totals.get(code, 0) + n

    def failed(self, now: float) -> None:
        """A page failed at monotonic time ``now``; the read resumes from it."""
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = now

    def give_up(self, now: float, wall: float, within: float) -> bool:
        """Whether to stop: failed too often, or for ``within`` seconds, or that long since seen.

        ``now`` is monotonic time, ``wall`` wall time (``seen_at`` is wall time).
        """
        since = self.failing_since
        return (
            self.failures >= MAX_READ_FAILURES
            or (since is not None and now - since >= within)
            or wall - self.seen_at >= within
        )


async def read_errors(
    src: Runtime[PollClient],
    read: ErrorsRead,
    get: Get,
    *,
    now: Callable[[], float],
    within: float,
    max_pages: int = MAX_ERROR_PAGES,
) -> None:
    """Read errors pages into ``read`` until the last (or ``max_pages``), each through the gate.

    ``now`` is the wall clock; a listing not ready is waited for ``within``
    seconds (the finished-job retention) after the job was seen finished.
    """
    source = src.client.source
    job_id = read.entry.key[1]
    template = source.errors_path or src.spec.default_errors_path
    parse = src.spec.parse_errors_page
    if parse is None or template is None:
        raise PollFailed("errors_endpoint")
    while read.pages < max_pages:
        query = {source.errors_page_token_param: read.token} if read.token else None
        resp = await get(src, src.client.url(template, job_id, query))
        if resp.status in src.spec.errors_pending_statuses:
            waited = now() - read.seen_at
            if waited < within:
                LOG.debug("errors of %s/%s: not ready (HTTP %d)", source.name, job_id, resp.status)
                raise ListingPending(src.interval)
            LOG.warning(
                "errors of %s/%s: listing still not ready (HTTP %d) %.0fs after the job "
                "finished; recording it finished with the %d pages read",
                source.name,
                job_id,
                resp.status,
                waited,
                read.pages,
            )
            return
        if resp.status != 200:
            detail = src.spec.error_text(resp) or f"HTTP {resp.status}"
            LOG.warning("errors of %s/%s: unexpected answer: %s", source.name, job_id, detail)
            raise PollFailed("errors_endpoint")
        try:
            page = parse(resp)
        except VendorError as exc:
            LOG.warning("errors of %s/%s: %s", source.name, job_id, exc)
            raise PollFailed(exc.reason) from None
        read.add(page)
        token = page.next_token
        if token is None:
            if not read.refresh:
                _check_listed(source.name, job_id, read)
            return
        # Each is said once per job: a running job's refreshes say it at debug level.
        once = LOG.debug if read.refresh else LOG.warning
        if token in read.seen:
            once(
                "errors of %s/%s: the listing repeated a page token; stopped after %d pages, "
                "its error counts may be truncated",
                source.name,
                job_id,
                read.pages,
            )
            return
        read.seen.add(token)
        read.token = token
    (LOG.debug if read.refresh else LOG.warning)(
        "errors of %s/%s: stopped after %d pages; its error counts are truncated",
        source.name,
        job_id,
        max_pages,
    )


def _check_listed(source: str, job_id: str, read: ErrorsRead) -> None:
    """Say so when the pages read list fewer failures than the listing counts (once per job)."""
    counted = sum(read.totals.values())
    if read.listed is not None and counted < read.listed:
        LOG.info(
            "errors of %s/%s: the listing counts %d failures but its %d pages list %d",
            source,
            job_id,
            read.listed,
            read.pages,
            counted,
        )
