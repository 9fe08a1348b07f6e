"""Exposition bytes as cached pieces, and their gzip form; no I/O.

A :class:`Page` is one ``/metrics`` exposition as an ordered list of
:class:`Piece` objects reused from scrape to scrape, plus a few fresh bytes.
A page is never joined to be served: it is written piece by piece, and its
gzip form is one gzip member (RFC 1952) assembled from each piece's cached
raw-deflate bytes, so only what changed since the last scrape is compressed
again.  This works because a raw-deflate stream flushed with ``Z_SYNC_FLUSH``
ends on a byte boundary without a final block, so such streams concatenate
into one valid stream; an empty final block closes it.  Only the CRC-32 is
computed over the whole page each time.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

# Level 1: a scrape's page is large and compresses well; speed matters more than ratio.
GZIP_LEVEL = 1
# gzip header: deflate, no flags, mtime 0, "fastest" extra flag, unknown OS (RFC 1952).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
DEFLATE_END = b"\x03\x00"  # an empty final block (fixed Huffman)


def deflate(data: bytes) -> bytes:
    """``data`` as raw deflate that ends on a byte boundary without a final block."""
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


class Piece:
    """A run of exposition bytes reused across scrapes; its deflate is made once, on demand.

    Immutable apart from that cache, so a page may be gzipped in a worker thread.
    """

    __slots__ = ("_deflated", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._deflated: bytes | None = None

    @property
    def compressed(self) -> bool:
        """Whether the deflate form is cached already."""
        return self._deflated is not None

    def deflated(self) -> bytes:
        """The raw-deflate form of :attr:`data` (computed on first use)."""
        z = self._deflated
        if z is None:
            z = self._deflated = deflate(self.data)
        return z


class Page:
    """One exposition as ordered parts: cached :class:`Piece` objects and fresh bytes."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: Sequence[Piece | bytes]) -> None:
        self.parts = parts
        self.size = sum(len(p) if isinstance(p, bytes) else len(p.data) for p in parts)

    def chunks(self) -> Iterator[bytes]:
        """The page's bytes in order, without joining them."""
        for part in self.parts:
            yield part if isinstance(part, bytes) else part.data

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks())

    def fresh_bytes(self) -> int:
        """How many bytes a gzip of this page must compress now (not cached yet)."""
        return sum(
            len(p) if isinstance(p, bytes) else 0 if p.compressed else len(p.data)
            for p in self.parts
        )

    def gzip(self) -> list[bytes]:
        """The page as one gzip member, in pieces; fresh bytes are compressed here."""
        out = [GZIP_HEADER]
        crc = 0
        fresh: list[bytes] = []
        for part in (*self.parts, None):
            if isinstance(part, bytes):
                fresh.append(part)
                continue
            if fresh:
                data = b"".join(fresh)
                fresh.clear()
                out.append(deflate(data))
                crc = zlib.crc32(data, crc)
            if part is not None and part.data:
                out.append(part.deflated())
                crc = zlib.crc32(part.data, crc)  # releases the GIL for all but small pieces
        out += (DEFLATE_END, struct.pack("<II", crc, self.size & 0xFFFFFFFF))
        return out
