"""Finding runs: the fields a --where expression or sort key names, looked up on a RunRecord.

    search_runs(where="params.lr < 0.1 and metrics.val/acc.max > 0.9", order_by="-metrics.acc")

The expression language itself (parsing, comparison semantics, sorting) is gitexp.store.query; this
module only says what each field path means for a run, and reads the costly parts (env.yaml,
inputs.yaml) only for the runs and fields that need them.

It is longer than gitexp's usual 400 lines because the warning about fields no run has (the
end of the module) must look fields up exactly as the search does, through the same listing-row
shortcuts, or it would warn of fields the search finds; the two are kept side by side.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from itertools import compress
from typing import TYPE_CHECKING, Any

from gitexp.errors import CorruptRunError, GitexpError, QueryError
from gitexp.store.fields import MISSING, PREFIXES, plain_path
from gitexp.store.isotime import parse_iso
from gitexp.store.runcache import Row, row_extremes, row_flat_params, row_lasts
from gitexp.store.runs import RunRecord, get_runs, listing_rows, load_runs

if TYPE_CHECKING:
    from gitexp.store.query import Node, Path

# gitexp.store.query (the parser) and gitexp.store.evaluation are imported where an expression or sort
# key is parsed: listing runs with plain column names needs neither.

STATS = ("last", "min", "max", "count", "step")
_PREFIX_LENGTH = 4  # the shortest commit prefix matched as a prefix (git's own minimum)


def dig(node: Any, path: Sequence[str]) -> object:
    """node[path...] through nested mappings, the longest dotted key first at each level (params
    {"lr.max": 1} and {"lr": {"max": 1}} both answer ("lr", "max")); else MISSING.

    evaluation.mapping_lookup's walk, without making two closures per call (a listing makes 100,000).
    """
    if not path:
        return node
    if type(node) is not dict and not isinstance(node, Mapping):
        return MISSING
    if len(path) == 1:
        return node.get(path[0], MISSING)
    for n in range(len(path), 0, -1):
        key = ".".join(path[:n])
        if key in node and (found := dig(node[key], path[n:])) is not MISSING:
            return found
    return MISSING


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
    from gitexp.store import codec as fmt  # and yaml: only for the queries that read inputs

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
        if head == "params" or head == "metrics":
            row = record.listing_row
            if row is not None and (value := from_row(row, head, rest)) is not UNKNOWN:
                return value
            return dig(record.params, rest) if head == "params" else metric_value(record.metrics, rest)
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


UNKNOWN: Any = object()  # what from_row answers when only the run's params or metrics can tell


def from_row(row: Row, head: str, rest: Path) -> object:
    """params.* or metrics.* of a run from its listing row (a runcache.Row), as dig and
    metric_value would find it in the run's params and metrics: the value, MISSING, or UNKNOWN."""
    if head == "params":
        flat = row_flat_params(row)
        if flat is None:
            return UNKNOWN
        if any("." in part for part in rest):
            return MISSING  # no key of these params has a dot
        key = ".".join(rest)
        if key in flat:
            return flat[key]
        prefix = key + "."  # a mapping (not a leaf) of the params has this path
        return UNKNOWN if any(k.startswith(prefix) for k in flat) else MISSING
    lasts = row_lasts(row)
    if lasts is None:
        return UNKNOWN
    key = ".".join(rest)
    if key in lasts:
        return lasts[key]
    if key.startswith("system/"):
        return UNKNOWN
    if len(rest) > 1 and rest[-1] in STATS:
        # metric_value's second choice: a summary of the metric named by the parts before the stat.
        base = ".".join(rest[:-1])
        if base not in lasts:
            return MISSING  # (base is not a system/ metric: key, which it starts, is not)
        if rest[-1] == "last":
            return lasts[base]
        extremes = row_extremes(row)
        if rest[-1] in ("min", "max") and extremes is not None:
            return extremes[base][rest[-1] == "max"]
        return UNKNOWN  # count or step: only the run's summary holds them
    return MISSING


def field_values(records: Sequence[RunRecord], path: Path, missing: object = MISSING,
                 known: Sequence[dict[str, Any] | None] | None = None) -> list[object]:
    """[field_value(r, path) for r in records], with *missing* for the runs that lack the field.

    A param or metric found in a run's listing row is read inline, without a call per run (a
    listing of 10,000 runs reads 100,000 values). *known*: the rows' flattened params (for a param)
    or last values (for a metric) of *records*, when the caller has them already.
    """
    part = _row_part(path)
    if part is None:
        return [_or(RunFields(r)(path), missing) for r in records]
    if known is None:
        known = [None if row is None else part(row) for row in listing_rows(records)]
    key = ".".join(path[1:])
    return [found[key] if found is not None and key in found else _or(RunFields(record)(path), missing)
            for found, record in zip(known, records, strict=True)]


