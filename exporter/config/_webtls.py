"""The web config's ``tls_server_config``: its walkers and the server TLS context it builds."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from yaml.nodes import Node

from exporter.config._nodes import Fields, Walker, quote
from exporter.config.tls import TLS_VERSIONS, TLSFileError, _why, load_cert_chain

__all__ = ["TLSServerConfig", "server_context", "tls_server_config"]

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Python's ssl verifies every client certificate it asks for: it cannot take one unverified.
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# Go's names (crypto/tls) of the TLS 1.2 suites, as OpenSSL names them.
CIPHERS = {
    f"TLS_{kx}_WITH_{enc}": ossl
    for kx, enc, ossl in [
        ("ECDHE_ECDSA", "AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("ECDHE_RSA", "AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
        ("ECDHE_ECDSA", "AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("ECDHE_RSA", "AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
        ("ECDHE_ECDSA", "CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("ECDHE_RSA", "CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("ECDHE_ECDSA", "CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("ECDHE_RSA", "CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("ECDHE_ECDSA", "AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"),
        ("ECDHE_RSA", "AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"),
        ("ECDHE_ECDSA", "AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"),
        ("ECDHE_RSA", "AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"),
        ("ECDHE_ECDSA", "AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"),
        ("ECDHE_RSA", "AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"),
        ("RSA", "AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
        ("RSA", "AES_256_GCM_SHA384", "AES256-GCM-SHA384"),
        ("RSA", "AES_128_CBC_SHA", "AES128-SHA"),
        ("RSA", "AES_256_CBC_SHA", "AES256-SHA"),
        ("RSA", "AES_128_CBC_SHA256", "AES128-SHA256"),
        ("ECDHE_RSA", "3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA"),
        ("RSA", "3DES_EDE_CBC_SHA", "DES-CBC3-SHA"),
        ("ECDHE_ECDSA", "RC4_128_SHA", "ECDHE-ECDSA-RC4-SHA"),
        ("ECDHE_RSA", "RC4_128_SHA", "ECDHE-RSA-RC4-SHA"),
        ("RSA", "RC4_128_SHA", "RC4-SHA"),
    ]
}
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# Keys of the toolkit's that cannot be honoured here, and what to do instead.
_NOT_SUPPORTED = {
    "cert": "give the certificate as cert_file",
    "key": "give the key as key_file",
    "curve_preferences": "Python's ssl cannot set a list of curves; OpenSSL's defaults apply",
}
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_ca",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "cert",
    "key",
    "curve_preferences",
)


@dataclass(frozen=True, slots=True)
class TLSServerConfig:
    """``tls_server_config``: the server's certificate and what it asks of clients."""

    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: str | None = None  # inline PEM
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    def files(self) -> tuple[str, ...]:
        """The files it reads (watched for changes)."""
        return tuple(f for f in (self.cert_file, self.key_file, self.client_ca_file) if f)


def server_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """The server TLS context; :class:`TLSFileError` names the ``tls_server_config`` key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_cert_chain(ctx, tls.cert_file, tls.key_file)
    ctx.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    try:
        if tls.client_ca_file:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        why = f"cannot load {quote(tls.client_ca_file or '')}: {_why(exc)}"
        raise TLSFileError("client_ca_file", why) from None
    try:
        if tls.client_ca:
            ctx.load_verify_locations(cadata=tls.client_ca)
    except (ssl.SSLError, ValueError) as exc:
        raise TLSFileError("client_ca", f"not a PEM certificate: {_why(exc)}") from None
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.cipher_suites:
        try:
            ctx.set_ciphers(":".join(CIPHERS[name] for name in tls.cipher_suites))
        except ssl.SSLError:
            why = "none of them is available in this OpenSSL"
            raise TLSFileError("cipher_suites", why) from None
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _refuse(walker: Walker, fields: Fields) -> None:
    for key, why in _NOT_SUPPORTED.items():
        if key in fields.entries:
            walker.problem(fields.key_node(key), fields.at(key), f"not supported: {why}")


def _path(walker: Walker, node: Node, path: str) -> str | None:
    text = walker.string(node, path)
    return None if text is None else os.path.join(walker.base_dir, text)


def tls_server_config(walker: Walker, node: Node, path: str) -> TLSServerConfig | None:
    """``tls_server_config``, its problems reported to ``walker``; None if unusable."""
    fields = walker.mapping(node, path, _TLS_KEYS)
    if fields is None:
        return None
    _refuse(walker, fields)
    cert = walker.required(fields, "cert_file", lambda n, p: _path(walker, n, p))
    key = walker.required(fields, "key_file", lambda n, p: _path(walker, n, p))
    auth = fields.read("client_auth_type", lambda n, p: _client_auth(walker, n, p))
    ca_file = fields.read("client_ca_file", lambda n, p: _path(walker, n, p))
    ca = fields.read("client_ca", walker.string)
    auth = auth or "NoClientCert"
    if auth != "NoClientCert" and not (ca_file or ca):
        walker.problem(node, fields.at("client_ca_file"), f"required with {auth}")
    sans = tuple(t for _, _, t in (fields.read("client_allowed_sans", walker.strings) or ()))
    if sans and auth != "RequireAndVerifyClientCert":
        message = "needs client_auth_type: RequireAndVerifyClientCert"
        walker.problem(node, fields.at("client_allowed_sans"), message)
    low = fields.read("min_version", lambda n, p: _version(walker, n, p)) or "TLS12"
    high = fields.read("max_version", lambda n, p: _version(walker, n, p)) or "TLS13"
    if TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        walker.problem(node, fields.at("min_version"), f"{low} is above max_version {high}")
    suites = tuple(_ciphers(walker, fields))
    prefer = fields.read("prefer_server_cipher_suites", walker.boolean)
    if cert is None or key is None:
        return None
    return TLSServerConfig(
        cert_file=cert,
        key_file=key,
        client_auth_type=auth,
        client_ca_file=ca_file,
        client_ca=ca,
        client_allowed_sans=sans,
        min_version=low,
        max_version=high,
        cipher_suites=suites,
        prefer_server_cipher_suites=True if prefer is None else prefer,
    )


def _client_auth(walker: Walker, node: Node, path: str) -> str | None:
    text = walker.string(node, path)
    if text in UNVERIFIED_CLIENT_AUTH:
        message = (
            f"{text} is not supported: Python's ssl cannot accept a client certificate "
            "without verifying it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
        walker.problem(node, path, message)
        return None
    if text is not None and text not in CLIENT_AUTH:
        known = ", ".join([*CLIENT_AUTH, *UNVERIFIED_CLIENT_AUTH])
        walker.problem(node, path, f"unknown client_auth_type {quote(text)}; one of {known}")
        return None
    return text


def _version(walker: Walker, node: Node, path: str) -> str | None:
    text = walker.string(node, path)
    if text is not None and text not in TLS_VERSIONS:
        known = ", ".join(TLS_VERSIONS)
        walker.problem(node, path, f"unknown TLS version {quote(text)}; one of {known}")
        return None
    return text


def _ciphers(walker: Walker, fields: Fields) -> list[str]:
    out = []
    for item_path, item, name in fields.read("cipher_suites", walker.strings) or ():
        if name in TLS13_SUITES:
            why = "TLS 1.3 suites cannot be chosen, in Python's ssl as in Go"
            walker.problem(item, item_path, f"{quote(name)}: {why}")
        elif name not in CIPHERS:
            walker.problem(item, item_path, f"unknown cipher suite {quote(name)} (Go's names)")
        else:
            out.append(name)
    return out
