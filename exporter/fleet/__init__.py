"""A fleet of exporters on one vendor account, sharing politeness and registrations via Redis.

Every key of a fleet starts with ``bje:{NAME}:`` (``NAME`` is ``fleet.name``;
the braces are a Redis Cluster hash tag, so a fleet's keys share one slot),
so several fleets can share one Redis:

==============================  ====================================================
``bje:{NAME}:members``          sorted set: member ID → when its heartbeat lapses
                                (Redis ms); counted for each exporter's share
``bje:{NAME}:windows``          hash: account → ``UNTIL REASON`` (wall seconds,
                                ``retry-after`` or ``auth``); expires with its last window
``bje:{NAME}:bucket:ACCOUNT``   hash: ``tokens``, ``at`` (Redis ms), ``rate`` and
                                ``rate_at``: the account's token bucket and the
                                smallest budget asked with lately
``bje:{NAME}:jobs``             hash: ``["source","job_id"]`` (JSON) →
                                ``REGISTERED_AT LABELS`` (wall seconds, JSON pairs)
``bje:{NAME}:jobs:count``       hash: source → how many jobs it has registered
==============================  ====================================================

Pub/sub channels (a namespace of their own): ``bje:{NAME}:windows`` carries
``[account, until, reason]`` (JSON) for each window opened or extended;
``bje:{NAME}:jobs`` carries ``+FIELD``, a newline and ``VALUE`` (registered or
relabelled), and ``-FIELD`` (removed).  Nothing else is stored: OAuth2 tokens and other
secrets stay in each process.
"""

from exporter.fleet.limiter import Limiter
from exporter.fleet.link import Link, default_member
from exporter.fleet.member import Fleet
from exporter.fleet.registrations import Change, Registration, Registrations
from exporter.fleet.windows import REASONS, Windows
from exporter.fleet.wire import FleetUnavailable, Timings

__all__ = [
    "REASONS",
    "Change",
    "Fleet",
    "FleetUnavailable",
    "Limiter",
    "Link",
    "Registration",
    "Registrations",
    "Timings",
    "Windows",
    "default_member",
]
