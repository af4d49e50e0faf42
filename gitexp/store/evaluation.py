"""What a query means for a run: the predicates of parsed filters, and the order of sort keys.

``compile_where(text)`` turns an expression (or a query.Node) into a predicate over a *lookup*, a
function from a field path such as ``("metrics", "acc")`` to its value or ``MISSING``;
``compile_columns`` answers it for many items at once, and ``sort_records`` sorts by
query.SortKeys. Values compare as numbers, times, booleans or text, as the literal suggests.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from itertools import compress
from typing import TypeVar, cast

from gitexp.store.fields import MISSING
from gitexp.store.query import (
    INTEGER,
    And,
    Compare,
    In,
    IsNull,
    Match,
    Node,
    Not,
    Or,
    Path,
    SortKey,
    Value,
    from_iso,
    parse,
)

T = TypeVar("T")
Lookup = Callable[[Path], object]  # a field path to its value for one item, or MISSING
_ISO_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NUMERIC_STR = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_CMP = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
Pred = Callable[[object], bool]
_first = operator.itemgetter(0)


def _number(v: object) -> int | float | None:
    """v as a number: ints and floats (not bools), or strings that spell a number."""
    if type(v) is int or type(v) is float:
        return v
    if isinstance(v, str):
        if not _NUMERIC_STR.fullmatch(v):
            return None
        s = v.strip()
        return int(s) if INTEGER.fullmatch(s) and len(s) < 400 else float(s)
    return v if isinstance(v, numbers.Real) and not isinstance(v, bool) else None  # type: ignore[return-value]


def _datetime(v: object) -> datetime | None:
    """v as an aware datetime (see _aware), or None."""
    if isinstance(v, date):
        return _aware(v)
    if isinstance(v, str) and _ISO_PREFIX.match(v):
        try:
            return _aware(from_iso(v))
        except ValueError:
            return None
    return None


def _aware(v: date) -> datetime:
    """A date or datetime as an aware datetime: a naive one is UTC, a date midnight UTC."""
    if isinstance(v, datetime):
        return v if v.utcoffset() is not None else v.replace(tzinfo=timezone.utc)
    return datetime(v.year, v.month, v.day, tzinfo=timezone.utc)


def _boolean(v: object) -> bool | None:
    if isinstance(v, bool):
        return v
    return {"true": True, "false": False}.get(v.lower()) if isinstance(v, str) else None


def _predicate(op: str, lit: Value) -> Pred:
    """A test of one present (not MISSING, not None) field value against a literal."""
    fn = _CMP[op]
    if lit is None:
        return lambda v: False
    if isinstance(lit, tuple):
        if op not in ("=", "!="):
            return lambda v: False
        items, want = [_predicate("=", x) for x in lit], op == "="
        return lambda v: isinstance(v, list | tuple) and (
            len(v) == len(items) and all(p(x) for p, x in zip(items, v, strict=True))) == want
    if isinstance(lit, date):
        ref = _aware(lit)
        return lambda v: (d := _datetime(v)) is not None and fn(d, ref)
    if isinstance(lit, bool):
        return lambda v: (b := _boolean(v)) is not None and fn(b, lit)
    if isinstance(lit, int | float):
        def number_pred(v: object) -> bool:
            if type(v) is int or type(v) is float:
                return fn(v, lit)
            return (x := _number(v)) is not None and fn(x, lit)
        return number_pred
    num_lit, dt_lit, bool_lit = _number(lit), _datetime(lit), _boolean(lit)

    def string_pred(v: object) -> bool:
        if isinstance(v, str):
            if dt_lit is not None and (d := _datetime(v)) is not None:
                return fn(d, dt_lit)
            return fn(v, lit)
        if isinstance(v, bool):
            return bool_lit is not None and fn(v, bool_lit)
        if num_lit is not None and (x := _number(v)) is not None:
            return fn(x, num_lit)
        return dt_lit is not None and (d := _datetime(v)) is not None and fn(d, dt_lit)
    return string_pred


def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % any run, _ one character, backslash escapes the next character."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _checked(test: Pred, v: object) -> bool:
    """A leaf's test of one value: a missing value, or one the test cannot compare, fails."""
    if v is MISSING or v is None:
        return False
    try:
        return bool(test(v))
    except (TypeError, ValueError, ArithmeticError):
        return False


