"""A local aiohttp server simulating the vendor job APIs the exporter polls, one module each.

The exporter's tests, its ``--demo`` mode and the benchmarks poll it over real
HTTP on loopback.  See :class:`Simulator`; each API is one module of
:mod:`exporter.simulator.vendors`, which lists them (:data:`VENDORS`).  The
API names below are re-exported for the many tests that use them.
"""

from exporter.simulator.app import Simulator, split_path
from exporter.simulator.credentials import SimCredentials, VendorCredentials
from exporter.simulator.demo import DEMO_JOBS, DEMO_MISSING_ID, demo_jobs
from exporter.simulator.faults import FAULT_KINDS, Fault
from exporter.simulator.jobs import JobOptions, SimJob
from exporter.simulator.state import RecordedRequest
from exporter.simulator.vendors import APIS, FAULT_TARGETS, PREFIXES, VENDORS
from exporter.simulator.vendors.evocalize import API as EVOCALIZE
from exporter.simulator.vendors.fullstory import API as FULLSTORY
from exporter.simulator.vendors.talkdesk import API as TALKDESK
from exporter.simulator.vendors.talkdesk import TOKEN_TARGET

__all__ = [
    "APIS",
    "DEMO_JOBS",
    "DEMO_MISSING_ID",
    "EVOCALIZE",
    "FAULT_KINDS",
    "FAULT_TARGETS",
    "FULLSTORY",
    "PREFIXES",
    "TALKDESK",
    "TOKEN_TARGET",
    "VENDORS",
    "Fault",
    "JobOptions",
    "RecordedRequest",
    "SimCredentials",
    "SimJob",
    "Simulator",
    "VendorCredentials",
    "demo_jobs",
    "split_path",
]
