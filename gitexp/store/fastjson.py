"""msgspec's JSON parser, where it is installed: 2.5 times as fast as the standard library's.

A first listing of many runs parses their summary.json with it (summary.from_reads), and a long
metric history its numbers (histories.parse_history). Both keep the standard library's way as
the reference, for whatever this parser refuses and wherever it is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

_decode: Callable[[bytes | bytearray], Any] | Literal[False] | None = False  # not looked for yet


def decoder(load: bool = True) -> Callable[[bytes | bytearray], Any] | None:
    """msgspec's JSON decode, which gives what json.loads gives (integers of any size included) for
    every text it takes; None without msgspec (a platform it has no wheel for), or when it is not
    imported yet and not *load* (its import costs 14 ms: worth it for thousands of values only)."""
    global _decode
    if _decode is False and load:
        try:
            import msgspec.json
        except ImportError:
            _decode = None
        else:
            decode = msgspec.json.Decoder().decode
            # (an integer past 64 bits as an int, not a float: what this parser must agree with
            # json.loads on, checked once rather than trusted of every version)
            _decode = decode if type(decode(b"-18446744073709551617")) is int else None
    return _decode or None
