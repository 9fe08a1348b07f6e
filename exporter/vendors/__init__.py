"""Vendor API modules and the registry the config and poller look them up in.

Each module exposes one :class:`ApiSpec` as ``SPEC``; adding an API means
adding its module and one line to :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from exporter.vendors import evocalize, fullstory, talkdesk
from exporter.vendors.base import ApiSpec

__all__ = ["REGISTRY", "ApiSpec"]

_SPECS = (
    evocalize.SPEC,
    fullstory.SPEC,
    talkdesk.SPEC,
)

REGISTRY: Mapping[str, ApiSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""Every supported API by its ``name`` (the ``api:`` value in the config)."""
