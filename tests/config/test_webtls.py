"""The web config's tls_server_config: Python's limits refused, certificates tried at load."""

from __future__ import annotations

import ssl
import textwrap
from pathlib import Path

import pytest

from exporter.config._webtls import CIPHERS
from exporter.config.web import parse_web_config, server_context
from tests.config.test_web import problems, tls_doc
from tests.polling.test_client_tls import Pem, issue, make_ca


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pem, Pem, Pem]:
    """A CA, a server certificate it signed, and another server's certificate."""
    d = tmp_path_factory.mktemp("webtls-pems")
    ca = make_ca(d, "ca")
    return ca, issue(d, ca, "server"), issue(d, ca, "other")


def test_every_tls_problem_is_reported_at_once(pems: tuple[Pem, Pem, Pem]) -> None:
    """Refused keys, Python's limits and bad values in one message, in file order."""
    _, server, _ = pems
    extra = textwrap.indent(
        textwrap.dedent(
            """\
            cert: inline
            curve_preferences: [X25519]
            client_auth_type: RequireAnyClientCert
            min_version: TLS13
            max_version: TLS12
            cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_NOPE]
            client_allowed_sans: [x]
            """
        ),
        "  ",
    )
    found = problems(tls_doc(server, extra))
    assert sorted(found) == sorted(
        [
            "web.yml:2:3: tls_server_config.client_allowed_sans: needs client_auth_type: "
            "RequireAndVerifyClientCert",
            "web.yml:2:3: tls_server_config.min_version: TLS13 is above max_version TLS12",
            "web.yml:4:3: tls_server_config.cert: not supported: give the certificate as cert_file",
            "web.yml:5:3: tls_server_config.curve_preferences: not supported: Python's ssl "
            "cannot set a list of curves; OpenSSL's defaults apply",
            "web.yml:6:21: tls_server_config.client_auth_type: RequireAnyClientCert is not "
            "supported: Python's ssl cannot accept a client certificate without verifying it; "
            "use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            'web.yml:9:19: tls_server_config.cipher_suites[0]: "TLS_AES_128_GCM_SHA256": TLS '
            "1.3 suites cannot be chosen, in Python's ssl as in Go",
            'web.yml:9:43: tls_server_config.cipher_suites[1]: unknown cipher suite "TLS_NOPE" '
            "(Go's names)",
        ]
    )
    assert found == sorted(found, key=lambda p: tuple(int(n) for n in p.split(":")[1:3]))


def test_verifying_client_certificates_needs_a_ca(pems: tuple[Pem, Pem, Pem]) -> None:
    """``VerifyClientCertIfGiven`` without ``client_ca_file`` or ``client_ca`` is a problem."""
    _, server, _ = pems
    found = problems(tls_doc(server, "  client_auth_type: VerifyClientCertIfGiven\n"))
    assert found == [
        "web.yml:2:3: tls_server_config.client_ca_file: required with VerifyClientCertIfGiven"
    ]


def test_an_inline_client_ca_is_honoured(pems: tuple[Pem, Pem, Pem]) -> None:
    """``client_ca`` as PEM text works like ``client_ca_file``."""
    ca, server, _ = pems
    pem = ca.cert.read_text()
    extra = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca: |\n" + textwrap.indent(
        pem, "    "
    )
    config = parse_web_config(tls_doc(server, extra), "web.yml")
    assert config.tls is not None
    assert server_context(config.tls).cert_store_stats()["x509_ca"] == 1


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("missing_cert", "tls_server_config.cert_file: cannot load"),
        ("mismatch", "tls_server_config.key_file:"),
        ("bad_ca", "tls_server_config.client_ca_file: cannot load"),
    ],
)
def test_certificates_that_do_not_load_name_their_key(
    tmp_path: Path, pems: tuple[Pem, Pem, Pem], which: str, expected: str
) -> None:
    """A missing certificate, a key of another certificate, an unreadable CA: the key is named."""
    _, server, other = pems
    cert, key, extra = server.cert, server.key, ""
    if which == "missing_cert":
        cert = tmp_path / "nowhere.pem"
    elif which == "mismatch":
        key = other.key
    else:
        extra = f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {tmp_path / 'x'}\n"
    text = f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n{extra}"
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith("web.yml:1:1: " + expected), found


def test_every_go_cipher_name_maps_to_an_openssl_name() -> None:
    """The table covers Go's TLS 1.2 suites; the ones this OpenSSL has, it accepts."""
    assert len(CIPHERS) == 24
    available = {c["name"] for c in ssl.create_default_context().get_ciphers()}
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in available
    assert CIPHERS["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"] == "ECDHE-RSA-CHACHA20-POLY1305"
