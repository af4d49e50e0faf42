"""MLflow search syntax translated to gitexp's query language (gitexp/store/query.py): nodes, never eval.

    metrics.acc > 0.9 and params.lr = '0.1' and tags.`my tag` LIKE 'a%' and attributes.status = 'FINISHED'

becomes the query AST of `metrics.acc > 0.9 and params.lr = '0.1' and tags.`my tag` like 'a%'
and status in ('FINISHED')`, which gitexp.store.search evaluates. `order_by` items such as
"metrics.acc DESC" become gitexp sort keys ("-metrics.`acc`").
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from gitexp.mlflow.entities import NAME_TAG, NOTE_TAG, PARENT_TAG, USER_TAG
from gitexp.mlflow.exceptions import MlflowException
from gitexp.store import query

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.]))
    | (?P<op><=|>=|!=|<>|==|=|<|>|\(|\)|,)
    | (?P<key>(?:[A-Za-z_][\w]*|`(?:[^`]|``)*`)(?:\.(?:[\w/:-]+|`(?:[^`]|``)*`|"[^"]*"))*)
    )""", re.VERBOSE)
_PREFIXES = {"metric": "metrics", "metrics": "metrics", "param": "params", "params": "params",
             "parameter": "params", "parameters": "params", "tag": "tags", "tags": "tags",
             "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes"}
_ATTRIBUTES = {"status": ("status",), "run_name": ("name",), "run_id": ("id",), "user_id": ("meta", "user"),
               "start_time": ("start",), "end_time": ("end",), "created": ("start",), "Created": ("start",),
               "experiment_id": ("experiment",), "run name": ("name",), "Run name": ("name",),
               "Run Name": ("name",)}
_TIMES = {("start",), ("end",)}
# MLflow system tags that gitexp keeps in meta.yaml rather than among the tags.
_SYSTEM_TAGS = {NAME_TAG: ("name",), PARENT_TAG: ("meta", "parent_run"), NOTE_TAG: ("meta", "description"),
                USER_TAG: ("meta", "user"), "mlflow.source.git.commit": ("commit",)}
_CMP = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _fail(text: str, message: str) -> MlflowException:
    return MlflowException(f"invalid MLflow filter {text!r}: {message}. Example of the syntax: "
                           "\"metrics.acc > 0.9 and params.lr = '0.1' and attributes.status = 'FINISHED'\"")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _fail(text, f"cannot read {text[pos:].strip()[:20]!r}")
        kind = m.lastgroup or ""
        word = m.group(kind)
        if kind == "key" and word.upper() in ("AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL"):
            kind, word = "kw", word.upper()
        out.append((kind, word))
        pos = m.end()
    return out


def _unquote(part: str) -> str:
    if part.startswith("`"):
        return part[1:-1].replace("``", "`")
    if part.startswith('"'):
        return part[1:-1]
    return part


def _key(text: str, word: str) -> tuple[str, tuple[str, ...]]:
    """('metrics'|'params'|'tags'|'attributes', gitexp field path) of an MLflow key such as params.`a.b`."""
    head, sep, rest = word.partition(".")
    prefix = _PREFIXES.get(_unquote(head))
    if prefix is None or not sep:
        raise _fail(text, f"{word!r} is not a key: use metrics.KEY, params.KEY, tags.KEY or attributes.NAME")
    quoted = rest[:1] in ("`", '"') and rest[-1:] == rest[:1]
    name = _unquote(rest) if quoted else rest
    if prefix == "attributes":
        if name not in _ATTRIBUTES:
            raise _fail(text, f"unknown attribute {name!r}; gitexp.mlflow searches {', '.join(sorted(_ATTRIBUTES))}")
        return prefix, _ATTRIBUTES[name]
    if prefix == "tags" and name in _SYSTEM_TAGS:
        return prefix, _SYSTEM_TAGS[name]
    return prefix, (prefix, name)


def _value(text: str, token: tuple[str, str], path: tuple[str, ...]) -> query.Scalar:
    kind, word = token
    if kind == "str":
        value: query.Scalar = re.sub(r"\\(.)", r"\1", word[1:-1])
    elif kind == "num":
        value = float(word) if re.search(r"[.eE]", word) else int(word)
    else:
        raise _fail(text, f"expected a value, found {word!r}")
    if path in _TIMES and isinstance(value, int | float):  # MLflow times are milliseconds
        return datetime.fromtimestamp(value / 1000, timezone.utc)
    return value


