"""A local aiohttp server simulating the Evocalize, Fullstory and Talkdesk job APIs.

The exporter's tests, its ``--demo`` mode and the benchmarks poll it over real
HTTP on loopback.  See :class:`Simulator`.
"""

from exporter.simulator.app import RecordedRequest, SimCredentials, Simulator, split_path
from exporter.simulator.demo import DEMO_JOBS, DEMO_MISSING_ID, DEMO_REPORT_TYPE, demo_jobs
from exporter.simulator.faults import FAULT_KINDS, FAULT_TARGETS, TOKEN_TARGET, Fault
from exporter.simulator.jobs import (
    APIS,
    EVOCALIZE,
    FULLSTORY,
    PREFIXES,
    TALKDESK,
    SimJob,
    error_code,
    error_code_counts,
)

__all__ = [
    "APIS",
    "DEMO_JOBS",
    "DEMO_MISSING_ID",
    "DEMO_REPORT_TYPE",
    "EVOCALIZE",
    "FAULT_KINDS",
    "FAULT_TARGETS",
    "FULLSTORY",
    "PREFIXES",
    "TALKDESK",
    "TOKEN_TARGET",
    "Fault",
    "RecordedRequest",
    "SimCredentials",
    "SimJob",
    "Simulator",
    "demo_jobs",
    "error_code",
    "error_code_counts",
    "split_path",
]
