"""What of the simulator lives only in its vendor modules, and who may import it.

Import cycles between its modules are the import-linter contract's to find
(``pyproject.toml``, ``make lint``).
"""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from exporter.simulator import FAULT_TARGETS, PREFIXES, VENDORS
from exporter.simulator.faults import ALL_TARGET

ROOT = Path(__file__).parent.parent.parent
PACKAGE = ROOT / "exporter"
SIMULATOR = PACKAGE / "simulator"


def module_name(path: Path) -> str:
    """Return the dotted name of the module at ``path`` (a package for ``__init__.py``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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


def strings_outside_the_vendor_modules() -> dict[Path, set[str]]:
    """Return the string constants of each simulator module not in ``simulator/vendors/``."""
    return {
        path: {
            node.value
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        for path in SIMULATOR.rglob("*.py")
        if SIMULATOR / "vendors" not in path.parents
    }


def test_no_module_outside_the_vendor_modules_spells_a_route() -> None:
    """URL prefixes appear as strings only in the vendor modules: routes come from there."""
    for path, strings in strings_outside_the_vendor_modules().items():
        assert not strings & set(PREFIXES.values()), path


def test_no_module_outside_the_vendor_modules_names_a_vendors_api_or_options() -> None:
    """API names, other fault targets and job option names are the vendor modules' own."""
    names = {target for target in FAULT_TARGETS if target != ALL_TARGET}
    names |= {option.name for v in VENDORS.values() for option in fields(v.job_options)}
    for path, strings in strings_outside_the_vendor_modules().items():
        assert not strings & names, path
