"""What the query modules (query, evaluation, search) share without the parser: the field names, and MISSING.

`git exp ls` looks fields up without parsing an expression; keeping these here spares it
importing the parser (a few milliseconds of a listing that should take a few hundred).
"""

from __future__ import annotations

import re
from typing import Any


class _Missing:
    """What a lookup returns for a field the run does not have (also accepted: None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()
FIELDS = ("status", "name", "id", "experiment", "commit", "start", "end", "duration")
PREFIXES = ("params", "metrics", "tags", "env", "inputs", "meta")
# A field name that needs no backticks; a plain dotted name of such parts is a field path as is.
IDENT = re.compile(r"[A-Za-z0-9_/-]+")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_/-]+(?:\.[A-Za-z0-9_/-]+)*")


def plain_path(text: str) -> tuple[str, ...] | None:
    """The field path that query.parse_sort reads *text* as, when it is a plain dotted name of a
    field ("status", "params.model.layers"); None for anything else (for the parser to decide)."""
    if not _PLAIN_PATH.fullmatch(text):
        return None
    path = tuple(text.split("."))
    if (path[0] in FIELDS and len(path) == 1) or (path[0] in PREFIXES and len(path) > 1):
        return path
    return None


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: {"model": {"layers": 4}} -> {"model.layers": 4}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key if not prefix and type(key) is str else f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
