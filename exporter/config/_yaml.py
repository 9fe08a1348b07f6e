"""YAML text to nodes, and the error every config file's problems are raised in.

Shared by the main config and the web config, so both report syntax errors,
bad characters and empty files alike: ``FILE:LINE:COL: message``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import yaml
from yaml.nodes import Node

from exporter.config._nodes import Problem, Walker, is_null

# YAML text to its root node (``None`` for an empty stream), raising PyYAML's errors.
Compose = Callable[[str], Node | None]


def safe_compose(text: str) -> Node | None:
    """PyYAML's ``compose`` with the safe loader: the nodes, never an arbitrary object."""
    return yaml.compose(text, Loader=yaml.SafeLoader)


class ConfigError(Exception):
    """The config file is unusable; ``problems`` holds one line per mistake."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


def raise_problems(walker: Walker, filename: str) -> None:
    """Raise :class:`ConfigError` with every problem ``walker`` recorded, in file order."""
    if walker.problems:
        ordered = sorted(walker.problems, key=lambda p: (p.line, p.column))
        raise ConfigError(p.format(filename) for p in ordered)


def compose_root(text: str, walker: Walker, compose: Compose, *, empty: str) -> Node | None:
    """The document's root node, or ``None`` after recording why there is none (``empty``)."""
    try:
        root = compose(text)
    except yaml.reader.ReaderError as exc:
        # Only the code point is shown: the character may sit inside a secret.
        position = int(exc.position)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        message = f"invalid YAML: character #x{exc.character:04x} is not allowed"
        walker.problems.append(Problem(line, column, "", message))
        return None
    except yaml.MarkedYAMLError as exc:
        walker.problems.append(syntax_problem(exc))
        return None
    except yaml.YAMLError as exc:
        walker.problems.append(Problem(1, 1, "", f"invalid YAML: {exc}"))
        return None
    except RecursionError:
        walker.problems.append(Problem(1, 1, "", "invalid YAML: nested too deeply"))
        return None
    if root is None or is_null(root):
        # An explicit empty document (`---` or `~`) is as empty as an empty file.
        walker.problems.append(Problem(1, 1, "", empty))
        return None
    return root


def syntax_problem(exc: yaml.MarkedYAMLError) -> Problem:
    """A parse error at its place, built from its parts: ``str(exc)`` quotes the source line."""
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = exc.problem or exc.context or "syntax error"
    if exc.problem and exc.context:
        context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message = f"{message} ({exc.context}{context_line})"
    return Problem(line, column, "", f"invalid YAML: {message}")