def _guard(path: Path, test: Pred) -> Callable[[Lookup], bool]:
    return lambda look: _checked(test, look(path))


def _leaf_test(node: Node) -> Pred:
    """The test of the value of a comparison, in, like or glob node's field (present, not None)."""
    match node:
        case Compare(_, op, value):
            return _predicate(op, value)
        case In(_, values, negated):
            preds = [_predicate("=", v) for v in values]
            strings = frozenset(v for v in values if isinstance(v, str))
            return lambda v: ((isinstance(v, str) and v in strings) or any(p(v) for p in preds)) != negated
        case Match(_, kind, pattern, negated):
            rx = _like_regex(pattern) if kind == "like" else re.compile(fnmatch.translate(pattern))
            return lambda v: isinstance(v, str) and (rx.fullmatch(v) is not None) != negated
    raise TypeError(f"not a query node: {node!r}")


def _compile(node: Node) -> Callable[[Lookup], bool]:
    match node:
        case And(operands) | Or(operands):
            parts = [_compile(o) for o in operands]
            want = isinstance(node, Or)  # the result that decides early
            def junction(look: Lookup) -> bool:
                for part in parts:
                    if part(look) is want:
                        return want
                return not want
            return junction
        case Not(operand):
            inner = _compile(operand)
            return lambda look: not inner(look)
        case IsNull(path, negated):
            return lambda look: ((v := look(path)) is MISSING or v is None) != negated
        case Compare() | In() | Match():
            return _guard(node.path, _leaf_test(node))
    raise TypeError(f"not a query node: {node!r}")


Fetch = Callable[[Sequence[T], Path], Sequence[object]]
Vector = Callable[[Sequence[T], Fetch], list[bool]]


def _vector(node: Node) -> Vector:
    match node:
        case And(operands) | Or(operands):
            parts = [_vector(o) for o in operands]
            want = isinstance(node, Or)

            def junction(items: Sequence[T], fetch: Fetch) -> list[bool]:
                # Each operand sees only the items that the operands before it left undecided:
                # the very tests, on the very items, that compile_where's junction makes (kept by
                # compress(), a C loop: 100,000 items in a few milliseconds).
                count = len(items)
                todo: Sequence[int] = range(count)
                for part in parts:
                    if not todo:
                        break
                    undecided = [answer is not want for answer in part(items, fetch)]
                    todo, items = list(compress(todo, undecided)), list(compress(items, undecided))
                result = [want] * count
                for i in todo:
                    result[i] = not want
                return result
            return junction
        case Not(operand):
            inner = _vector(operand)
            return lambda items, fetch: [not answer for answer in inner(items, fetch)]
        case IsNull(path, negated):
            return lambda items, fetch: [(v is MISSING or v is None) != negated for v in fetch(items, path)]
        case Compare(path, op, value) if type(value) is int or type(value) is float:
            # A number compared with a number literal: what number_pred answers, inline.
            test, fn = _leaf_test(node), cast("Callable[[object, object], bool]", _CMP[op])
            return lambda items, fetch: [fn(v, value) if (t := type(v)) is float or t is int else _checked(test, v)
                                         for v in fetch(items, path)]
        case Compare() | In() | Match():
            path, test = node.path, _leaf_test(node)
            return lambda items, fetch: [_checked(test, v) for v in fetch(items, path)]
    raise TypeError(f"not a query node: {node!r}")


def compile_columns(where: str | Node | None) -> Vector:
    """compile_where for many items at once: the predicate takes the items and fetch(items, path),
    the values of a field for each of some items, and answers for each item. Each field is fetched
    for the items that compile_where would look it up for, and no other, so a costly field is read
    only where it must be; a field of many items at once is read without a call per item."""
    if where is None or (isinstance(where, str) and not where.strip()):
        return lambda items, fetch: [True] * len(items)
    return _vector(parse(where) if isinstance(where, str) else where)


