"""A source's ``jobs:`` list: the watched IDs and the extra labels of each."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from yaml.nodes import MappingNode, Node

from exporter.config._nodes import Walker, join, line_of, quote
from exporter.config.model import JobConfig
from exporter.vendors import REGISTRY
from exporter.vendors.base import ApiSpec

MAX_JOB_ID = 256
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The exporter's own labels: a job label with one of these names would clash with them.
FIXED_LABELS = frozenset({"source", "job_id", "api", "vendor_status", "code", "status", "origin"})


def reserved_labels(registry: Mapping[str, ApiSpec]) -> frozenset[str]:
    """The fixed labels and each API's ``batchjob_info`` labels: a new vendor's are reserved too."""
    return FIXED_LABELS.union(*(spec.info_labels for spec in registry.values()))


# Those of the exporter's own registry: for job labels read outside a config (the API, a watch dir).
RESERVED_LABELS = reserved_labels(REGISTRY)


def build_jobs(
    walker: Walker, node: Node, path: str, *, reserved: frozenset[str]
) -> tuple[JobConfig, ...]:
    """Every job of the list; a job ID listed twice in one source is a problem.

    ``reserved`` are the label names a job may not use (see :func:`reserved_labels`).
    """
    jobs: list[JobConfig] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(walker.sequence(node, path) or ()):
        found = _job(walker, item, f"{path}[{index}]", reserved)
        if found is None:
            continue
        job, id_node = found
        if job.id in first_line:
            message = (
                f"duplicate job ID {quote(job.id)} (first listed at line {first_line[job.id]})"
            )
            walker.problem(id_node, f"{path}[{index}]", message)
            continue
        first_line[job.id] = line_of(id_node)
        jobs.append(job)
    return tuple(jobs)


def _job(
    walker: Walker, node: Node, path: str, reserved: frozenset[str]
) -> tuple[JobConfig, Node] | None:
    """One job, given as a bare ID or as ``{id, labels}``, with the node of its ID."""
    labels: tuple[tuple[str, str], ...] = ()
    fields = walker.mapping(node, path, ("id", "labels")) if isinstance(node, MappingNode) else None
    if fields is None:
        id_node: Node | None = node
        job_id = _job_id(walker, node, path, expected="a job ID or a mapping with id and labels")
    else:
        id_node = walker.require(fields, "id")
        labels_node = fields.get("labels")
        if labels_node is not None:
            labels = _labels(walker, labels_node, fields.at("labels"), reserved)
        job_id = None if id_node is None else _job_id(walker, id_node, fields.at("id"))
    if job_id is None or id_node is None:
        return None
    return JobConfig(id=job_id, labels=labels), id_node


def job_id_problem(text: str) -> str | None:
    """What is wrong with a job ID, or ``None``: non-empty, at most 256, no control characters.

    Shared by the config and the registration API, so both accept the same IDs.
    """
    if not text:
        return "job ID is empty"
    if len(text) > MAX_JOB_ID:
        return f"job ID is {len(text)} characters long, at most {MAX_JOB_ID}"
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return f"job ID {quote(text)} contains a control character"
    return None


def label_name_problem(name: str, reserved: frozenset[str] = RESERVED_LABELS) -> str | None:
    """What is wrong with a job label's name, or ``None``.

    ``reserved`` defaults to the exporter's own registry's, which the registration API uses.
    """
    if not _LABEL_NAME.fullmatch(name):
        return f"{quote(name)} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
    if name.startswith("__"):
        return "label names starting with __ are reserved for Prometheus"
    if name in reserved:
        return f"label {name} is the exporter's own (reserved: {', '.join(sorted(reserved))})"
    return None


def _job_id(walker: Walker, node: Node, path: str, expected: str = "a job ID") -> str | None:
    """A valid job ID from the node, or a problem recorded at its place."""
    text = walker.string(node, path, expected=expected)
    if text is None:
        return None
    problem = job_id_problem(text)
    if problem is not None:
        walker.problem(node, path, problem)
        return None
    return text


def _labels(
    walker: Walker, node: Node, path: str, reserved: frozenset[str]
) -> tuple[tuple[str, str], ...]:
    """Extra labels of a job: Prometheus label names that do not clash with the exporter's."""
    fields = walker.mapping(node, path, None)
    labels: list[tuple[str, str]] = []
    for name, (key, value) in fields.entries.items() if fields else ():
        at = join(path, name)
        text = walker.string(value, at, allow_empty=True)
        problem = label_name_problem(name, reserved)
        if problem is not None:
            walker.problem(key, at, problem)
        elif text is not None:
            labels.append((name, text))
    return tuple(labels)
