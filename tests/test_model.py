"""The vendor-neutral shapes: what a response body reads as."""

from __future__ import annotations

import pytest

from exporter.model import Response


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"code": "x", "n": 1}', {"code": "x", "n": 1}),
        (b"{}", {}),
        (b"[1, 2]", None),
        (b'"text"', None),
        (b"<html>502</html>", None),
        (b"\xff\xfe", None),
        (b"", None),
        (b"[" * 100_000, None),
    ],
)
def test_json_object_reads_objects_and_nothing_else(body: bytes, expected: object) -> None:
    """A JSON object comes back as a dict; anything else, however hostile, is None."""
    assert Response(200, {}, body).json_object() == expected