def _or(value: object, missing: object) -> object:
    return missing if value is MISSING else value


def column_path(column: str) -> Path:
    """A table column or plot field ("params.model.layers", "metrics.val/acc.max", "start") as a path.

    Parsed with the sort-key grammar so columns and --where use the same names (backticks included).
    """
    path = plain_path(column)
    if path is not None:
        return path
    from gitexp.store import query

    keys = query.parse_sort(column)
    if len(keys) != 1 or keys[0].descending or column.strip().startswith("+"):
        raise GitexpError(f"invalid column {column!r}: expected one field such as params.lr or metrics.acc")
    return keys[0].path


def _commit_prefixes(node: Node) -> Node:
    """Rewrite `commit = abc1234` into a prefix match, so a short commit id finds its runs."""
    from gitexp.store import query

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
    from gitexp.store import query

    escaped = "".join("\\" + c if c in "%_\\" else c for c in prefix.lower())
    return query.Match(("commit",), "like", escaped + "%", negated)


def compile_filter(where: str | Node | None) -> Callable[[RunRecord], bool]:
    """A predicate over runs for a --where expression (None or blank: every run)."""
    if where is None or (isinstance(where, str) and not where.strip()):
        return lambda record: True
    from gitexp.store import evaluation, query

    node = query.parse(where) if isinstance(where, str) else where
    test = evaluation.compile_where(_commit_prefixes(node))
    return lambda record: test(RunFields(record))


def compile_matcher(where: str | Node | None) -> Callable[[Sequence[RunRecord]], list[RunRecord]]:
    """filter_runs for one expression, parsed now: the runs of a list that match it, in order.

    It evaluates the expression a field at a time over all the runs (evaluation.compile_columns), which
    reads the params and metrics of 10,000 runs from their listing rows without a call per run.
    """
    if where is None or (isinstance(where, str) and not where.strip()):
        return list
    from gitexp.store import evaluation, query

    node = query.parse(where) if isinstance(where, str) else where
    test = evaluation.compile_columns(_commit_prefixes(node))

    def matching(records: Sequence[RunRecord]) -> list[RunRecord]:
        rows = listing_rows(records)
        lookups: list[RunFields | None] = [None] * len(records)  # one per run: it keeps inputs.yaml

        def lookup(i: int) -> RunFields:
            found = lookups[i]
            if found is None:
                found = lookups[i] = RunFields(records[i])
            return found

        def fetch(items: Sequence[int], path: Path) -> list[object]:
            part = _row_part(path)
            if part is None:
                return [lookup(i)(path) for i in items]
            key = ".".join(path[1:])
            return [found[key] if (row := rows[i]) is not None and (found := part(row)) is not None and key in found
                    else lookup(i)(path) for i in items]
        return [r for r, ok in zip(records, test(range(len(records)), fetch), strict=True) if ok]
    return matching


def row_key(path: Path) -> str | None:
    """The key under which a listing row (its flattened params or last values) holds a param or metric path."""
    return None if _row_part(path) is None else ".".join(path[1:])


def _row_part(path: Path) -> Callable[[Row], dict[str, Any] | None] | None:
    """What reads the part of a listing row that holds *path* under the same name, when it is a param
    or metric: the flattened params (but not for a quoted key with a dot, which names no key of such
    params), the last values."""
    head, rest = path[0], path[1:]
    if rest and head == "metrics":
        return row_lasts
    if rest and head == "params" and not any("." in part for part in rest):
        return row_flat_params
    return None


def filter_runs(records: Sequence[RunRecord], where: str | Node | None) -> list[RunRecord]:
    return compile_matcher(where)(records)


def sort_runs(records: Sequence[RunRecord], order_by: str | Sequence[str] | None) -> list[RunRecord]:
    """Stable sort by sort keys ("-metrics.acc,duration"); runs missing a key go last."""
    if not order_by:
        return list(records)
    from gitexp.store import evaluation, query

    keys = query.parse_sort(order_by)
    return evaluation.sort_records(records, keys, RunFields) if keys else list(records)


def _check_sort(order_by: str | Sequence[str] | None) -> None:
    """Parse *order_by* now, so that a typo fails before any run is read."""
    if order_by:
        from gitexp.store import query

        query.parse_sort(order_by)


