"""Finding runs: the fields a --where expression or sort key names, looked up on a RunRecord.

    search_runs(where="params.lr < 0.1 and metrics.val/acc.max > 0.9", order_by="-metrics.acc")

The expression language itself (parsing, comparison semantics, sorting) is gitexp.query; this
module only says what each field path means for a run, and reads the costly parts (env.yaml,
inputs.yaml) only for the runs and fields that need them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from gitexp import format as fmt
from gitexp import query
from gitexp.errors import CorruptRunError, GitexpError, QueryError
from gitexp.query import MISSING, Node, Path
from gitexp.runs import RunRecord, load_runs, resolve
from gitexp.store import parse_iso

STATS = ("last", "min", "max", "count", "step")
_PREFIX_LENGTH = 4  # the shortest commit prefix matched as a prefix (git's own minimum)


def dig(node: Any, path: Sequence[str]) -> object:
    """node[path...] through nested mappings, the longest dotted key first at each level (params
    {"lr.max": 1} and {"lr": {"max": 1}} both answer ("lr", "max")); else MISSING."""
    return query.mapping_lookup(node)(tuple(path))


def metric_value(metrics: Mapping[str, Mapping[str, Any]], parts: Sequence[str]) -> object:
    """metrics.<key> is the last value, metrics.<key>.<stat> a summary; the key may contain dots
    and slashes, and the longest key that exists wins (a metric named "acc.max" beats acc's max)."""
    whole = ".".join(parts)
    if whole in metrics:
        return metrics[whole].get("last", MISSING)
    if len(parts) > 1 and parts[-1] in STATS:
        key = ".".join(parts[:-1])
        if key in metrics:
            return metrics[key].get(parts[-1], MISSING)
    return MISSING


def _datetime(iso: str | None) -> datetime | object:
    if not iso:
        return MISSING
    try:
        return datetime.fromtimestamp(parse_iso(iso), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return MISSING


def _env(record: RunRecord, parts: Sequence[str]) -> object:
    value = dig(record.env, parts)
    # env.python and env.packages.x read naturally as versions; python is a mapping with one.
    if isinstance(value, Mapping) and "version" in value:
        return value["version"]
    return value


def inputs_of(record: RunRecord) -> dict[str, Any]:
    """The run's inputs.yaml (dataset name -> sha256, size, source...), {} when it has none."""
    try:
        loaded = fmt.load_yaml(record.read(fmt.INPUTS), f"{fmt.INPUTS} of run {record.id}")
    except CorruptRunError as exc:  # one damaged run must not fail a query over all of them
        warnings.warn(f"gitexp: ignoring the inputs of run {record.id}: {exc}", RuntimeWarning, stacklevel=2)
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _meta_field(name: str) -> Callable[[RunRecord], object]:
    return lambda r: r.meta.get(name, MISSING)


_FIELDS: dict[str, Callable[[RunRecord], object]] = {
    "status": lambda r: r.status,
    "name": lambda r: r.name,
    "id": lambda r: r.id,
    "experiment": lambda r: r.experiment,
    "commit": lambda r: r.base_commit or MISSING,
    "start": lambda r: _datetime(r.start),
    "end": lambda r: _datetime(r.meta.get("end")),
    "duration": _meta_field("duration"),
}


class RunFields:
    """A query Lookup over one run: what compile_where's predicate and sort_records call.

    inputs.yaml is read on the first inputs.* field and kept; env.yaml is kept by the record.
    """

    __slots__ = ("_inputs", "record")

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self._inputs: dict[str, Any] | None = None

    def __call__(self, path: Path) -> object:
        record, head, rest = self.record, path[0], path[1:]
        if not rest:
            getter = _FIELDS.get(head)
            return MISSING if getter is None else getter(record)
        if head == "params":
            return dig(record.params, rest)
        if head == "metrics":
            return metric_value(record.metrics, rest)
        if head == "tags":
            return record.tags.get(".".join(rest), MISSING)
        if head == "env":
            return _env(record, rest)
        if head == "inputs":
            if self._inputs is None:
                self._inputs = inputs_of(record)
            return dig(self._inputs, rest)
        if head == "meta":
            return dig(record.meta, rest)
        return MISSING


def field_value(record: RunRecord, path: Path) -> object:
    """The value of a field path such as ("metrics", "val/acc", "max") for *record*, or MISSING."""
    return RunFields(record)(path)


def column_path(column: str) -> Path:
    """A table column or plot field ("params.model.layers", "metrics.val/acc.max", "start") as a path.

    Parsed with the sort-key grammar so columns and --where use the same names (backticks included).
    """
    keys = query.parse_sort(column)
    if len(keys) != 1 or keys[0].descending or column.strip().startswith("+"):
        raise GitexpError(f"invalid column {column!r}: expected one field such as params.lr or metrics.acc")
    return keys[0].path


def _commit_prefixes(node: Node) -> Node:
    """Rewrite `commit = abc1234` into a prefix match, so a short commit id finds its runs."""
    match node:
        case query.And(operands) | query.Or(operands):
            return type(node)(tuple(_commit_prefixes(o) for o in operands))
        case query.Not(operand):
            return query.Not(_commit_prefixes(operand))
        case query.Compare(("commit",), "=" | "!=", value) if _is_prefix(value):
            return _prefix_match(str(value), node.op == "!=")
        case query.In(("commit",), values, negated) if any(_is_prefix(v) for v in values):
            parts = tuple(_prefix_match(str(v), negated) if _is_prefix(v) else query.In(node.path, (v,), negated)
                          for v in values)
            return parts[0] if len(parts) == 1 else (query.And(parts) if negated else query.Or(parts))
    return node


def _is_prefix(value: object) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # 0123456 or 12e4567 were read as numbers, and their text is lost (leading zeros, exponent).
        raise QueryError(f"commit {value!r} was read as a number; quote commit ids made of digits, "
                         f"e.g. commit = '0123456'")
    return isinstance(value, str) and _PREFIX_LENGTH <= len(value) < 40


def _prefix_match(prefix: str, negated: bool) -> Node:
    escaped = "".join("\\" + c if c in "%_\\" else c for c in prefix.lower())
    return query.Match(("commit",), "like", escaped + "%", negated)


def compile_filter(where: str | Node | None) -> Callable[[RunRecord], bool]:
    """A predicate over runs for a --where expression (None or blank: every run)."""
    if where is None or (isinstance(where, str) and not where.strip()):
        return lambda record: True
    node = query.parse(where) if isinstance(where, str) else where
    test = query.compile_where(_commit_prefixes(node))
    return lambda record: test(RunFields(record))


def filter_runs(records: Sequence[RunRecord], where: str | Node | None) -> list[RunRecord]:
    test = compile_filter(where)
    return [r for r in records if test(r)]


def sort_runs(records: Sequence[RunRecord], order_by: str | Sequence[str] | None) -> list[RunRecord]:
    """Stable sort by sort keys ("-metrics.acc,duration"); runs missing a key go last."""
    keys = query.parse_sort(order_by)
    return query.sort_records(records, keys, RunFields) if keys else list(records)


def search_runs(where: str | None = None, order_by: str | Sequence[str] | None = None,
                experiment: str | None = None, repo: str | os.PathLike[str] | Any = None) -> list[RunRecord]:
    """The runs matching *where*, sorted by *order_by* (newest first among equal keys).

        gitexp.search_runs("params.lr < 0.1 and status = FINISHED", order_by=["-metrics.acc"])

    Raises QueryError, saying where and what was expected, for an expression that does not parse.
    """
    test = compile_filter(where)  # parse before reading any run: a typo fails fast
    query.parse_sort(order_by)
    return sort_runs([r for r in load_runs(repo, experiment) if test(r)], order_by)


def select_runs(runs: Sequence[str | RunRecord] = (), where: str | None = None,
                order_by: str | Sequence[str] | None = None, experiment: str | None = None,
                repo: str | os.PathLike[str] | Any = None) -> list[RunRecord]:
    """The runs a command works on: those named (ids, id prefixes or names, kept in the order given)
    narrowed by *where*; or, when none are named, every run matching *where*."""
    if not runs:
        return search_runs(where, order_by, experiment, repo)
    test = compile_filter(where)
    query.parse_sort(order_by)
    records: list[RunRecord] | None = None
    chosen: dict[str, RunRecord] = {}
    for run in runs:
        if not isinstance(run, RunRecord):
            if records is None:
                records = load_runs(repo, experiment)
            run = resolve(records, run)
        chosen.setdefault(run.id, run)
    return sort_runs([r for r in chosen.values() if test(r)], order_by)
