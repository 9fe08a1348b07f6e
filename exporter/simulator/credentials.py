"""The secrets the simulated APIs accept: one frozen value the simulator is given.

Each vendor module under ``simulator/vendors/`` checks its own fields and puts
them in its config snippet; the defaults are the documented demo secrets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimCredentials:
    """The secrets each simulated API accepts; ``token_ttl`` is Talkdesk's token life (s).

    ``evocalize_modes`` are the ways Evocalize lets a request in: ``client_key``
    (the key headers) and ``signature`` (key ID, timestamp, signature with
    ``evocalize_secret``); the config snippet uses the client key if allowed.
    """

    evocalize_key: str = "evo-demo-key"
    evocalize_key_id: str = "evo-demo-id"
    evocalize_secret: str = "evo-demo-secret"  # noqa: S105 - a documented demo secret
    evocalize_modes: frozenset[str] = frozenset({"client_key", "signature"})
    fullstory_api_key: str = "fs-demo-key"
    talkdesk_client_id: str = "td-demo-client"
    talkdesk_client_secret: str = "td-demo-secret"  # noqa: S105 - a documented demo secret
    token_ttl: int = 3600
