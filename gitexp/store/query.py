"""The query language of ``--where`` and ``--sort`` (docs/query.md): a hand-written parser, never eval.

``parse(text)`` turns a filter into an AST of the node classes here (gitexp.mlflow builds the same
nodes from MLflow's syntax), ``unparse`` turns one back into text, and ``parse_sort`` reads sort
keys. What a node means for a run, and the sort order, are gitexp.store.evaluation's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import NoReturn

from gitexp.errors import QueryError
from gitexp.store.fields import FIELDS, IDENT, PREFIXES

Path = tuple[str, ...]
Scalar = int | float | str | bool | date | datetime | None
Value = Scalar | tuple[Scalar, ...]

_VALID = ", ".join(FIELDS) + " or a key under " + ", ".join(p + "." for p in PREFIXES)


class _Frozen:
    """A value of named fields, compared, hashed, matched (case Compare(path, op, value)) and shown
    as a frozen dataclass's: without importing dataclasses, which with inspect took 10 ms of each
    `git exp ls --where`, and a query is parsed in every one."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _set(self, *values: object) -> None:
        for name, value in zip(self.__match_args__, values, strict=True):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__match_args__)})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}: it is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}: it is frozen")


class Compare(_Frozen):
    __slots__ = __match_args__ = ("path", "op", "value")
    path: Path
    op: str  # one of = != < <= > >=
    value: Value  # a tuple only for = and != against a [list]

    def __init__(self, path: Path, op: str, value: Value) -> None:
        self._set(path, op, value)


class In(_Frozen):
    __slots__ = __match_args__ = ("path", "values", "negated")
    path: Path
    values: tuple[Scalar, ...]
    negated: bool

    def __init__(self, path: Path, values: tuple[Scalar, ...], negated: bool = False) -> None:
        self._set(path, values, negated)


class Match(_Frozen):
    __slots__ = __match_args__ = ("path", "kind", "pattern", "negated")
    path: Path
    kind: str  # "like" or "glob"
    pattern: str
    negated: bool

    def __init__(self, path: Path, kind: str, pattern: str, negated: bool = False) -> None:
        self._set(path, kind, pattern, negated)


class IsNull(_Frozen):
    __slots__ = __match_args__ = ("path", "negated")
    path: Path
    negated: bool

    def __init__(self, path: Path, negated: bool = False) -> None:
        self._set(path, negated)


class Not(_Frozen):
    __slots__ = __match_args__ = ("operand",)
    operand: Node

    def __init__(self, operand: Node) -> None:
        self._set(operand)


class And(_Frozen):
    __slots__ = __match_args__ = ("operands",)
    operands: tuple[Node, ...]

    def __init__(self, operands: tuple[Node, ...]) -> None:
        self._set(operands)


class Or(_Frozen):
    __slots__ = __match_args__ = ("operands",)
    operands: tuple[Node, ...]

    def __init__(self, operands: tuple[Node, ...]) -> None:
        self._set(operands)


Node = Compare | In | Match | IsNull | Not | And | Or


class SortKey(_Frozen):
    __slots__ = __match_args__ = ("path", "descending")
    path: Path
    descending: bool

    def __init__(self, path: Path, descending: bool = False) -> None:
        self._set(path, descending)

    def __str__(self) -> str:
        return ("-" if self.descending else "") + unparse_path(self.path)


