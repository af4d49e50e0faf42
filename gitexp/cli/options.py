"""Options shared by several commands."""

from __future__ import annotations

import argparse
import re
from typing import Any, Protocol

from gitexp.store.fields import FIELDS, PREFIXES

# A descending sort key such as -metrics.acc or -duration: a value, not an unknown option. The
# field names are the query language's own (fields.FIELDS, fields.PREFIXES).
_DESCENDING_KEY = re.compile(rf"-(?:`|(?:{'|'.join(PREFIXES)})\.|(?:{'|'.join(FIELDS)})(?:$|[,\s]))")


class _Classifier(Protocol):
    """argparse's private ArgumentParser._parse_optional; what it answers differs between Python versions."""

    def __call__(self, arg_string: str) -> Any: ...


def add_sort(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--sort KEYS, taking `--sort -metrics.acc,duration` as written (argparse alone would read
    -metrics.acc as an unknown option and fail with 'expected one argument')."""
    parser.add_argument("--sort", "-s", metavar="KEYS", help=help_text)
    # argparse has no hook for this: its classifier of arguments is wrapped instead.
    parser._parse_optional = _keys_not_options(parser._parse_optional)  # type: ignore[method-assign]


def _keys_not_options(classify: _Classifier) -> _Classifier:
    """*classify*, answering None (a value, not an option) for a descending sort key."""

    def parse_optional(arg_string: str) -> Any:
        return None if _DESCENDING_KEY.match(arg_string) else classify(arg_string)
    return parse_optional
