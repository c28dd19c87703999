"""A side-by-side hex window around the first differing byte of a primary/secondary pair.

``hexdiff`` returns structured rows (offsets, both sides' bytes, a per-byte differ mask) so an
HTML report can render them its own way; ``HexDiff.text()`` renders them for a terminal, with a
marker line (``^^``) under the differing bytes of both halves.  Frames of unequal length are
fine: a byte present on one side only counts as differing and the missing side shows ``--``.

The two sides may be aligned at different offsets (``s_offset``): colo-compare's TCP comparator
lines payloads up from each side's own header length, so the secondary's window starts where
its payload byte corresponding to the primary's differing byte is.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HexRow", "HexDiff", "hexdiff"]


@dataclass(frozen=True)
class HexRow:
    """One row of the window.  ``p_offset``/``s_offset`` are the frame offsets of the row's
    first column on each side (``s_offset`` may be negative when the secondary is aligned
    earlier); ``primary``/``secondary`` hold one entry per column, the byte or ``None`` where
    that side has no byte (before its start or past its end); ``differ[i]`` is True where column
    ``i`` differs, a byte present on one side only included."""

    p_offset: int
    s_offset: int
    primary: tuple[int | None, ...]
    secondary: tuple[int | None, ...]
    differ: tuple[bool, ...]


@dataclass(frozen=True)
class HexDiff:
    """The window: ``offset``/``s_offset`` are the differing byte on each side (as asked),
    ``width`` the bytes per row, ``rows`` in frame order."""

    offset: int
    s_offset: int
    width: int
    rows: tuple[HexRow, ...]

    @property
    def differing(self) -> int:
        """How many byte columns in the window differ."""
        return sum(sum(r.differ) for r in self.rows)

    def text(self, labels: tuple[str, str] = ("primary", "secondary")) -> str:
        """Plain-text rendering: ``offset  primary hex | secondary hex`` per row, and under each
        row with a difference a marker line with ``^^`` under the differing bytes."""
        w = self.width
        cell = 3 * w - 1                      # "xx xx ... xx"
        pw = max(4, len(f"{self._max_offset():x}"))
        head = " " * (pw + 2) + labels[0].ljust(cell) + " | " + labels[1]
        lines = [head.rstrip()]
        for r in self.rows:
            left = _hex(r.primary)
            right = _hex(r.secondary)
            soff = f" @{r.s_offset:0{pw}x}" if r.s_offset != r.p_offset else ""
            lines.append(f"{r.p_offset:0{pw}x}  {left} | {right}{soff}".rstrip())
            if any(r.differ):
                marks = " ".join("^^" if d else "  " for d in r.differ).ljust(cell)
                lines.append((" " * (pw + 2) + marks + "   " + marks).rstrip())
        return "\n".join(lines)

    def _max_offset(self) -> int:
        return max((max(r.p_offset, r.s_offset) for r in self.rows), default=0)

    def to_dict(self) -> dict:
        """JSON-ready form (bytes as hex strings), for reports."""
        return {"offset": self.offset, "s_offset": self.s_offset, "width": self.width,
                "rows": [{"p_offset": r.p_offset, "s_offset": r.s_offset, "primary": list(r.primary),
                          "secondary": list(r.secondary), "differ": list(r.differ)} for r in self.rows]}


def _hex(cells) -> str:
    return " ".join("--" if x is None else f"{x:02x}" for x in cells)


def hexdiff(p: bytes, s: bytes, offset: int, s_offset: int | None = None, *, width: int = 16,
            context: int = 2) -> HexDiff:
    """The window around primary byte ``offset`` (secondary byte ``s_offset``, default the same).

    Rows are ``width`` bytes, aligned to multiples of ``width`` on the primary side; the window
    holds the row of ``offset`` and up to ``context`` rows before and after it, clipped to the
    longer frame (a row exists while either side has bytes in it).  Never raises: offsets are
    clamped to what makes sense.
    """
    p = bytes(p)
    s = bytes(s)
    width = max(1, int(width))
    context = max(0, int(context))
    offset = max(0, int(offset))
    s_offset = offset if s_offset is None else max(0, int(s_offset))
    shift = s_offset - offset                  # secondary index = primary index + shift
    row0 = offset - offset % width
    # the last row that still has a byte on either side (at least the row of ``offset``)
    last_byte = max(len(p), len(s) - shift) - 1
    last = min(row0 + context * width, max(last_byte - last_byte % width, row0))
    rows = []
    for start in range(max(row0 - context * width, 0), last + 1, width):
        pcells = tuple(p[i] if i < len(p) else None for i in range(start, start + width))
        scells = tuple(s[i] if 0 <= i < len(s) else None
                       for i in range(start + shift, start + shift + width))
        differ = tuple(a != b for a, b in zip(pcells, scells))
        rows.append(HexRow(start, start + shift, pcells, scells, differ))
    return HexDiff(offset, s_offset, width, tuple(rows))
