"""Run data made safe for a terminal: each control character shown as visible text.

Run data may come from an untrusted remote, and error messages name the values they are about, so
every layer that prints run data or names it in a message uses printable(); it lives here, below
all of them, with nothing of gitexp imported.
"""

from __future__ import annotations

import re

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
