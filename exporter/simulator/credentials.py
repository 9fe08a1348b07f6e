"""The secrets the simulated APIs accept: one value per vendor, held by API.

Each vendor module under ``simulator/vendors/`` declares its own frozen
:class:`VendorCredentials` subclass (the defaults are its documented demo
secrets), names it on its ``SimVendor``, and reads it with
:meth:`SimCredentials.of`.  :class:`SimCredentials` is what the simulator is
given: the values it was handed, by API; a vendor it was not handed any for
gets its defaults.  Nothing here names a vendor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, TypeVar


@dataclass(frozen=True, slots=True)
class VendorCredentials:
    """What one simulated API accepts: a subclass per vendor sets ``api`` and adds its fields."""

    api: ClassVar[str] = ""


C = TypeVar("C", bound=VendorCredentials)


class SimCredentials:
    """The secrets every simulated API accepts: those given, by API, else the vendor's defaults.

    ``SimCredentials()`` holds every vendor's demo secrets;
    ``SimCredentials(EvocalizeCredentials(secret="x"))`` changes Evocalize's
    only, and :meth:`with_` makes such a copy of an existing value.
    """

    __slots__ = ("_given",)

    def __init__(self, *given: VendorCredentials) -> None:
        by_api: dict[str, VendorCredentials] = {}
        for creds in given:
            if not isinstance(creds, VendorCredentials) or not creds.api:
                raise TypeError(f"expected one vendor's credentials, got {creds!r}")
            if creds.api in by_api:
                raise ValueError(f"credentials of {creds.api} given twice")
            by_api[creds.api] = creds
        self._given: Mapping[str, VendorCredentials] = MappingProxyType(by_api)

    @property
    def given(self) -> Mapping[str, VendorCredentials]:
        """Return the credentials handed in, by API (the others are their vendor's defaults)."""
        return self._given

    def of(self, kind: type[C]) -> C:
        """Return the credentials of ``kind``'s API: the ones given, else ``kind()``'s defaults."""
        found = self._given.get(kind.api)
        if found is None:
            return kind()
        if not isinstance(found, kind):
            raise TypeError(
                f"credentials of {kind.api} are {type(found).__name__}, not {kind.__name__}"
            )
        return found

    def with_(self, *given: VendorCredentials) -> SimCredentials:
        """Return a copy in which ``given`` replace the credentials of their APIs."""
        merged = {**self._given, **{creds.api: creds for creds in given}}
        return SimCredentials(*merged.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SimCredentials):
            return NotImplemented
        return dict(self._given) == dict(other._given)

    def __hash__(self) -> int:
        return hash(frozenset(self._given.items()))

    def __repr__(self) -> str:
        return f"SimCredentials({', '.join(map(repr, self._given.values()))})"
