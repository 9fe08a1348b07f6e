"""The simulator's credentials: each vendor's own value, held by API, defaults otherwise."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import pytest

from exporter.simulator import APIS, VENDORS, SimCredentials, VendorCredentials
from exporter.simulator.vendors.evocalize import EvocalizeCredentials
from exporter.simulator.vendors.fullstory import FullstoryCredentials
from exporter.simulator.vendors.talkdesk import TalkdeskCredentials


def test_no_credentials_given_means_every_vendors_demo_secrets() -> None:
    """``SimCredentials()`` holds nothing and answers each vendor's defaults."""
    creds = SimCredentials()
    assert creds.given == {}
    assert creds.of(EvocalizeCredentials) == EvocalizeCredentials(
        key="evo-demo-key",
        key_id="evo-demo-id",
        secret="evo-demo-secret",  # noqa: S106 - the documented demo secret
        modes=frozenset({"client_key", "signature"}),
    )
    assert creds.of(FullstoryCredentials).api_key == "fs-demo-key"
    assert creds.of(TalkdeskCredentials) == TalkdeskCredentials(
        client_id="td-demo-client",
        client_secret="td-demo-secret",  # noqa: S106 - the documented demo secret
        token_ttl=3600,
    )
    assert creds == SimCredentials()
    assert repr(creds) == "SimCredentials()"


def test_one_vendors_credentials_change_only_that_vendor() -> None:
    """A value given for one API is answered for it; the others keep their defaults."""
    evo = EvocalizeCredentials(secret="other")  # noqa: S106 - a test secret
    creds = SimCredentials(evo)
    assert creds.given == {evo.api: evo}
    assert creds.of(EvocalizeCredentials) is evo
    assert creds.of(FullstoryCredentials) == FullstoryCredentials()
    td = TalkdeskCredentials(token_ttl=60)
    both = creds.with_(td)
    assert both == SimCredentials(td, evo)
    assert hash(both) == hash(SimCredentials(td, evo))
    assert both.of(TalkdeskCredentials) is td
    assert creds.of(TalkdeskCredentials) == TalkdeskCredentials()  # a copy, not changed
    assert both.with_(EvocalizeCredentials()).of(EvocalizeCredentials) == EvocalizeCredentials()
    assert repr(creds) == f"SimCredentials({evo!r})"


def test_credentials_are_one_per_api_and_a_vendors_own() -> None:
    """An API's credentials given twice, or a value that is none, are refused."""
    with pytest.raises(ValueError, match="given twice"):
        SimCredentials(FullstoryCredentials(), FullstoryCredentials(api_key="x"))
    with pytest.raises(TypeError, match="expected one vendor's credentials"):
        SimCredentials(VendorCredentials())
    with pytest.raises(TypeError, match="expected one vendor's credentials"):
        SimCredentials("fs-demo-key")  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Impostor(VendorCredentials):
    """Credentials of another class claiming Fullstory's API."""

    api: ClassVar[str] = FullstoryCredentials.api
    region: str = "eu"


def test_credentials_of_another_class_for_the_api_are_a_type_error() -> None:
    """Asking by a vendor's class never hands back another class's value."""
    with pytest.raises(TypeError, match="are Impostor, not FullstoryCredentials"):
        SimCredentials(Impostor()).of(FullstoryCredentials)


@pytest.mark.parametrize("api", APIS)
def test_each_vendor_declares_its_credentials_with_defaults(api: str) -> None:
    """Every simulated API names its own credentials class, built without arguments."""
    kind = VENDORS[api].credentials
    assert kind is not None
    assert kind.api == api
    assert kind.__module__ == VENDORS[api].answer.__module__
    assert [field.name for field in fields(kind)]
    assert SimCredentials().of(kind) == kind()
