"""Every API the exporter supports is complete: simulator, demo, tests and reserved labels.

``docs/adding-a-vendor.md`` lists what a new API needs; this checks it is there.
"""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.config import Config, label_name_problem
from exporter.model import Response
from exporter.simulator import DEMO_JOBS, JobOptions, SimJob, Simulator
from exporter.simulator.demo import demo_config
from exporter.simulator.vendors import VENDORS, vendor_url
from exporter.vendors import REGISTRY

TESTS = Path(__file__).parent.parent
APIS = sorted(REGISTRY)
T0 = 1_700_000_000.0


def module_of(api: str) -> str:
    """Return the name of the module in ``exporter/vendors/`` that parses ``api``."""
    return REGISTRY[api].parse_job.__module__.rpartition(".")[2]


@pytest.fixture
async def demo() -> AsyncIterator[Config]:
    """Build the ``--demo`` config against a running simulator."""
    async with Simulator() as sim:
        yield demo_config(sim)


def test_the_simulator_serves_exactly_the_registered_apis() -> None:
    """No API lacks a simulator module and the simulator has none the exporter lacks."""
    assert sorted(VENDORS) == APIS


@pytest.mark.parametrize("api", APIS)
def test_each_api_is_simulated_by_the_module_of_its_parser_name(api: str) -> None:
    """``simulator/vendors/<name>.py`` simulates what ``exporter/vendors/<name>.py`` parses."""
    vendor = VENDORS[api]
    assert vendor.api == api
    assert vendor.answer.__module__ == f"exporter.simulator.vendors.{module_of(api)}"
    assert vendor.source.__module__ == vendor.answer.__module__


@pytest.mark.parametrize("api", APIS)
def test_each_apis_credentials_and_job_options_are_its_simulator_modules(api: str) -> None:
    """What a vendor accepts and what its jobs can ask for are declared in its own module."""
    vendor = VENDORS[api]
    module = vendor.answer.__module__
    if vendor.credentials is not None:
        assert (vendor.credentials.__module__, vendor.credentials.api) == (module, api)
    if vendor.job_options is not JobOptions:
        assert vendor.job_options.__module__ == module
    assert dict(vendor.check_options({})) == dict(vendor.job_options.check(api, {}))


@pytest.mark.parametrize("api", APIS)
def test_the_demo_watches_the_demo_jobs_of_each_api(demo: Config, api: str) -> None:
    """The ``--demo`` config has a source of each API watching at least its demo jobs."""
    watched = {job.id for source in demo.sources if source.api == api for job in source.jobs}
    assert len(DEMO_JOBS[api]) >= 1
    assert set(DEMO_JOBS[api]) <= watched


def imported_and_tests(path: Path) -> tuple[set[str], int]:
    """The ``exporter...`` modules a test file imports, and how many tests it defines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    tests = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            tests += node.name.startswith("test_")
    return imported, tests


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("folder", "package"), [("vendors", "exporter.vendors"), ("simulator/vendors", None)]
)
def test_each_api_has_parser_and_simulator_tests(
    api: str, folder: str, package: str | None
) -> None:
    """``tests/<folder>/test_<name>.py`` exists, imports its module and has real tests."""
    name = module_of(api)
    path = TESTS / folder / f"test_{name}.py"
    assert path.is_file()
    imported, tests = imported_and_tests(path)
    if package is not None:
        assert f"{package}.{name}" in imported
    assert tests >= 5


@pytest.mark.parametrize("api", APIS)
def test_a_job_label_named_like_an_info_label_is_refused(api: str) -> None:
    """For every API, each of its ``batchjob_info`` label names is refused as a job label."""
    spec = REGISTRY[api]
    for label in (*sorted(spec.info_labels), "origin", "vendor_status", "api", "code"):
        problem = label_name_problem(label) or ""
        assert problem.startswith(f"label {label} is the exporter's own (reserved: "), label
    assert label_name_problem("team") is None


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("elapsed", [5.0, 100.0])
def test_info_labels_are_what_the_parser_reads_from_the_simulator(api: str, elapsed: float) -> None:
    """The spec's ``info_labels`` are the info keys its parser finds in the simulated answer."""
    job = SimJob(api=api, id="job-1", created=T0, total=100, rate=10.0)
    answer = VENDORS[api].answer(job, T0 + elapsed, vendor_url("http://127.0.0.1:9/", api))
    response = Response(answer.status, dict(answer.headers), json.dumps(answer.body).encode())
    snapshot = REGISTRY[api].parse_job(response)
    assert {key for key, _ in snapshot.info} == REGISTRY[api].info_labels