def compile_where(where: str | Node | None) -> Callable[[Lookup], bool]:
    """Parse once and return a fast predicate over a Lookup; empty text matches every run."""
    if where is None or (isinstance(where, str) and not where.strip()):
        return lambda look: True
    return _compile(parse(where) if isinstance(where, str) else where)


def mapping_lookup(data: Mapping[str, object]) -> Lookup:
    """A Lookup over nested mappings; ("params", "a", "b") finds data["params"]["a"]["b"] or
    data["params"]["a.b"] (longest dotted key first); anything absent is MISSING."""
    def dig(node: object, path: Path) -> object:
        if not path:
            return node
        if isinstance(node, Mapping):
            for n in range(len(path), 0, -1):
                key = ".".join(path[:n])
                if key in node and (found := dig(node[key], path[n:])) is not MISSING:
                    return found
        return MISSING
    return lambda path: dig(data, path)


def sort_value(v: object) -> tuple[int, object]:
    """(rank, comparable): numbers, then datetimes, strings, booleans, others; rank -1 is missing."""
    t = type(v)
    if t is int or (t is float and v == v):
        return 0, v
    if v is MISSING or v is None:
        return -1, None
    if isinstance(v, bool):
        return 3, v
    if (x := _number(v)) is not None:
        return (-1, None) if x != x else (0, x)
    if (d := _datetime(v)) is not None:
        return 1, d
    return (2, v) if isinstance(v, str) else (4, repr(v))


def sort_records(records: Sequence[T], keys: Sequence[SortKey], lookup_for: Callable[[T], Lookup]) -> list[T]:
    """Stable multi-key sort; records missing a key go last whatever its direction."""
    out = list(records)
    if not keys:
        return out
    lookups = [lookup_for(r) for r in out]
    return [out[i] for i in sort_positions(range(len(out)), keys, lambda path: [look(path) for look in lookups])]


def sort_positions(positions: Iterable[int], keys: Sequence[SortKey],
                   column: Callable[[Path], Sequence[object]]) -> list[int]:
    """sort_records of items given by position: column(path) is a field's value for every item (by
    position), *positions* the items to order."""
    order = list(positions)
    for key in reversed(keys):
        values = column(key.path)
        order = _numbers_order(order, values, key.descending) or ranked_order(order, values, key.descending)
    return order


def ranked_order(order: list[int], values: Sequence[object], descending: bool) -> list[int]:
    """*order* sorted (stably) by sort_value(values[i]), the missing last: the reference for any values."""
    buckets: dict[int, list[tuple[object, int]]] = {}
    # A number that is not NaN ranks first as itself (sort_value's first case, inline).
    ranked = [(0, v) if (t := type(v)) is int or (t is float and v == v) else sort_value(v)
              for v in map(values.__getitem__, order)]
    for i, (rank, value) in zip(order, ranked, strict=True):
        buckets.setdefault(rank, []).append((value, i))
    missing = buckets.pop(-1, [])
    out: list[int] = []
    for rank in sorted(buckets):
        out.extend(i for _, i in sorted(buckets[rank], key=_first, reverse=descending))
    out.extend(i for _, i in missing)
    return out


def _numbers_order(order: list[int], values: Sequence[object], descending: bool) -> list[int] | None:
    """ranked_order where every value is an int or a float other than NaN (a metric every run
    logged): one sort keyed by the values themselves, without a pair per item (50,000 items: 50 ms
    less); None otherwise, or for no items."""
    picked = list(map(values.__getitem__, order))
    if not picked or not set(map(type, picked)) <= {int, float}:
        return None
    try:
        if any(map(math.isnan, picked)):  # type: ignore[arg-type]
            return None
    except OverflowError:  # (an int past what a float holds: the reference compares it exactly)
        return None
    numbers = cast("Sequence[float]", values)
    return sorted(order, key=numbers.__getitem__, reverse=descending)
