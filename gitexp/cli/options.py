"""Options shared by several commands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
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


class _Deprecated(argparse.Action):
    """An old spelling of an option, kept so that scripts using it go on working: it sets what the
    new spelling sets, and notes what to say (deprecated() says it once the command runs)."""

    def __init__(self, option_strings: list[str], dest: str, instead: str = "", why: str = "",
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.instead, self.why = instead, why

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        notes = list(getattr(namespace, "deprecations", None) or [])
        notes.append(f"`{parser.prog} {option_string} {self.metavar}` is deprecated: {self.why}; "
                     f"use {self.instead} {self.metavar}")
        namespace.deprecations = notes


def add_deprecated(parser: argparse.ArgumentParser, option: str, instead: str, dest: str, metavar: str,
                   why: str) -> None:
    """*option*, an old spelling of *instead* (which sets *dest*), still accepted with a warning saying *why*
    it goes; the command's func must be wrapped in deprecated() for the warning to be given."""
    parser.add_argument(option, dest=dest, metavar=metavar, default=argparse.SUPPRESS, action=_Deprecated,
                        instead=instead, why=why, help=f"deprecated spelling of {instead}: {why}")


def deprecated(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """*func*, warning first of each deprecated option the command line used (main() shows gitexp's
    warnings as `git exp: warning: ...` lines only while a command runs, not while parsing)."""
    def run(args: argparse.Namespace) -> int:
        from gitexp.warn import warn

        for note in getattr(args, "deprecations", None) or []:
            warn(f"gitexp: {note}", FutureWarning)
        return func(args)
    return run