def search_runs(where: str | None = None, order_by: str | Sequence[str] | None = None,
                experiment: str | None = None, repo: str | os.PathLike[str] | Any = None) -> list[RunRecord]:
    """The runs matching *where*, sorted by *order_by* (newest first among equal keys).

        gitexp.search_runs("params.lr < 0.1 and status = FINISHED", order_by=["-metrics.acc"])

    Raises QueryError, saying where and what was expected, for an expression that does not parse;
    warns of a field that *where* or *order_by* names and no run has (a typo, most likely).
    """
    node = _parsed(where)  # parse before reading any run: a typo fails fast
    _check_sort(order_by)
    return search_loaded(load_runs(repo, experiment), node, order_by, experiment)


def search_loaded(records: Sequence[RunRecord], where: str | Node | None, order_by: str | Sequence[str] | None,
                  experiment: str | None = None) -> list[RunRecord]:
    """search_runs over *records*, loaded already: every run of the repository, or of *experiment*."""
    node = _parsed(where)
    matching = compile_matcher(node)
    _check_sort(order_by)
    if node is not None:
        from gitexp.store.query import field_paths

        scope = f"no run of experiment {experiment!r}" if experiment else "no run"
        warn_absent(records, field_paths(node), "where", scope)
    return _sorted(matching(records), order_by)


def check_query(where: str | None, order_by: str | Sequence[str] | None) -> None:
    """Parse *where* and *order_by* now (QueryError says what is wrong): a typo fails before any run is read."""
    compile_matcher(_parsed(where))
    _check_sort(order_by)


def select_positions(count: int, where: str | None, order_by: str | Sequence[str] | None,
                     column: Callable[[Path], Sequence[object] | None]) -> list[int] | None:
    """search_runs over *count* runs given a field at a time: the positions of those matching
    *where*, in *order_by*'s order (equal keys in the runs' own order). column(path) gives a field's
    value for every run (MISSING for a run without it), or None where it cannot.

    None when a field cannot be given, or is one that no run has (a sort key: no matching run):
    search_runs, over the runs themselves, warns of it.
    """
    from gitexp.store import evaluation, query

    node = _parsed(where)
    node = None if node is None else _commit_prefixes(node)
    keys = query.parse_sort(order_by) if order_by else []
    columns: dict[Path, Sequence[object]] = {}
    for path in [*(query.field_paths(node) if node is not None else ()), *(key.path for key in keys)]:
        if path not in columns:
            found = column(path)
            if found is None or len(found) != count:
                return None
            columns[path] = found
    picked = list(range(count))
    if node is not None:
        if _absent_from(columns, query.field_paths(node), picked):
            return None
        every = picked

        def fetch(items: Sequence[int], path: Path) -> Sequence[object]:
            # (the first test sees every run: the column as it is, not a copy made an item at a time)
            return columns[path] if items is every else list(map(columns[path].__getitem__, items))
        answers = evaluation.compile_columns(node)(picked, fetch)
        picked = list(compress(picked, answers))
    if keys and picked:
        if _absent_from(columns, [key.path for key in keys], picked):
            return None
        picked = evaluation.sort_positions(picked, keys, columns.__getitem__)
    return picked


def _absent_from(columns: Mapping[Path, Sequence[object]], paths: Iterable[Path], positions: Sequence[int]) -> bool:
    """Whether a field of *paths* that warn_absent checks is MISSING at every one of *positions*."""
    return any(path[0] in PREFIXES and len(path) > 1 and all(columns[path][i] is MISSING for i in positions)
               for path in paths)


def _parsed(where: str | Node | None) -> Node | None:
    if where is None or (isinstance(where, str) and not where.strip()):
        return None
    from gitexp.store import query

    return query.parse(where) if isinstance(where, str) else where


def _sorted(records: Sequence[RunRecord], order_by: str | Sequence[str] | None) -> list[RunRecord]:
    """sort_runs, warning of the keys that none of *records* has."""
    if order_by and records:
        from gitexp.store.query import parse_sort

        warn_absent(records, [key.path for key in parse_sort(order_by)], "sort")
    return sort_runs(records, order_by)


_ROLES = {"where": "which --where reads", "sort": "so --sort cannot order by it",
          "columns": "so its column (--columns) is empty"}


def warn_absent(records: Sequence[RunRecord], paths: Iterable[Path], role: str, scope: str = "no listed run") -> None:
    """Warn of each field of *paths* (params, metrics, tags, env, inputs or meta) that none of *records*
    has, a typo most likely, naming the closest fields they have; *role*: "where", "sort" or "columns"
    (what the field was named for), *scope*: the subject of the message ("no run of experiment 'x'")."""
    if not records:
        return
    for path in dict.fromkeys(paths):
        if path[0] in PREFIXES and len(path) > 1 and not _anyone_has(records, path):
            from gitexp.warn import warn

            warn(f"gitexp: {scope} has {_shown(path)}, {_ROLES[role]}{_suggestions(records, path)}")


