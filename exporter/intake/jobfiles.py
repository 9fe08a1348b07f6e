"""The job files of a watch dir: ``*.yaml`` and ``*.txt``, parsed.

``*.yaml``/``*.yml`` files map source names to job lists shaped like a source's
``jobs:`` in the config; ``*.txt`` files hold one ``SOURCE JOB_ID`` a line.
Parsing is pure (no I/O, no logging): problems come back as ``FILE:LINE:
message`` lines.  A bad entry costs only itself; a file that is not YAML, or
not a mapping, is unusable as a whole.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import yaml
from yaml.nodes import MappingNode, Node

from exporter.config import (
    RESERVED_LABELS,
    Walker,
    build_jobs,
    describe,
    is_null,
    job_id_problem,
    quote,
)
from exporter.jobs.keys import JobKey, Labels


@dataclass(frozen=True, slots=True)
class DirJob:
    """One job a file lists, with the extra labels of its ``batchjob_info``."""

    source: str
    job_id: str
    labels: Labels = ()


# A file's jobs, its problems, and whether it is usable at all (else its last good jobs stay).
_Result = tuple[list[DirJob], list[str], bool]


def is_job_file(name: str) -> bool:
    """Whether the watcher reads a directory entry of this name (never a hidden one)."""
    return not name.startswith(".") and name.lower().endswith((".yaml", ".yml", ".txt"))


def parse_job_file(
    name: str, text: str, sources: Collection[str]
) -> tuple[list[DirJob], list[str]]:
    """The jobs a file lists, and its problems as ``FILE:LINE: message``."""
    jobs, problems, _ = parse_or_reject(name, text, sources)
    return jobs, problems


def parse_or_reject(name: str, text: str, sources: Collection[str]) -> _Result:
    """What :func:`parse_job_file` gives, and ``False`` when the file is unusable as a whole."""
    if name.lower().endswith(".txt"):
        return _parse_txt(name, text, sources)
    if name.lower().endswith((".yaml", ".yml")):
        return _parse_yaml(name, text, sources)
    raise ValueError(f"not a job file: {name!r}")


def _unknown(source: str, sources: Collection[str]) -> str:
    return f"unknown source {quote(source)} (known: {', '.join(sorted(sources)) or 'none'})"


def _parse_txt(name: str, text: str, sources: Collection[str]) -> _Result:
    jobs: list[DirJob] = []
    problems: list[str] = []
    first_line: dict[JobKey, int] = {}
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        words = line.split()
        # A comment is a whole line, or trails the ID (an ID itself may start with #).
        cut = next((i for i, w in enumerate(words) if w.startswith("#") and i != 1), None)
        words = words[:cut]
        if not words:
            continue
        key = (words[0], words[-1])
        if len(words) != 2:
            problem = f"expected SOURCE JOB_ID, got {len(words)} words"
        elif key[0] not in sources:
            problem = _unknown(key[0], sources)
        elif key in first_line:
            problem = f"duplicate job ID {quote(key[1])} (first listed at line {first_line[key]})"
        else:
            problem = job_id_problem(key[1]) or ""
        if problem:
            problems.append(f"{name}:{number}: {problem}")
        else:
            first_line[key] = number
            jobs.append(DirJob(*key))
    return jobs, problems, True


def _compose(text: str) -> Node | str | None:
    """The document's root node, ``None`` when empty, or what makes it invalid YAML."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, int(exc.position)) + 1  # only the code point is shown
        return f"{line}: invalid YAML: character #x{exc.character:04x}"
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context:
            message = f"{exc.problem} ({exc.context})"
        return f"{mark.line + 1 if mark else 1}: invalid YAML: {message}"
    except yaml.YAMLError as exc:
        return f"1: invalid YAML: {type(exc).__name__}"
    except RecursionError:
        return "1: invalid YAML: nested too deeply"
    return None if root is None or is_null(root) else root


def _parse_yaml(name: str, text: str, sources: Collection[str]) -> _Result:
    root = _compose(text)
    if isinstance(root, str):
        return [], [f"{name}:{root}"], False
    if root is None:
        return [], [], True
    if not isinstance(root, MappingNode):
        return [], [f"{name}:1: expected a mapping of sources to jobs, got {describe(root)}"], False
    walker = Walker()
    fields = walker.mapping(root, "", None)
    jobs: list[DirJob] = []
    for source, (key, _) in fields.entries.items() if fields else ():
        node = fields.get(source) if fields else None
        if source not in sources:
            walker.problem(key, "", _unknown(source, sources))
        elif node is not None:  # `source:` with nothing after it lists no jobs
            # The exporter's own registry's labels: a watch dir feeds the running exporter.
            found = build_jobs(walker, node, source, reserved=RESERVED_LABELS)
            jobs.extend(DirJob(source, job.id, job.labels) for job in found)
    ordered = sorted(walker.problems, key=lambda p: (p.line, p.column))
    problems = [f"{name}:{p.line}: {p.path + ': ' if p.path else ''}{p.message}" for p in ordered]
    return jobs, problems, True
