"""Token answers that refuse the credentials, and secret files re-read when they change."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from exporter.clock import FakeClock
from exporter.config import RequestSignature, Secret, SourceConfig
from exporter.model import Response
from exporter.polling.auth import Auth, AuthError, SecretCache, token_refused


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (401, b"", True),
        (403, b"<html>forbidden</html>", True),
        (400, b'{"error": "invalid_client"}', True),
        (400, b'{"error": "invalid_grant", "error_description": "expired"}', True),
        (400, b'{"code": "unauthorized_client", "message": "no"}', True),
        (400, b'{"error": "invalid_scope"}', False),
        (400, b'{"error": ["invalid_client"]}', False),
        (400, b'["invalid_client"]', False),
        (400, b"\xff not json", False),
        (400, b"[" * 100_000, False),
        (429, b'{"error": "invalid_client"}', False),
        (500, b"", False),
    ],
)
def test_token_refused(status: int, body: bytes, refused: bool) -> None:
    """401/403, and RFC 6749's 400 naming the client or grant, refuse; nothing else does."""
    assert token_refused(Response(status, {}, body)) is refused


MTIME = 1_700_000_000_000_000_000


def swap(root: Path, version: str, text: str) -> Path:
    """Mount ``text`` as Kubernetes mounts a secret: a new ``..data`` dir, mtime fixed."""
    (root / version).mkdir()
    target = root / version / "token"
    target.write_text(text, encoding="utf-8")
    os.utime(target, ns=(MTIME, MTIME))
    (root / "..data_tmp").symlink_to(version)
    (root / "..data_tmp").replace(root / "..data")
    if not (root / "token").is_symlink():
        (root / "token").symlink_to("..data/token")
    return target


def test_a_secret_file_is_rechecked_each_second_and_read_only_when_it_changed(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A ..data swap is read after the second; a file whose fingerprint held is not read."""
    swap(tmp_path, "..v1", "one\n")
    secret = Secret(file=str(tmp_path / "token"))
    cache = SecretCache(clock.monotonic)
    assert cache.get(secret) == "one"
    target = swap(tmp_path, "..v2", "two\n")  # same size, same mtime: only the swap tells
    clock.advance(0.5)
    assert cache.get(secret) == "one"
    clock.advance(0.5)
    assert cache.get(secret) == "two"
    target.write_text("2wo\n", encoding="utf-8")  # in place, size and mtime kept
    os.utime(target, ns=(MTIME, MTIME))
    clock.advance(1.0)
    assert cache.get(secret) == "two"
    target.unlink()
    clock.advance(1.0)
    with pytest.raises(AuthError) as refused:
        cache.get(secret)
    assert refused.value.reason == "secret_unreadable"
    assert str(refused.value) == f"cannot read file {tmp_path}/token: No such file or directory"


# -- request signing ---------------------------------------------------------------


def source_signed(
    signature: RequestSignature | None, api: str = "evocalize_batch_report"
) -> SourceConfig:
    """A source of ``api`` with ``signature``."""
    return SourceConfig(
        name="evo",
        api=api,
        base_url="http://x/",
        path="{id}",
        poll_interval=30.0,
        signature=signature,
    )


async def no_post(url: str, form: Mapping[str, str], headers: Mapping[str, str]) -> Response | str:
    """A token endpoint that must never be asked."""
    raise AssertionError(f"no token request expected, got one to {url}")


def test_signed_passes_path_seconds_key_id_and_current_secret(clock: FakeClock) -> None:
    """``signed`` hands the signer the raw path, the wall clock's whole second, key ID, secret."""
    calls: list[tuple[str, int, str, str]] = []

    def sign(path: str, stamp: int, key_id: str, secret: str) -> tuple[tuple[str, str], ...]:
        calls.append((path, stamp, key_id, secret))
        return (("X-Signed", f"{stamp}"),)

    clock.advance(0.999)
    signature = RequestSignature("kid", Secret(inline="shh"))
    auth = Auth(source_signed(signature), no_post, clock.monotonic, sign=sign, wall=clock.time)
    assert auth.signed("/a%2Fb") == {"X-Signed": "1700001000"}
    assert calls == [("/a%2Fb", 1_700_001_000, "kid", "shh")]


async def test_headers_of_a_signed_source_carry_no_secret(clock: FakeClock) -> None:
    """``headers()`` only checks the secret can be read; the signature comes per request."""

    def sign(path: str, stamp: int, key_id: str, secret: str) -> tuple[tuple[str, str], ...]:
        raise AssertionError("headers() must not sign")

    signature = RequestSignature("kid", Secret(inline="shh"))
    auth = Auth(source_signed(signature), no_post, clock.monotonic, sign=sign, wall=clock.time)
    assert await auth.headers() == {}


def test_an_unsigned_source_signs_nothing(clock: FakeClock) -> None:
    """Without a signature in the config, ``signed`` adds no header."""
    auth = Auth(source_signed(None), no_post, clock.monotonic, wall=clock.time)
    assert auth.signed("/x") == {}


def test_a_signature_without_a_signer_is_refused(clock: FakeClock) -> None:
    """An API with no ``sign`` cannot be given a signature (the pool reports it)."""
    signature = RequestSignature("kid", Secret(inline="shh"))
    with pytest.raises(ValueError, match=r"^API batch_import_job does not sign requests$"):
        Auth(source_signed(signature, "batch_import_job"), no_post, clock.monotonic)
