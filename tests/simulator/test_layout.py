"""How the simulator's modules depend on each other and on the rest of the package."""

from __future__ import annotations

import ast
from pathlib import Path

from exporter.simulator import PREFIXES

ROOT = Path(__file__).parent.parent.parent
PACKAGE = ROOT / "exporter"
SIMULATOR = PACKAGE / "simulator"


def module_name(path: Path) -> str:
    """Return the dotted name of the module at ``path`` (a package for ``__init__.py``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """Return the modules of ``known`` that ``path`` imports anywhere, ``TYPE_CHECKING`` too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            # ``from package import module`` uses the module, not what the package exports.
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def test_the_simulators_modules_import_each_other_without_a_cycle() -> None:
    """Each module only imports ones below it, so no import, even for typing, loops back."""
    paths = {module_name(path): path for path in SIMULATOR.rglob("*.py")}
    graph = {name: imports(path, set(paths)) - {name} for name, path in paths.items()}
    done: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail, name))
        if name not in done:
            for imported in sorted(graph[name]):
                visit(imported, (*trail, name))
            done.add(name)

    for name in sorted(graph):
        if name != "exporter.simulator":  # the package re-exports from everything below it
            visit(name, ())


def test_only_the_cli_imports_the_simulator() -> None:
    """Nothing of the exporter uses the simulator except ``--demo`` in the command line."""
    users = {
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if SIMULATOR not in path.parents
        and any(name.startswith("exporter.simulator") for name in imports_all(path))
    }
    assert users == {"exporter.cli"}


def imports_all(path: Path) -> set[str]:
    """Return every module name ``path`` imports from."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    return names


def test_no_module_outside_the_vendor_modules_spells_a_route() -> None:
    """URL prefixes appear as strings only in the vendor modules: routes come from there."""
    outside = [
        path for path in SIMULATOR.rglob("*.py") if SIMULATOR / "vendors" not in path.parents
    ]
    for path in outside:
        strings = {
            node.value
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        assert not strings & set(PREFIXES.values()), path
