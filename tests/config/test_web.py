"""The web config file: exporter-toolkit's keys honoured or refused, every problem with its line."""

from __future__ import annotations

import ssl
import textwrap
from pathlib import Path

import bcrypt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config.web import (
    ConfigError,
    TLSServerConfig,
    WebConfig,
    load_web_config,
    parse_web_config,
    server_context,
)
from tests.polling.test_client_tls import Pem, issue, make_ca

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pem, Pem, Pem]:
    """A CA, a server certificate it signed, and another server's certificate."""
    d = tmp_path_factory.mktemp("web-pems")
    ca = make_ca(d, "ca")
    return ca, issue(d, ca, "server"), issue(d, ca, "other")


def problems(text: str, where: Path | None = None) -> list[str]:
    """Every problem of a web config, or ``[]`` when it is fine."""
    name = str(where / "web.yml") if where else "web.yml"
    try:
        parse_web_config(textwrap.dedent(text), name)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def tls_doc(pem: Pem, extra: str = "") -> str:
    """A tls_server_config with ``pem`` and ``extra`` lines (already indented by 2)."""
    return f"tls_server_config:\n  cert_file: {pem.cert}\n  key_file: {pem.key}\n{extra}"


def test_an_empty_mapping_means_plain_http_without_auth() -> None:
    """``{}`` is a valid web config: no TLS, no users, no headers."""
    assert parse_web_config("{}", "web.yml") == WebConfig()


def test_every_honoured_key_is_read(pems: tuple[Pem, Pem, Pem]) -> None:
    """TLS with client certificates, ciphers and versions, users and headers, as in the toolkit."""
    ca, server, _ = pems
    extra = textwrap.indent(
        textwrap.dedent(
            f"""\
            client_auth_type: RequireAndVerifyClientCert
            client_ca_file: {ca.cert}
            client_allowed_sans: [scraper.example, 127.0.0.1]
            min_version: TLS12
            max_version: TLS12
            cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
            prefer_server_cipher_suites: false
            """
        ),
        "  ",
    )
    text = tls_doc(server, extra) + textwrap.dedent(
        f"""\
        http_server_config:
          http2: false
          headers:
            Strict-Transport-Security: max-age=31536000
            X-Frame-Options: deny
            X-XSS-Protection: ""
        basic_auth_users:
          prometheus: {HASH}
        """
    )
    config = parse_web_config(text, "web.yml")
    assert config.tls == TLSServerConfig(
        cert_file=str(server.cert),
        key_file=str(server.key),
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=str(ca.cert),
        client_allowed_sans=("scraper.example", "127.0.0.1"),
        min_version="TLS12",
        max_version="TLS12",
        cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",),
        prefer_server_cipher_suites=False,
    )
    assert config.basic_auth_users == (("prometheus", HASH),)
    # A blank header is unset, as in the toolkit.
    assert config.headers == (
        ("Strict-Transport-Security", "max-age=31536000"),
        ("X-Frame-Options", "deny"),
    )
    assert config.files() == (str(server.cert), str(server.key), str(ca.cert))
    ctx = server_context(config.tls)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE == 0


