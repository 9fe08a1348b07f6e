"""Pre-rendered exposition lines of many jobs, in blocks that cache their joins.

A :class:`Blocks` holds, for every job, one run of lines per metric family
(a *column*).  Jobs sit in blocks of ``block_size`` (:data:`BLOCK_SIZE` unless
told otherwise), finished jobs apart from unfinished ones; each block caches,
per family, the join of its jobs' lines as a
:class:`~exporter.exposition.page.Piece`, dropped only when one of those lines
changes.  A finished job never changes again, so its block stays cached until
jobs expire; an unfinished block is joined again at most once a scrape.  It
knows nothing of what the lines say, and a job is whatever holds its
:class:`Slotted` place (the renderer's own row per job).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from exporter.exposition.page import Piece

# Jobs per block: small enough that rebuilding a block's changed families is cheap,
# large enough that a page of 50,000 jobs is a few thousand pieces.
BLOCK_SIZE = 256
_EMPTY = Piece(b"")


class Slotted(Protocol):
    """A job as the blocks see it: which block holds its lines, and where."""

    block: Block | None
    slot: int


class Block:
    """Up to ``block_size`` jobs, their lines by family, and each family's cached join.

    Lines are kept column-wise (``cols[family][slot]``) so a join reads one list;
    a job that leaves empties its slot, reused only when the blocks compact.
    """

    __slots__ = ("cols", "entries", "finished", "live", "pieces")

    def __init__(self, families: int, finished: bool) -> None:
        self.finished = finished
        self.cols: list[list[bytes]] = [[] for _ in range(families)]
        self.entries: list[Slotted | None] = []
        self.live = 0
        self.pieces: list[Piece | None] = [_EMPTY] * families  # None: stale, join again

    @property
    def size(self) -> int:
        """Slots used, empty ones included."""
        return len(self.entries)

    def add(self, entry: Slotted, lines: Iterable[bytes]) -> None:
        """Put ``entry`` with ``lines`` (one run per family) in the next slot."""
        entry.block, entry.slot = self, len(self.entries)
        self.entries.append(entry)
        self.live += 1
        for family, (col, line) in enumerate(zip(self.cols, lines, strict=True)):
            col.append(line)
            if line:
                self.pieces[family] = None

    def update(self, slot: int, lines: Iterable[bytes]) -> None:
        """Replace the lines in ``slot``; only the families that changed go stale."""
        for family, (col, line) in enumerate(zip(self.cols, lines, strict=True)):
            if col[slot] != line:
                col[slot] = line
                self.pieces[family] = None

    def drop(self, entry: Slotted) -> None:
        """Empty ``entry``'s slot; the families it had lines in go stale."""
        slot = entry.slot
        for family, col in enumerate(self.cols):
            if col[slot]:
                col[slot] = b""
                self.pieces[family] = None
        self.entries[slot] = None
        self.live -= 1
        entry.block = None

    def lines(self, slot: int) -> list[bytes]:
        """The lines in ``slot``, one run per family."""
        return [col[slot] for col in self.cols]

    def piece(self, family: int) -> Piece:
        """The family's lines of every job in the block, joined once per change."""
        piece = self.pieces[family]
        if piece is None:
            piece = self.pieces[family] = Piece(b"".join(self.cols[family]))
        return piece


class Blocks:
    """Every job's lines: unfinished jobs' blocks, and finished jobs' blocks."""

    def __init__(self, families: int, *, block_size: int = BLOCK_SIZE) -> None:
        self._families = families
        self._block_size = block_size
        self._blocks: dict[bool, list[Block]] = {True: [], False: []}  # by ``finished``

    def put(self, entry: Slotted, lines: list[bytes], *, finished: bool) -> None:
        """Store ``entry``'s lines; it moves to a block of the other kind when it (un)finishes."""
        block = entry.block
        if block is not None and block.finished == finished:
            block.update(entry.slot, lines)
            return
        self.remove(entry)
        self._place(entry, lines, finished)

    def remove(self, entry: Slotted) -> None:
        """Drop ``entry``'s lines, if it has any."""
        block = entry.block
        if block is not None:
            block.drop(entry)
            if not block.live:
                self._blocks[block.finished].remove(block)

    def pieces(self, family: int) -> list[Piece]:
        """The family's non-empty pieces: finished jobs' blocks first."""
        return [
            p for kind in (True, False) for b in self._blocks[kind] if (p := b.piece(family)).data
        ]

    def compact(self) -> None:
        """Regroup jobs into full blocks where departures have left many slots empty."""
        for finished, blocks in self._blocks.items():
            if len(blocks) <= 2 * (sum(b.live for b in blocks) // self._block_size) + 2:
                continue
            moving = [(e, b.lines(e.slot)) for b in blocks for e in b.entries if e is not None]
            blocks.clear()
            for entry, lines in moving:
                entry.block = None
                self._place(entry, lines, finished)

    def _place(self, entry: Slotted, lines: list[bytes], finished: bool) -> None:
        blocks = self._blocks[finished]
        if not blocks or blocks[-1].size >= self._block_size:
            blocks.append(Block(self._families, finished))
        blocks[-1].add(entry, lines)