def _anyone_has(records: Sequence[RunRecord], path: Path) -> bool:
    part = _row_part(path)
    if part is not None:
        key = ".".join(path[1:])
        # The usual case, answered from the listing rows: the first run that has it.
        if any(key in found for found in map(part, filter(None, listing_rows(records))) if found is not None):
            return True
    return any(RunFields(record)(path) is not MISSING for record in records)


def _shown(path: Path) -> str:
    from gitexp.store.query import unparse_path

    return unparse_path(path)


def _suggestions(records: Sequence[RunRecord], path: Path) -> str:
    """"; did you mean X or Y?" naming the fields of *records* closest to *path*; else what they have."""
    import difflib

    head, rest = path[0], path[1:]
    wanted: list[tuple[str, Path]] = [(".".join(rest), ())]
    names = _field_names(records, head)
    close: list[Path] = []
    if head == "metrics" and len(rest) > 1:
        if rest[-1] in STATS:
            wanted.append((".".join(rest[:-1]), rest[-1:]))  # metrics.acuracy.max: the key is acuracy
        elif ".".join(rest[:-1]) in names:  # metrics.acc.mx: the statistic is mistyped
            close += [(head, *rest[:-1], stat) for stat in difflib.get_close_matches(rest[-1], STATS, 1, 0.5)]
    lowered = {name.lower(): name for name in names}
    for key, stat in wanted:
        # A key that is right under another head (params.acc for the metric acc) comes first.
        close += [_key_path(other, key, stat) for other in ("params", "metrics", "tags")
                  if other != head and key in _field_names(records, other)]
        matches = difflib.get_close_matches(key.lower(), list(lowered), 3, 0.6)
        # An abbreviation, or a name written out (accuracy for acc), is as likely as a typo.
        matches += [m for m in sorted(lowered) if min(len(m), len(key)) >= 3 and m != key.lower()
                    and (m.startswith(key.lower()) or key.lower().startswith(m))]
        close += [_key_path(head, lowered[m], stat) for m in matches]
    shown = list(dict.fromkeys(_shown(p) for p in close))[:3]
    if shown:
        return "; did you mean " + (f"{', '.join(shown[:-1])} or " if len(shown) > 1 else "") + f"{shown[-1]}?"
    if not names:
        return f"; they have no {head}"
    listed = sorted(names)
    more = f" ({len(listed)} in all)" if len(listed) > 8 else ""
    return f"; their {head}: " + ", ".join(listed[:8]) + more


def _key_path(head: str, key: str, stat: Path) -> Path:
    """The path of a dotted key under *head*: a part per dot where the key reads back so, else one part."""
    return (head, *key.split("."), *stat) if plain_path(f"{head}.{key}") else (head, key, *stat)


def _field_names(records: Sequence[RunRecord], head: str) -> set[str]:
    """The keys under *head* that some of *records* has, dotted as the fields name them."""
    from gitexp.store.fields import flatten

    if head in ("params", "metrics"):
        part = row_flat_params if head == "params" else row_lasts
        names: set[str] = set()
        for record, row in zip(records, listing_rows(records), strict=True):
            found = None if row is None else part(row)
            if found is None:
                found = flatten(record.params) if head == "params" else record.metrics
            names.update(found)
        return {str(name) for name in names}
    if head == "tags":
        return {str(key) for record in records for key in record.tags}
    read: Callable[[RunRecord], Any] = {"env": lambda r: r.env, "inputs": inputs_of, "meta": lambda r: r.meta}[head]
    return {str(key) for record in records if isinstance(data := read(record), dict) for key in flatten(data)}


def select_runs(runs: Sequence[str | RunRecord] = (), where: str | None = None,
                order_by: str | Sequence[str] | None = None, experiment: str | None = None,
                repo: str | os.PathLike[str] | Any = None) -> list[RunRecord]:
    """The runs a command works on: those named (ids, id prefixes or names, kept in the order given)
    narrowed by *where*; or, when none are named, every run matching *where*."""
    if not runs:
        return search_runs(where, order_by, experiment, repo)
    node = _parsed(where)
    matching = compile_matcher(node)
    _check_sort(order_by)
    texts = [run for run in runs if not isinstance(run, RunRecord)]
    # (Read alone where an id or a handle names them: loading every run to find two took 1.9 s at 100,000.)
    named = iter(get_runs(texts, repo, experiment) if texts else [])
    chosen: dict[str, RunRecord] = {}
    for run in runs:
        record = run if isinstance(run, RunRecord) else next(named)
        chosen.setdefault(record.id, record)
    if node is not None:
        from gitexp.store.query import field_paths

        warn_absent(list(chosen.values()), field_paths(node), "where", "none of the runs")
    return _sorted(matching(list(chosen.values())), order_by)
