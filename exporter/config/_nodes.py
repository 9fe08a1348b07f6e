"""Reading typed values out of a PyYAML node tree, collecting every problem with its place.

The loader walks nodes rather than loaded Python objects because only nodes
remember where in the file they came from.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from exporter.config.durations import format_duration, parse_duration

T = TypeVar("T")
_Y = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL = (_Y + name for name in ("str", "int", "float", "bool", "null"))
_MERGE = _Y + "merge"
_KINDS = {
    STR: "a string",
    INT: "an integer",
    FLOAT: "a decimal number",
    BOOL: "a boolean",
    NULL: "null",
    _Y + "timestamp": "a timestamp",
    _Y + "binary": "binary data",
}
# Scalars whose source text is a fine string: `id: 007` means "007", not 7.
_TEXT_TAGS = frozenset({STR, INT, FLOAT, BOOL, _Y + "timestamp"})
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def describe(node: Node) -> str:
    """What kind of value a node holds, for "expected X, got Y" messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _KINDS.get(node.tag, f"a value tagged {node.tag}")


def is_null(node: Node) -> bool:
    """Whether a node is YAML's null (``~``, ``null`` or nothing at all)."""
    return isinstance(node, ScalarNode) and node.tag == NULL


def quote(text: str) -> str:
    """``text`` in double quotes with control characters escaped, safe for one log line."""
    body = json.dumps(text, ensure_ascii=False)
    # json leaves C1 controls and Unicode line separators alone; a terminal would not.
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in body
    )


def join(path: str, key: str) -> str:
    """The dotted path of ``key`` inside the mapping at ``path``."""
    return f"{path}.{key}" if path else key


