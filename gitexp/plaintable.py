"""tabulate's "simple" and "github" tables of plain text, made without tabulate's cost.

tabulate infers a type for every cell, which was most of the time of listing 10,000 runs. The
listing renders its numbers itself (disable_numparse), so every column is text, left-aligned, at
least 2 wider than its header: for cells of printable ASCII that is quick to do, byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# What a terminal acts on rather than shows: C0 and C1 control characters (ESC starts the sequences
# that set a window title, clear the screen or move the cursor) and DEL; and what reorders or breaks
# the lines of text (bidirectional overrides and isolates, Unicode line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str, keep: str = "") -> str:
    """*text* for a terminal: each character it would act on shown as visible text (ESC as `\\x1b`, a
    newline as `\\n`), except those in *keep* ("\\n" where a multi-line field may break lines).

    Run data may come from an untrusted remote: every view prints it through this (or through a
    table, whose cells get it), so no run can retitle a terminal, clear it or fake lines in it.
    """
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)


def has_unsafe(text: str) -> bool:
    """Whether printable() would change *text* (with nothing kept)."""
    return _UNSAFE.search(text) is not None


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
        if not (joined.isascii() and joined.isprintable() and header.isascii() and header.isprintable()):
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
