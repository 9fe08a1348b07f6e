"""Building a client ``ssl.SSLContext`` from ``tls_config``, naming the key that fails.

The config check and the HTTP client use this one function, so a file that
passes ``--check-config`` is a file the exporter can use.  Messages name files
and OpenSSL's reason codes, never file contents.
"""

from __future__ import annotations

import ssl

from exporter.config._nodes import quote
from exporter.config.model import TLSConfig

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class TLSFileError(ValueError):
    """A TLS file that does not load; ``key`` is its ``tls_config`` key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"tls_config.{key}: {message}")


class _EncryptedKeyError(Exception):
    """Raised from the passphrase callback: Prometheus' key_file has no passphrase."""


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal for the passphrase.
    raise _EncryptedKeyError


def load_tls(tls: TLSConfig | None) -> ssl.SSLContext:
    """A client TLS context from Prometheus' ``tls_config`` keys.

    Raises :class:`TLSFileError` naming ``ca_file``, ``cert_file`` or ``key_file``.
    """
    ca_file = tls.ca_file if tls else None
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        if ca_file is None:
            raise  # the system's CA store: nothing the config can name
        raise TLSFileError("ca_file", f"cannot load {quote(ca_file)}: {_why(exc)}") from None
    if tls is None:
        return ctx
    if tls.cert_file and tls.key_file:
        load_cert_chain(ctx, tls.cert_file, tls.key_file)
    if tls.min_version:
        ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def load_cert_chain(ctx: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    """Load a certificate and its key into ``ctx``; :class:`TLSFileError` names the one at fault.

    A client's ``tls_config`` and a server's ``tls_server_config`` both load theirs here.
    """
    try:
        ctx.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except _EncryptedKeyError:
        message = f"{quote(key_file)} is encrypted: give an unencrypted key"
        raise TLSFileError("key_file", message) from None
    except (OSError, ssl.SSLError) as exc:
        raise _chain_error(cert_file, key_file, exc) from None


def _chain_error(cert_file: str, key_file: str, exc: Exception) -> TLSFileError:
    """Which of the pair is at fault: OpenSSL says only "PEM lib" for either."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert_file)
    except (OSError, ssl.SSLError) as cert_exc:
        return TLSFileError("cert_file", f"cannot load {quote(cert_file)}: {_why(cert_exc)}")
    if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
        return TLSFileError("key_file", f"{quote(key_file)} is not the key of cert_file")
    # SSLError is an OSError too, but its strerror is only "PEM lib".
    plain_os_error = not isinstance(exc, ssl.SSLError) and isinstance(exc, OSError)
    why = _why(exc) if plain_os_error else "no PEM private key found"
    return TLSFileError("key_file", f"cannot load {quote(key_file)}: {why}")


def _why(exc: Exception) -> str:
    """A short reason: the OS error, or OpenSSL's reason code."""
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            return f"no PEM certificate found ({exc.reason})"
        return str(exc.reason or exc.library or "invalid PEM data")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
