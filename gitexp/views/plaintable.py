"""tabulate's "simple" and "github" tables of plain text, made without tabulate's cost.

tabulate infers a type for every cell, which was most of the time of listing 10,000 runs. The
listing renders its numbers itself (disable_numparse), so every column is text, left-aligned, at
least 2 wider than its header: for cells of printable ASCII that is quick to do, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

_PRINTABLE = bytes(range(0x20, 0x7F))  # printable ASCII: what str.isprintable accepts of it


def _printable_ascii(text: str) -> bool:
    """text.isascii() and text.isprintable(), through bytes: isprintable looks up each character's
    Unicode class (10 ms of the 110 ms of a table of 50,000 runs, where this takes 3)."""
    return text.isascii() and not text.encode("ascii").translate(None, _PRINTABLE)


def plain_table(headers: Sequence[str], columns: Sequence[list[str]], markdown: bool = False) -> str | None:
    """What tabulate(disable_numparse=True) prints in its "simple" (or "github") format for these
    columns of cells (and a newline), byte for byte; or None when it may differ: cells that are not
    printable ASCII (tabulate measures those with wcwidth, skips ANSI codes, breaks lines), no rows,
    no columns."""
    if not columns or not columns[0]:
        return None
    widths, stripped = [], []
    for header, column in zip(headers, columns, strict=True):
        joined = "".join(column)
        if not (_printable_ascii(joined) and _printable_ascii(header)):
            return None
        if " " in joined and (" \0" in (marked := "\0" + "\0".join(column) + "\0") or "\0 " in marked):
            column = [c.strip() for c in column]  # tabulate strips the cells (not the headers)
        stripped.append(column)
        widths.append(max(len(header) + 2, max(map(len, column))))
    # One % per row pads and joins its cells; the last column is not padded (lines carry no
    # trailing spaces), so only an empty last cell leaves some to strip.
    if markdown:
        row = "| " + " | ".join(f"%-{w}s" for w in widths) + " |"
        lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                 *map(row.__mod__, zip(*stripped, strict=True))]
    else:
        row = "  ".join([*(f"%-{w}s" for w in widths[:-1]), "%s"])
        lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
                 "  ".join("-" * w for w in widths),
                 *map(row.__mod__, zip(*stripped, strict=True))]
        if "" in stripped[-1]:
            lines[2:] = map(str.rstrip, lines[2:])
    return "\n".join(lines) + "\n"
