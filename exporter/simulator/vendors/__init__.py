"""The simulated vendor APIs, one module each, and what the rest of the simulator reads of them.

Each module (``evocalize``, ``fullstory``, ``talkdesk``) declares a
:class:`SimVendor`; :data:`VENDORS` lists them by API name, the same names as
:data:`exporter.vendors.REGISTRY`.  Adding an API means adding its module and
one line to ``_VENDORS``.  The server's routes, fault targets, error shapes and
job options, the demo, and the config snippets and job mix of tests and bench
are all built from here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from exporter.simulator.credentials import SimCredentials
from exporter.simulator.faults import ALL_TARGET
from exporter.simulator.jobs import JobOptions
from exporter.simulator.responses import ErrorBody
from exporter.simulator.vendors import evocalize, fullstory, talkdesk
from exporter.simulator.vendors.base import AccountOf, Answer, DemoJob, Route, SimVendor

__all__ = [
    "ACCOUNTS",
    "APIS",
    "ERROR_BODIES",
    "FAULT_TARGETS",
    "JOB_OPTIONS",
    "PREFIXES",
    "ROUTES",
    "SPARED_TARGETS",
    "VENDORS",
    "AccountOf",
    "Answer",
    "DemoJob",
    "Route",
    "SimVendor",
    "source_config",
    "source_yaml",
    "vendor_url",
]

_VENDORS = (
    evocalize.VENDOR,
    fullstory.VENDOR,
    talkdesk.VENDOR,
)

VENDORS: Mapping[str, SimVendor] = MappingProxyType({vendor.api: vendor for vendor in _VENDORS})
"""Every simulated API by its name."""
APIS = tuple(VENDORS)
PREFIXES: Mapping[str, str] = MappingProxyType({v.api: v.prefix for v in _VENDORS})
# Endpoints besides the APIs themselves (token endpoints): ``*`` faults spare them.
SPARED_TARGETS = tuple(target for v in _VENDORS for target in v.targets[1:])
FAULT_TARGETS = (*APIS, *SPARED_TARGETS, ALL_TARGET)
ERROR_BODIES: Mapping[str, ErrorBody] = MappingProxyType(
    {target: v.error_body for v in _VENDORS for target in v.targets}
)
ACCOUNTS: Mapping[str, AccountOf] = MappingProxyType({v.api: v.account for v in _VENDORS})
"""How each API names the account a request is counted against (its other targets: none)."""
JOB_OPTIONS: Mapping[str, type[JobOptions]] = MappingProxyType(
    {v.api: v.job_options for v in _VENDORS}
)
"""The options each API's jobs take, by API."""
ROUTES: tuple[Route, ...] = tuple(
    replace(route, pattern=(v.prefix, *route.pattern)) for v in _VENDORS for route in v.routes
)
"""Every endpoint, its pattern starting with the vendor's prefix."""


def vendor_url(root: str, api: str) -> str:
    """Return the base URL of ``api`` on the simulator at ``root`` (which ends in ``/``)."""
    return f"{root}{VENDORS[api].prefix}/"


def source_config(
    api: str,
    *,
    name: str,
    base_url: str,
    jobs: Sequence[object],
    credentials: SimCredentials | None = None,
) -> dict[str, object]:
    """Return one ``sources:`` entry polling ``api`` at ``base_url`` with the given secrets.

    ``jobs`` are the entries of its ``jobs:`` list (IDs, or ``{id, labels}``).
    """
    snippet = VENDORS[api].source(base_url, credentials or SimCredentials())
    return {"name": name, "api": api, "base_url": base_url, **snippet, "jobs": list(jobs)}


def source_yaml(
    api: str,
    *,
    name: str,
    base_url: str,
    jobs: Sequence[str],
    credentials: SimCredentials | None = None,
    extra: str = "",
    quote: Callable[[str], str] = json.dumps,
) -> str:
    """Return :func:`source_config` as a YAML list item, ``extra`` lines before its jobs.

    Values are written as JSON, which YAML reads as flow values; each ID is one
    line, written by ``quote``.
    """
    entry = source_config(api, name=name, base_url=base_url, jobs=(), credentials=credentials)
    del entry["jobs"]
    keys = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in entry.items())
    ids = "".join(f"      - {quote(job_id)}\n" for job_id in jobs)
    return f"  - {keys[4:]}{extra}    jobs:{'' if jobs else ' []'}\n{ids}"
