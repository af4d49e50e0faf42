"""Options shared by several commands."""

from __future__ import annotations

import argparse
import re

# A descending sort key such as -metrics.acc or -duration: a value, not an unknown option.
_DESCENDING_KEY = re.compile(r"-(?:`|(?:params|metrics|tags|env|inputs|meta)\.|"
                             r"(?:status|name|id|experiment|commit|start|end|duration)(?:$|[,\s]))")


def add_sort(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--sort KEYS, taking `--sort -metrics.acc,duration` as written (argparse alone would read
    -metrics.acc as an unknown option and fail with 'expected one argument')."""
    parser.add_argument("--sort", "-s", metavar="KEYS", help=help_text)
    classify = parser._parse_optional

    def parse_optional(arg: str):
        return None if _DESCENDING_KEY.match(arg) else classify(arg)

    parser._parse_optional = parse_optional  # type: ignore[method-assign]
