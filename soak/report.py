"""The soak's table: one row per check, what was measured, the target, and the verdict."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Row:
    """One check: ``ok`` is ``None`` for a number only reported (not held to its target)."""

    name: str
    measured: str
    target: str
    ok: bool | None
    details: tuple[str, ...] = field(default=())

    @property
    def verdict(self) -> str:
        """PASS, FAIL, or ``info`` for a reported number."""
        return "info" if self.ok is None else "PASS" if self.ok else "FAIL"


def table(rows: Iterable[Row]) -> str:
    """The rows as a Markdown table, then the details of each failed check (a few lines each)."""
    rows = list(rows)
    head = ("check", "measured", "target", "")
    cells = [head, *((r.name, r.measured, r.target, r.verdict) for r in rows)]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(head))]

    def line(cell: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(cell) for cell in cells[1:]]
    for row in rows:
        if row.details and row.ok is not True:
            out.append(f"\n{row.name}:")
            out += [f"  {text}" for text in row.details[:10]]
            if len(row.details) > 10:
                out.append(f"  ... and {len(row.details) - 10} more")
    return "\n".join(out)


def failed(rows: Iterable[Row]) -> list[str]:
    """The names of the checks that failed."""
    return [row.name for row in rows if row.ok is False]
