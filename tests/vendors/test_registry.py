"""The API registry: one consistent spec per supported API."""

from __future__ import annotations

import importlib
import json
import pkgutil
import string

import pytest

from exporter import vendors as apis
from exporter.model import Response
from exporter.vendors import REGISTRY, ApiSpec, base, evocalize, fullstory, talkdesk

SPECS = list(REGISTRY.values())


def placeholders(template: str) -> set[str]:
    """Return the ``{name}`` fields of a path template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_registry_lists_every_module_under_its_own_name() -> None:
    """Each vendor module's spec is registered once, keyed by its name."""
    modules = (evocalize, fullstory, talkdesk)
    assert len(REGISTRY) == len(modules)
    for module in modules:
        assert REGISTRY[module.SPEC.name] is module.SPEC
    assert set(REGISTRY) == {"evocalize_batch_report", "batch_import_job", "report_job"}


def test_every_vendor_module_in_the_package_is_registered() -> None:
    """A module in ``exporter/vendors/`` with a ``SPEC`` is in the registry: none is forgotten."""
    found = {}
    for info in pkgutil.iter_modules(apis.__path__):
        module = importlib.import_module(f"{apis.__name__}.{info.name}")
        if isinstance(getattr(module, "SPEC", None), ApiSpec):
            found[info.name] = module.SPEC
    assert sorted(found) == ["evocalize", "fullstory", "talkdesk"]
    assert {spec.name: spec for spec in found.values()} == dict(REGISTRY)


def test_names_are_unique() -> None:
    """No two specs share a name, so none shadows another in the registry."""
    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names))
    assert all(name == spec.name for name, spec in REGISTRY.items())


def test_registry_is_read_only() -> None:
    """The registry cannot be changed at run time."""
    with pytest.raises(TypeError):
        REGISTRY["other"] = fullstory.SPEC  # type: ignore[index]


def test_api_spec_is_re_exported() -> None:
    """``exporter.vendors.ApiSpec`` is the class from ``exporter.vendors.base``."""
    assert ApiSpec is base.ApiSpec
    assert set(apis.__all__) == {"REGISTRY", "ApiSpec"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_default_path_has_id(spec: ApiSpec) -> None:
    """Every default path is relative and has an ``{id}`` placeholder."""
    assert "{id}" in spec.default_path
    assert not spec.default_path.startswith("/")


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_path_params_match_placeholders(spec: ApiSpec) -> None:
    """The path's placeholders are exactly ``id`` plus the spec's path_params."""
    assert placeholders(spec.default_path) == {"id", *spec.path_params}
    if spec.default_errors_path is not None:
        assert placeholders(spec.default_errors_path) <= {"id", *spec.path_params}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_errors_fields_set_together(spec: ApiSpec) -> None:
    """An API has both an errors path and an errors parser, or neither."""
    assert (spec.default_errors_path is None) == (spec.parse_errors_page is None)
    if spec.default_errors_path is not None:
        assert "{id}" in spec.default_errors_path


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_ok_statuses_include_200(spec: ApiSpec) -> None:
    """Every API answers a job it found with 200."""
    assert 200 in spec.ok_statuses
    assert all(100 <= code < 400 for code in spec.ok_statuses)


def test_vendors() -> None:
    """The three vendors of the seeds are covered."""
    assert {spec.vendor for spec in SPECS} == {"evocalize", "fullstory", "talkdesk"}


def test_a_vendors_error_text_is_one_bounded_line() -> None:
    """A control character in a vendor's error body never splits the log line; it is bounded."""
    body = json.dumps({"code": "bad\ncode", "message": "x\r\n" + "y" * 500}).encode()
    text = fullstory.SPEC.error_text(Response(400, {}, body))
    assert text == "bad code: x  " + "y" * 197
