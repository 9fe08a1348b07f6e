"""The failures the soak injects into the simulator: its own fault kinds, and dropped connections.

Each :class:`Injection` is one entry of the deck the chaos deals from, so
that every kind comes round again and again, in a seeded random order.  Kinds
left out on purpose: ``unauthorized`` (a 401 holds the account for 5 minutes
across the whole fleet, by design, which would only idle an API) and the
token endpoint's refusals for the same reason.  ``not_found`` hits one
request only: three 404s in a row would rightly make a job ``not_found``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate

from soak.world import TOKEN_TARGET

HUGE_OVER_CAP = 9 << 20  # over the exporter's 8 MiB body cap
Body = Callable[[random.Random, float], dict[str, object]]


def _seconds(rng: random.Random) -> str:
    return str(rng.randint(2, 5))


def http_date(rng: random.Random) -> str:
    """A ``Retry-After`` in the HTTP-date form, 3 to 6 s ahead (whole seconds, as the form is)."""
    return formatdate(math.ceil(time.time()) + rng.randint(3, 6), usegmt=True)


@dataclass(frozen=True, slots=True)
class Injection:
    """One kind of failure: its name in the report, where it goes, and its fault's JSON.

    ``token``: on the token endpoint rather than on an API; ``drop``: not a
    simulator fault but the soak simulator's cut connections (``count`` only).
    """

    name: str
    body: Body
    token: bool = False
    drop: bool = False


def _fault(kind: str, **fixed: object) -> Body:
    def body(rng: random.Random, timeout: float) -> dict[str, object]:
        del rng, timeout
        return {"kind": kind, **fixed}

    return body


WINDOWS: tuple[Injection, ...] = (
    Injection(
        "429, Retry-After seconds",
        lambda rng, t: {"kind": "rate_limit", "retry_after": _seconds(rng), "count": 1},
    ),
    Injection(
        "429, Retry-After HTTP-date",
        lambda rng, t: {"kind": "rate_limit", "retry_after": http_date(rng), "count": 1},
    ),
    Injection(
        "503, Retry-After seconds",
        lambda rng, t: {"kind": "unavailable", "retry_after": _seconds(rng), "count": 1},
    ),
    Injection(
        "503, Retry-After HTTP-date",
        lambda rng, t: {"kind": "unavailable", "retry_after": http_date(rng), "count": 1},
    ),
)
OTHERS: tuple[Injection, ...] = (
    Injection("503", lambda rng, t: {"kind": "unavailable", "count": rng.randint(1, 2)}),
    Injection("500", lambda rng, t: {"kind": "server_error", "count": rng.randint(1, 3)}),
    Injection("HTML page", lambda rng, t: {"kind": "html", "count": rng.randint(1, 2)}),
    Injection(
        "truncated JSON", lambda rng, t: {"kind": "truncated_json", "count": rng.randint(1, 2)}
    ),
    Injection("huge body, 1 MiB", _fault("huge", count=1)),
    Injection("huge body, over the cap", _fault("huge", count=1, size=HUGE_OVER_CAP)),
    Injection(
        "slow answer",
        lambda rng, t: {
            "kind": "slow",
            "delay": round(rng.uniform(0.2, t / 2), 2),
            "count": rng.randint(1, 3),
        },
    ),
    Injection("slow past the timeout", lambda rng, t: {"kind": "slow", "delay": t + 1, "count": 1}),
    Injection("404 once", _fault("not_found", count=1)),
    Injection("dropped connection", lambda rng, t: {"count": rng.randint(1, 3)}, drop=True),
    Injection("token: 500", _fault("server_error", count=1), token=True),
    Injection("token: 503", _fault("unavailable", count=1), token=True),
    Injection("token: HTML page", _fault("html", count=1), token=True),
    Injection("token: truncated JSON", _fault("truncated_json", count=1), token=True),
    Injection(
        "token: slow past the timeout",
        lambda rng, t: {"kind": "slow", "delay": t + 1, "count": 1},
        token=True,
    ),
)


# The windows twice: they are what the fleet shares, so the check needs many of them.
DECK = WINDOWS + WINDOWS + OTHERS


def target_of(injection: Injection, rng: random.Random, apis: tuple[str, ...]) -> str:
    """Where the injection goes: the token endpoint, or one of ``apis`` at random."""
    return TOKEN_TARGET if injection.token else rng.choice(apis)
