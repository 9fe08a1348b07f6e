"""What polling one source needs, and the client seam the poller talks through.

The poller and the errors read use only :class:`PollClient`: a URL builder,
a GET, the source's settings and its credentials.  The pool opens a real
:class:`~exporter.polling.client.SourceClient` per source (a
:data:`SourceRuntime`); tests give the poller a fake client on a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from yarl import URL

from exporter.config import SourceConfig
from exporter.model import Response
from exporter.polling.budget import Budget
from exporter.polling.client import SourceClient
from exporter.polling.gate import SourceGate
from exporter.polling.plans import SourcePlan
from exporter.vendors.base import ApiSpec

__all__ = ["PollAuth", "PollClient", "Runtime", "SourceRuntime"]


class PollAuth(Protocol):
    """A source's credentials as the poller uses them."""

    async def headers(self) -> Mapping[str, str]:
        """Every header a request carries; may fetch an OAuth2 token (AuthError if not)."""
        ...

    def invalidate(self) -> bool:
        """Forget the OAuth2 token the API refused; whether there was one to forget."""
        ...


class PollClient(Protocol):
    """HTTP access to one source, as far as the poller needs it."""

    @property
    def source(self) -> SourceConfig:
        """The source's settings (name, paths, errors page token parameter)."""
        ...

    @property
    def auth(self) -> PollAuth:
        """The source's credentials."""
        ...

    def url(self, template: str, job_id: str, query: Mapping[str, str] | None = None) -> URL:
        """The absolute URL for a job, the ID kept as one path segment."""
        ...

    async def get(self, url: URL, headers: Mapping[str, str]) -> Response | str:
        """One GET: the answer, or a short failure reason (``timeout``, ...)."""
        ...


# Covariant: a runtime of a real client is a runtime of a PollClient to the poller.
C_co = TypeVar("C_co", bound=PollClient, covariant=True)


@dataclass(slots=True)
class Runtime(Generic[C_co]):
    """What polling one source needs: its API, client, gate and interval.

    An adaptive source has its ``plan`` (``interval`` then only spreads first
    polls and paces what waits for a listing); a rate-capped one has its
    ``budget``, the scheduler's lane for it.
    """

    spec: ApiSpec
    client: C_co
    gate: SourceGate
    interval: float
    auth_failing: bool = False  # credentials refused: said once, until they work again
    plan: SourcePlan | None = None
    budget: Budget | None = None


# The runtime the pool opens for each configured source.
SourceRuntime = Runtime[SourceClient]