def test_relative_files_are_relative_to_the_web_config(
    tmp_path: Path, pems: tuple[Pem, Pem, Pem]
) -> None:
    """``cert_file: server.pem`` next to the web config is found there."""
    _, server, _ = pems
    for pem_file in (server.cert, server.key):
        (tmp_path / pem_file.name).write_bytes(pem_file.read_bytes())
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config: {cert_file: server.pem, key_file: server.key}\n")
    config = load_web_config(str(path))
    assert config.tls is not None
    assert config.tls.cert_file == str(tmp_path / "server.pem")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tls_srever_config: {}\n",
            'web.yml:1:1: tls_srever_config: unknown key "tls_srever_config" (did you mean '
            '"tls_server_config"?); allowed keys: basic_auth_users, http_server_config, '
            "rate_limit, tls_server_config",
        ),
        (
            "rate_limit: {interval: 1s, burst: 5}\n",
            "web.yml:1:1: rate_limit: not supported: use --web.max-connections and the scrape "
            "interval instead",
        ),
        (
            "basic_auth_users: {prometheus: ''}\n",
            "web.yml:1:32: basic_auth_users.prometheus: must not be empty",
        ),
        (
            "basic_auth_users: {prometheus: plaintext}\n",
            "web.yml:1:32: basic_auth_users.prometheus: not a bcrypt hash (make one with "
            "htpasswd -nBC 10)",
        ),
        (
            "basic_auth_users: {prometheus: [1]}\n",
            "web.yml:1:32: basic_auth_users.prometheus: expected a bcrypt hash, got a list",
        ),
        (
            f"basic_auth_users: {{'a:b': '{HASH}'}}\n",
            "web.yml:1:20: basic_auth_users.a:b: a user name must be non-empty and without ':'",
        ),
        (
            "basic_auth_users: [x]\n",
            "web.yml:1:19: basic_auth_users: expected a mapping, got a list",
        ),
        (
            "http_server_config: {http2: true}\n",
            "web.yml:1:22: http_server_config.http2: not supported: the exporter serves HTTP/1.1 "
            "only (clients fall back); set false",
        ),
        (
            "http_server_config: {headers: {X-Frame-Options: allow}}\n",
            "web.yml:1:49: http_server_config.headers.X-Frame-Options: must be one of deny, "
            "sameorigin",
        ),
        (
            "http_server_config: {headers: {Server: x}}\n",
            'web.yml:1:32: http_server_config.headers.Server: unknown key "Server"; allowed keys: '
            "Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, "
            "X-Frame-Options, X-XSS-Protection",
        ),
        ("[1, 2]\n", "web.yml:1:1: expected a mapping, got a list"),
        ("", "web.yml:1:1: the file is empty"),
        (
            "a: [\n",
            "web.yml:2:1: invalid YAML: expected the node content, but found '<stream end>' "
            "(while parsing a flow node at line 2)",
        ),
    ],
)
def test_a_broken_web_config_names_the_place(text: str, expected: str) -> None:
    """Each mistake is one problem with its line, column and key; hashes are never shown."""
    found = problems(text)
    assert found == [expected]
    assert HASH not in expected


def test_an_unreadable_file_is_one_problem(tmp_path: Path) -> None:
    """A web config that cannot be read says so with its path."""
    with pytest.raises(ConfigError) as exc:
        load_web_config(str(tmp_path / "missing.yml"))
    assert exc.value.problems == (
        f"{tmp_path / 'missing.yml'}: cannot read: No such file or directory",
    )


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "tls_server_config",
                    "basic_auth_users",
                    "http_server_config",
                    "headers",
                    "cert_file",
                    "client_auth_type",
                    "cipher_suites",
                    "min_version",
                    "http2",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_any_document_gives_a_web_config_or_a_config_error(value: object) -> None:
    """Hostile structures get problems with their place, never another exception."""
    found: tuple[str, ...] = ()
    try:
        parse_web_config(yaml.safe_dump(value), "web.yml")
    except ConfigError as exc:
        found = exc.problems
    assert all(p.startswith("web.yml") for p in found)


def test_the_readme_example_is_a_valid_web_config(
    tmp_path: Path, pems: tuple[Pem, Pem, Pem]
) -> None:
    """The README's "Securing the endpoints" example loads, and its hash is of "changeme"."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    marker = "# /etc/batch-job-exporter/web-config.yml\n"
    example = readme.split(marker, 1)[1].split("```", 1)[0]
    _, server, _ = pems
    (tmp_path / "tls.crt").write_bytes(server.cert.read_bytes())
    (tmp_path / "tls.key").write_bytes(server.key.read_bytes())
    config = parse_web_config(example, str(tmp_path / "web-config.yml"))
    ((user, digest),) = config.basic_auth_users
    assert user == "prometheus"
    assert bcrypt.checkpw(b"changeme", digest.encode()) is True
    assert config.headers == (("Strict-Transport-Security", "max-age=31536000"),)
