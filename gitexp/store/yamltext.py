"""YAML text for the plain data a run commit holds, written without PyYAML's object machinery.

PyYAML sends every value through Python representer and resolver objects, even with its C
emitter: meta.yaml took about 0.2 ms, a large share of a short run's commit. This writer
covers exactly the types gitexp stores (mappings with string keys, lists, str, int, float,
bool, None) in PyYAML's block style with sorted keys; for anything else dump() returns None
and the caller uses PyYAML. A property test checks that yaml.safe_load reads back exactly
what was written.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

# A string is written plain only when it cannot be syntax (no indicator first, no ': ' or ' #'
# inside, no leading or trailing space) and PyYAML's own resolver reads it back as a string,
# not as a number, boolean, null or date. Everything else is double-quoted.
_PLAIN = re.compile(r"[A-Za-z0-9_/.](?:[A-Za-z0-9_./+=@-]| (?=[A-Za-z0-9_./+=@-]))*\Z")
_resolve = yaml.resolver.Resolver().resolve
_STR = "tag:yaml.org,2002:str"
# Characters a YAML reader refuses raw, or reads as a line break: escaped inside quotes.
# (Lone surrogates have no escape libyaml accepts: such text is left to PyYAML.)
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unsupported(Exception):
    pass


def dump(data: Any) -> bytes | None:
    """*data* (a mapping) as YAML bytes, or None when it holds a type this writer leaves to PyYAML."""
    if not isinstance(data, dict) or not data:
        return None
    lines: list[str] = []
    try:
        _mapping(data, 0, lines)
    except _Unsupported:
        return None
    lines.append("")
    return "\n".join(lines).encode()


def _mapping(data: dict[Any, Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    if not all(type(key) is str for key in data):
        raise _Unsupported
    for key in sorted(data):
        value = data[key]
        name = _string(key)
        if isinstance(value, dict) and value:
            out.append(f"{pad}{name}:")
            _mapping(value, indent + 2, out)
        elif isinstance(value, list) and value:
            out.append(f"{pad}{name}:")
            _sequence(value, indent, out)  # PyYAML does not indent a sequence under its key
        else:
            out.append(f"{pad}{name}: {_scalar(value)}")


def _sequence(items: list[Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    for item in items:
        if isinstance(item, (dict, list)) and item:
            nested: list[str] = []
            if isinstance(item, dict):
                _mapping(item, indent + 2, nested)
            else:
                _sequence(item, indent + 2, nested)
            nested[0] = f"{pad}- {nested[0][indent + 2:]}"  # the first line shares the dash's line
            out.extend(nested)
        else:
            out.append(f"{pad}- {_scalar(item)}")


def _scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 reads 1e-05 as a string: 1.0e-05
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if kind is dict and not value:
        return "{}"
    if kind is list and not value:
        return "[]"
    raise _Unsupported


_written: dict[str, str] = {}  # a run's keys and most of its values repeat in every commit


def _string(text: str) -> str:
    known = _written.get(text)
    if known is not None:
        return known
    if len(_written) > 8192:
        _written.clear()
    if _PLAIN.match(text) and _resolve(yaml.ScalarNode, text, (True, False)) == _STR:
        _written[text] = text
        return text
    if _SURROGATE.search(text):
        raise _Unsupported
    quoted = json.dumps(text, ensure_ascii=False)  # JSON's escapes are valid in YAML double quotes
    if _UNSAFE.search(quoted):
        quoted = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
    if len(text) < 200:
        _written[text] = quoted
    return quoted