def line_of(node: Node) -> int:
    """The 1-based line where a node starts."""
    return int(node.start_mark.line) + 1


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in the file and where it is; ``path`` is empty for file-level ones."""

    line: int
    column: int
    path: str
    message: str

    def format(self, filename: str) -> str:
        """``FILE:LINE:COL: path: message``."""
        where = f"{self.path}: " if self.path else ""
        return f"{filename}:{self.line}:{self.column}: {where}{self.message}"


@dataclass(slots=True)
class Fields:
    """The entries of one mapping, by key, with null values kept so they can be reported."""

    node: Node
    path: str
    entries: dict[str, tuple[Node, Node]] = field(default_factory=dict)

    def get(self, key: str) -> Node | None:
        """The value of ``key``; ``None`` when absent or null, which means "use the default"."""
        entry = self.entries.get(key)
        if entry is None or is_null(entry[1]):
            return None
        return entry[1]

    def read(self, key: str, reader: Callable[[Node, str], T | None]) -> T | None:
        """``reader`` applied to the value of ``key`` and its path; ``None`` when absent."""
        node = self.get(key)
        return None if node is None else reader(node, self.at(key))

    def key_node(self, key: str) -> Node:
        """The node of the key itself, to point at a key that should not be there."""
        return self.entries[key][0]

    def at(self, key: str) -> str:
        """The dotted path of ``key``."""
        return join(self.path, key)


class Walker:
    """Typed readers over YAML nodes that record a problem instead of raising.

    Every reader returns ``None`` after recording a problem, so the caller carries
    on and the user sees every mistake in the file at once.  Relative file names
    are resolved against ``base_dir``, the config file's directory, as Prometheus
    does.
    """

    def __init__(self, base_dir: str = "") -> None:
        self.base_dir = base_dir
        self.problems: list[Problem] = []

    def problem(self, node: Node, path: str, message: str) -> None:
        """Record a problem at the start of ``node``."""
        mark = node.start_mark
        self.problems.append(Problem(mark.line + 1, mark.column + 1, path, message))

    def mapping(self, node: Node, path: str, allowed: Collection[str] | None) -> Fields | None:
        """The entries of a mapping node; unknown keys (unless ``allowed`` is None) are problems."""
        if not isinstance(node, MappingNode):
            self.problem(node, path, f"expected a mapping, got {describe(node)}")
            return None
        explicit = self._flatten(node, path)
        fields = Fields(node, path)
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self.problem(key, path, f"keys must be strings, got {describe(key)}")
                continue
            name: str = key.value
            if name in fields.entries and {id(key), id(fields.key_node(name))} <= explicit:
                first = line_of(fields.key_node(name))
                self.problem(key, join(path, name), f"duplicate key (first at line {first})")
            elif allowed is not None and name not in allowed:
                self.problem(key, join(path, name), _unknown_key(name, allowed))
                continue
            # Later entries win, so an explicit key overrides one brought in by `<<:`.
            fields.entries[name] = (key, value)
        return fields

    def _flatten(self, node: MappingNode, path: str) -> set[int]:
        """Apply ``<<:`` merge keys in place; return the ids of the keys written explicitly."""
        explicit = {id(key) for key, _ in node.value if key.tag != _MERGE}
        if len(explicit) < len(node.value):
            try:
                _CONSTRUCTOR.flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:
                self.problem(node, path, f"invalid merge: {exc.problem}")
                node.value = [pair for pair in node.value if pair[0].tag != _MERGE]
        return explicit

    def require(self, fields: Fields, key: str, why: str = "") -> Node | None:
        """The value of a required key, or ``None`` after recording that it is missing."""
        entry = fields.entries.get(key)
        suffix = f" ({why})" if why else ""
        if entry is None:
            self.problem(fields.node, fields.at(key), f"required key is missing{suffix}")
            return None
        if is_null(entry[1]):
            self.problem(entry[1], fields.at(key), f"a value is required{suffix}")
            return None
        return entry[1]

    def required(
        self, fields: Fields, key: str, reader: Callable[[Node, str], T | None], why: str = ""
    ) -> T | None:
        """``reader`` applied to the value of a required key, or ``None`` if it is missing."""
        node = self.require(fields, key, why)
        return None if node is None else reader(node, fields.at(key))

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        """The items of a list node."""
        if not isinstance(node, SequenceNode):
            self.problem(node, path, f"expected a list, got {describe(node)}")
            return None
        return list(node.value)

    def string(
        self, node: Node, path: str, *, allow_empty: bool = False, expected: str = "a string"
    ) -> str | None:
        """A scalar's text as written: never quoted back, as it may be a secret."""
        if not isinstance(node, ScalarNode) or node.tag not in _TEXT_TAGS:
            self.problem(node, path, f"expected {expected}, got {describe(node)}")
            return None
        text: str = node.value
        if not text and not allow_empty:
            self.problem(node, path, "must not be empty")
            return None
        return text

    def strings(self, node: Node, path: str) -> list[tuple[str, Node, str]]:
        """The non-empty strings of a list, each with its path and node."""
        result: list[tuple[str, Node, str]] = []
        for index, item in enumerate(self.sequence(node, path) or ()):
            item_path = f"{path}[{index}]"
            text = self.string(item, item_path)
            if text is not None:
                result.append((item_path, item, text))
        return result

    def integer(self, node: Node, path: str, *, minimum: int) -> int | None:
        """An integer of at least ``minimum``; a boolean is not an integer."""
        if not isinstance(node, ScalarNode) or node.tag != INT:
            self.problem(node, path, f"expected an integer, got {describe(node)}")
            return None
        value = _CONSTRUCTOR.construct_yaml_int(node)
        if value < minimum:
            self.problem(node, path, f"must be at least {minimum}, got {value}")
            return None
        return value

    def positive_number(self, node: Node, path: str) -> float | None:
        """A finite number greater than zero."""
        if not isinstance(node, ScalarNode) or node.tag not in (INT, FLOAT):
            self.problem(node, path, f"expected a number, got {describe(node)}")
            return None
        # The typed constructors, unlike construct_object, keep no per-node cache.
        if node.tag == INT:
            value = float(_CONSTRUCTOR.construct_yaml_int(node))
        else:
            value = _CONSTRUCTOR.construct_yaml_float(node)
        if not math.isfinite(value) or value <= 0:
            self.problem(node, path, f"must be a finite number greater than 0, got {node.value}")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        """``true`` or ``false``."""
        if not isinstance(node, ScalarNode) or node.tag != BOOL:
            self.problem(node, path, f"expected true or false, got {describe(node)}")
            return None
        return _CONSTRUCTOR.construct_yaml_bool(node)

    def duration(self, node: Node, path: str, *, minimum: float) -> float | None:
        """Seconds in a Prometheus-style duration string of at least ``minimum`` seconds."""
        if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT):
            hint = f': write "{node.value}s"' if node.tag == INT else ""
            self.problem(node, path, f"invalid duration {node.value}: a unit is required{hint}")
            return None
        if not isinstance(node, ScalarNode) or node.tag != STR:
            self.problem(node, path, f'expected a duration such as "30s", got {describe(node)}')
            return None
        try:
            seconds = parse_duration(node.value)
        except ValueError as exc:
            self.problem(node, path, str(exc))
            return None
        if seconds < minimum:
            least, got = format_duration(minimum), format_duration(seconds)
            self.problem(node, path, f"must be at least {least}, got {got}")
            return None
        return seconds

    def http_url(self, node: Node, path: str) -> str | None:
        """An absolute http(s) URL with a host and without credentials (never quoted back)."""
        text = self.string(node, path)
        if text is None:
            return None
        try:
            parts = urlsplit(text)
            _ = parts.port
        except ValueError:
            self.problem(node, path, "is not a valid URL")
            return None
        if parts.scheme not in ("http", "https"):
            message = "must be an http:// or https:// URL"
        elif not parts.hostname:
            message = "must include a host"
        elif parts.username is not None or parts.password is not None:
            message = "must not contain credentials: use basic_auth or authorization"
        elif parts.fragment:
            message = "must not contain a #fragment"
        else:
            return text
        self.problem(node, path, message)
        return None


def _unknown_key(name: str, allowed: Collection[str]) -> str:
    """Name the unknown key, suggest a near miss and list the allowed ones."""
    close = difflib.get_close_matches(name, list(allowed), n=1)
    hint = f" (did you mean {quote(close[0])}?)" if close else ""
    return f"unknown key {quote(name)}{hint}; allowed keys: {', '.join(sorted(allowed))}"
