"""Pages of cached pieces: their bytes, and a gzip form assembled from cached deflate."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.exposition.page import Page, Piece, deflate

CHUNKS = st.binary(max_size=300) | st.text(max_size=200).map(str.encode)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(CHUNKS.map(Piece), min_size=1, max_size=6),
    layout=st.lists(st.integers(min_value=-1, max_value=5) | CHUNKS, max_size=20),
)
def test_gzip_of_a_page_is_its_bytes_whatever_was_cached(
    pieces: list[Piece], layout: list[int | bytes]
) -> None:
    """Pieces (reused, empty or not) and fresh bytes gzip to exactly the page, twice over."""
    parts: list[Piece | bytes] = [
        p if isinstance(p, bytes) else pieces[p % len(pieces)] for p in layout
    ]
    page = Page(parts)
    data = b"".join(p if isinstance(p, bytes) else p.data for p in parts)
    assert bytes(page) == data
    assert page.size == len(data)
    first = b"".join(page.gzip())
    assert gzip.decompress(first) == data
    assert page.fresh_bytes() == sum(len(p) for p in parts if isinstance(p, bytes))
    assert b"".join(page.gzip()) == first  # from the cached deflate: the same bytes


def test_a_piece_deflates_once_and_lazily() -> None:
    """The deflate form is made on first use, then reused."""
    piece = Piece(b"x 1\n" * 1000)
    page = Page([piece])
    assert page.fresh_bytes() == 4000
    z = piece.deflated()
    assert page.fresh_bytes() == 0
    assert piece.deflated() is z
    assert zlib.decompressobj(-15).decompress(z) == piece.data


def test_deflate_streams_concatenate() -> None:
    """Sync-flushed raw deflate of two runs, joined and closed, inflates to both runs."""
    a, b = b"alpha " * 100, b"beta " * 100
    joined = deflate(a) + deflate(b) + b"\x03\x00"
    assert zlib.decompress(joined, -15) == a + b


def test_an_empty_page_is_a_valid_empty_gzip() -> None:
    """No parts: zero bytes, and a gzip member of nothing."""
    page = Page([])
    assert bytes(page) == b""
    assert gzip.decompress(b"".join(page.gzip())) == b""
