"""Which token endpoint answers refuse the credentials, as opposed to failing for a while."""

from __future__ import annotations

import pytest

from exporter.model import Response
from exporter.polling.auth import token_refused


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