def _ilike_glob(pattern: str) -> str:
    """SQL ILIKE as a case-insensitive glob: '%' -> '*', '_' -> '?', each letter -> [aA]."""
    out = []
    for c in pattern:
        if c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        elif c in "*?[]":
            out.append(f"[{c}]")
        elif c.lower() != c.upper():
            out.append(f"[{c.lower()}{c.upper()}]")
        else:
            out.append(c)
    return "".join(out)


def _status(node: query.Node) -> query.Node:
    """FAILED in MLflow's terms also covers gitexp's CRASHED (a process that died)."""
    if isinstance(node, query.Compare) and node.path == ("status",) and node.value == "FAILED" \
            and node.op in ("=", "!="):
        return query.In(node.path, ("FAILED", "CRASHED"), node.op == "!=")
    if isinstance(node, query.In) and node.path == ("status",) and "FAILED" in node.values:
        return query.In(node.path, (*node.values, "CRASHED"), node.negated)
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.i = text, _tokens(text), 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.i += 1
        return token

    def expression(self) -> query.Node:
        parts = [self.conjunction()]
        while self.peek() == ("kw", "OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else query.Or(tuple(parts))

    def conjunction(self) -> query.Node:
        parts = [self.clause()]
        while self.peek() == ("kw", "AND"):
            self.take()
            parts.append(self.clause())
        return parts[0] if len(parts) == 1 else query.And(tuple(parts))

    def clause(self) -> query.Node:
        if self.peek() == ("op", "("):
            self.take()
            node = self.expression()
            if self.take() != ("op", ")"):
                raise _fail(self.text, "a '(' is not closed")
            return node
        kind, word = self.take()
        if kind != "key":
            raise _fail(self.text, f"expected a key such as metrics.acc, found {word or 'the end'!r}")
        _, path = _key(self.text, word)
        kind, op = self.take()
        if kind == "op" and op in _CMP:
            return _status(query.Compare(path, _CMP[op], _value(self.text, self.take(), path)))
        negated = op == "NOT"
        if negated:
            kind, op = self.take()
        if op in ("LIKE", "ILIKE"):
            pattern = _value(self.text, self.take(), path)
            if not isinstance(pattern, str):
                raise _fail(self.text, f"{op} needs a quoted pattern")
            if op == "LIKE":
                return query.Match(path, "like", pattern, negated)
            return query.Match(path, "glob", _ilike_glob(pattern), negated)
        if op == "IN":
            if self.take() != ("op", "("):
                raise _fail(self.text, "IN needs a parenthesised list, e.g. ('a', 'b')")
            values = [_value(self.text, self.take(), path)]
            while self.peek() == ("op", ","):
                self.take()
                values.append(_value(self.text, self.take(), path))
            if self.take() != ("op", ")"):
                raise _fail(self.text, "the IN list is not closed with ')'")
            return _status(query.In(path, tuple(values), negated))
        if op == "IS" and not negated:
            not_null = self.peek() == ("kw", "NOT")
            if not_null:
                self.take()
            if self.take() != ("kw", "NULL"):
                raise _fail(self.text, "expected NULL after IS")
            return query.IsNull(path, not_null)
        raise _fail(self.text, f"expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL) after "
                               f"{word!r}, found {op or 'the end'!r}")


def translate(filter_string: str | None) -> query.Node | None:
    """The gitexp query AST for an MLflow filter string (None for an empty filter)."""
    if not filter_string or not filter_string.strip():
        return None
    parser = _Parser(filter_string)
    node = parser.expression()
    if parser.peek()[0] != "end":
        raise _fail(filter_string, f"unexpected {parser.peek()[1]!r}; join clauses with AND")
    return node


def translate_order(order_by: list[str] | str | None) -> list[str]:
    """MLflow order_by items ("metrics.acc DESC", "attributes.start_time") as gitexp sort keys."""
    items = [order_by] if isinstance(order_by, str) else list(order_by or [])
    keys = []
    for item in items:
        words = item.strip().rsplit(None, 1)
        descending = len(words) == 2 and words[1].upper() == "DESC"
        key = words[0] if len(words) == 2 and words[1].upper() in ("ASC", "DESC") else item.strip()
        if "." not in key:
            key = f"attributes.{key}"
        _, path = _key(item, key)
        keys.append(("-" if descending else "") + ".".join(
            s if re.fullmatch(r"[A-Za-z0-9_/-]+", s) else "`" + s.replace("`", "``") + "`" for s in path))
    return keys