_IDENT = IDENT
_WORD = re.compile(r"[A-Za-z0-9_./-]+")
_TOKEN = re.compile(r"[A-Za-z0-9_./-]+|\S")
_SPACE = re.compile(r"\s*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)  # a number the parser reads as an int
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
                   re.ASCII)
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-")
_OPERATORS = {"==": "=", "!=": "!=", "<>": "!=", "<=": "<=", ">=": ">=", "=": "=", "<": "<", ">": ">"}
_RESERVED = frozenset({"and", "or", "not", "in", "like", "glob", "is"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_MAX_DEPTH = 60


def from_iso(text: str) -> datetime:
    """datetime.fromisoformat, also taking Z, +HHMM and any number of fraction digits on Python 3.10."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    text = re.sub(r"[Zz]$", "+00:00", text.strip())
    text = re.sub(r"(?<=[T ]\d\d:\d\d:\d\d)(\.\d+)", lambda m: (m.group(1) + "00000")[:7], text)
    return datetime.fromisoformat(re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text))


def _error(text: str, pos: int, message: str, what: str) -> QueryError:
    shown = re.sub(r"\s", " ", text)
    err = QueryError(f"invalid {what} at column {pos + 1}: {message}\n  {shown}\n  {' ' * pos}^")
    err.column = pos + 1  # type: ignore[attr-defined]
    err.expression = text  # type: ignore[attr-defined]
    return err


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what, self.pos, self.depth = text, what, 0, 0

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise _error(self.text, self.pos if pos is None else pos, message, self.what)

    def ws(self) -> str:
        """Skip whitespace; return the next character ("" at the end)."""
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        return self.text[self.pos : self.pos + 1]

    def found(self) -> str:
        self.ws()
        m = _TOKEN.match(self.text, self.pos)
        return f"'{m.group()}'" if m else "end of input"

    def keyword(self, *words: str) -> str | None:
        self.ws()
        m = _IDENT.match(self.text, self.pos)
        if m and m.group().lower() in words:
            self.pos = m.end()
            return m.group().lower()
        return None

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(f"expression nested more than {_MAX_DEPTH} levels deep")

    def or_(self) -> Node:
        operands = [self.and_()]
        while self.keyword("or"):
            operands.append(self.and_())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_(self) -> Node:
        operands = [self.not_()]
        while self.keyword("and"):
            operands.append(self.not_())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_(self) -> Node:
        if self.keyword("not"):
            self.nest()
            node: Node = Not(self.not_())
        elif self.ws() == "(":
            self.nest()
            opened = self.pos
            self.pos += 1
            node = self.or_()
            if self.ws() != ")":
                self.fail(f"expected ')' to close the '(' at column {opened + 1}, found {self.found()}")
            self.pos += 1
        else:
            return self.comparison()
        self.depth -= 1
        return node

    def expect(self, char: str, what: str) -> None:
        if self.ws() != char:
            self.fail(f"expected {what}, found {self.found()}")
        self.pos += 1

    def items(self, close: str, first: str, text: bool = False) -> list[Scalar]:
        values: list[Scalar] = [] if close == "]" and self.ws() == "]" else [self.value(first, text)]
        while self.ws() == ",":
            self.pos += 1
            values.append(self.value(",", text))
        self.expect(close, f"',' or '{close}' to end the list")
        return values

    def comparison(self) -> Node:
        self.ws()
        start = self.pos
        path = self.field()
        name = self.text[start : self.pos]
        # A commit id is text, also one of digits alone (0123456) or shaped like a number (12e4567),
        # which as a number would lose its leading zeros or its exponent.
        text = path == ("commit",)
        self.ws()
        for symbol, op in _OPERATORS.items():
            if self.text.startswith(symbol, self.pos):
                self.pos += len(symbol)
                if op in ("=", "!=") and self.ws() == "[":
                    self.pos += 1
                    return Compare(path, op, tuple(self.items("]", "[", text)))
                return Compare(path, op, self.value(symbol, text))
        kw = self.keyword("not", "in", "like", "glob", "is")
        negated = kw == "not"
        if negated and (kw := self.keyword("in", "like", "glob")) is None:
            self.fail(f"expected 'in', 'like' or 'glob' after 'not', found {self.found()}")
        if kw == "in":
            self.expect("(", "'(' after 'in'")
            return In(path, tuple(self.items(")", "(", text)), negated)
        if kw in ("like", "glob"):
            if self.ws() not in ("'", '"'):
                self.fail(f"expected a quoted pattern after '{kw}', found {self.found()}")
            return Match(path, kw, self.string(), negated)
        if kw == "is":
            negated = self.keyword("not") is not None
            if not self.keyword("null"):
                self.fail(f"expected 'null' after 'is{' not' * negated}', found {self.found()}")
            return IsNull(path, negated)
        self.fail(f"expected an operator (=, !=, <, <=, >, >=, in, not in, like, glob, is null) "
                  f"after '{name}', found {self.found()}")

    def field(self) -> Path:
        self.ws()
        start, segments = self.pos, [self.segment()]
        while self.text.startswith(".", self.pos):
            self.pos += 1
            segments.append(self.segment())
        head = segments[0]
        if head in FIELDS and len(segments) > 1:
            self.fail(f"field '{head}' has no sub-keys", start)
        if head in PREFIXES and len(segments) == 1:
            self.fail(f"expected a key after '{head}.', e.g. {head}.name", self.pos)
        if head not in FIELDS and head not in PREFIXES:
            import difflib  # (for a mistyped field alone)

            close = difflib.get_close_matches(head.lower(), FIELDS + PREFIXES, 1)
            hint = f"'{close[0]}'" if close else f"'metrics.{head}' or 'params.{head}'"
            self.fail(f"unknown field '{self.text[start : self.pos]}' (did you mean {hint}?); "
                      f"valid fields are {_VALID}", start)
        return tuple(segments)

    def segment(self) -> str:
        start = self.pos
        if not self.text.startswith("`", start):
            m = _IDENT.match(self.text, start)
            if not m:
                self.fail(f"expected a field name, found {self.found()}")
            self.pos = m.end()
            return m.group()
        pieces, i = [], start + 1
        while (j := self.text.find("`", i)) >= 0 and self.text.startswith("``", j):
            pieces.append(self.text[i:j] + "`")
            i = j + 2
        if j < 0:
            self.fail("unterminated backtick-quoted field name", start)
        pieces.append(self.text[i:j])
        self.pos = j + 1
        if not (segment := "".join(pieces)):
            self.fail("empty field name", start)
        return segment

    def string(self) -> str:
        quote, start, out = self.text[self.pos], self.pos, []
        i = start + 1
        while i < len(self.text) and self.text[i] != quote:
            if self.text[i] == "\\" and i + 1 < len(self.text):
                out.append(_ESCAPES.get(self.text[i + 1], self.text[i : i + 2]))
                i += 2
            else:
                out.append(self.text[i])
                i += 1
        if i >= len(self.text):
            self.fail(f"unterminated string starting with {quote}", start)
        self.pos = i + 1
        return "".join(out)

    def value(self, after: str, text: bool = False) -> Scalar:
        """The value after *after*; with *text*, a number or date as written (a commit id)."""
        c, start = self.ws(), self.pos
        if c in ("'", '"'):
            return self.string()
        for rx, what in ((_DATE, "date"), (_NUMBER, "number")):
            m = rx.match(self.text, start)
            if m and self.text[m.end() : m.end() + 1] not in _WORD_CHARS:
                self.pos, token = m.end(), m.group()
                if text:
                    return token
                try:
                    if rx is _DATE:
                        return from_iso(token) if "T" in token else date.fromisoformat(token)
                    return int(token) if INTEGER.fullmatch(token) else float(token)
                except ValueError:
                    self.fail(f"invalid {what} '{token}'", start)
        m = _WORD.match(self.text, start)
        if not m or m.group().lower() in _RESERVED:
            self.fail(f"expected a value after '{after}', found {self.found()}")
        self.pos = m.end()
        return {"true": True, "false": False, "null": None}.get(m.group().lower(), m.group())


def parse(text: str) -> Node:
    """Parse a --where expression into an AST; raise QueryError (with .column, .expression)."""
    parser = _Parser(text, "--where expression")
    node = parser.or_()
    if parser.ws() == ")":
        parser.fail("unmatched ')'")
    if parser.ws():
        parser.fail(f"expected 'and', 'or' or end of input, found {parser.found()}")
    return node


def unparse_path(path: Path) -> str:
    """A field path as text that parses back to it: params.lr, metrics.`a,b`."""
    return ".".join(s if _IDENT.fullmatch(s) else "`" + s.replace("`", "``") + "`" for s in path)


def unparse_value(value: Value) -> str:
    """A value as text that parses back to it (but with commit, which reads numbers and dates as text)."""
    if isinstance(value, tuple):
        return "[" + ", ".join(unparse_value(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return "'" + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "'"


def unparse(node: Node) -> str:
    """The canonical text of an AST; parse(unparse(node)) == node for every parsed node."""
    match node:
        case Or(operands) | And(operands):
            word, nested = (" or ", Or) if isinstance(node, Or) else (" and ", Or | And)
            return word.join(f"({unparse(o)})" if isinstance(o, nested) else unparse(o) for o in operands)
        case Not(operand):
            return "not " + (f"({unparse(operand)})" if isinstance(operand, Or | And) else unparse(operand))
        case Compare(path, op, value):
            return f"{unparse_path(path)} {op} {unparse_value(value)}"
        case In(path, values, negated):
            items = ", ".join(unparse_value(v) for v in values)
            return f"{unparse_path(path)} {'not ' * negated}in ({items})"
        case Match(path, kind, pattern, negated):
            return f"{unparse_path(path)} {'not ' * negated}{kind} {unparse_value(pattern)}"
        case IsNull(path, negated):
            return f"{unparse_path(path)} is {'not ' * negated}null"
    raise TypeError(f"not a query node: {node!r}")


def field_paths(node: Node) -> set[Path]:
    """Every field path an expression reads, e.g. {("metrics", "acc"), ("status",)}."""
    if isinstance(node, And | Or):
        return set().union(*(field_paths(o) for o in node.operands))
    if isinstance(node, Not):
        return field_paths(node.operand)
    return {node.path}


def parse_sort(keys: str | Sequence[str] | None) -> list[SortKey]:
    """"-metrics.acc,duration", ["-metrics.acc", "duration"] or "metrics.acc DESC" to SortKeys."""
    items = [] if keys is None else [keys] if isinstance(keys, str) else list(keys)
    result: list[SortKey] = []
    for text in items:
        parser = _Parser(text, "--sort key")
        while parser.ws():
            sign = parser.ws() if parser.ws() in ("-", "+") else ""
            parser.pos += len(sign)
            path = parser.field()
            direction = parser.keyword("asc", "desc")
            if sign and direction:
                parser.fail(f"use either a '{sign}' prefix or {direction.upper()}, not both")
            result.append(SortKey(path, sign == "-" or direction == "desc"))
            if parser.ws() == ",":
                parser.pos += 1
                if not parser.ws():
                    parser.fail("expected a field name after ',', found end of input")
            elif parser.ws():
                parser.fail(f"expected ',', ASC, DESC or end of input, found {parser.found()}")
    return result
