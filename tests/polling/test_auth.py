"""Token answers that refuse the credentials, and secret files re-read when they change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.clock import FakeClock
from exporter.config import Secret
from exporter.model import Response
from exporter.polling.auth import AuthError, SecretCache, token_refused


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
