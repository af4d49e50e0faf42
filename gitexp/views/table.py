"""Turning runs into rows and rows into text: table, csv, json and markdown."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, cast

from gitexp.errors import GitexpError
from gitexp.store.fields import flatten
from gitexp.store.names import handles
from gitexp.store.runcache import (
    row_base_commit,
    row_duration,
    row_flat_params,
    row_lasts,
    row_name,
    row_start,
    row_status,
)
from gitexp.store.runs import RunRecord, listing_rows, run_handles
from gitexp.text import has_unsafe, printable
from gitexp.views.plaintable import plain_table

FORMATS = ("table", "csv", "json", "md")
BASE_COLUMNS = ("id", "name", "status", "start", "duration", "commit")


def short_ids(ids: Iterable[str]) -> dict[str, str]:
    """What listings show of each run id: its handle (names.handles), which no other of *ids* shares."""
    return handles(ids)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_local_minutes: dict[str, str] = {}


def local_time(iso: str | None) -> str:
    """An ISO time as local "YYYY-MM-DD HH:MM"; remembered by the UTC minute for gitexp's own times."""
    if not iso:
        return ""
    # Every instant of a UTC minute has the same local minute since time zones stopped having
    # offsets with seconds (1972), so 10,000 runs need one conversion per minute they started in.
    mine = len(iso) == 24 and iso[-1] == "Z" and iso[:4] >= "1973"
    if mine and (shown := _local_minutes.get(iso[:16])) is not None:
        return shown
    from gitexp.store.isotime import parse_iso

    local = time.localtime(parse_iso(iso))
    shown = time.strftime("%Y-%m-%d %H:%M", local)
    if mine and local.tm_gmtoff % 60 == 0:
        _local_minutes[iso[:16]] = shown
    return shown


def local_times(values: Sequence[Any]) -> list[str]:
    """[local_time(v) for v in values], with the remembered minutes looked up inline (the memo has
    only times of the shape local_time remembers)."""
    kinds = set(map(type, values))
    if kinds == {str} and set(map(len, values)) == {24} and all(map(str.endswith, values, repeat("Z"))):
        # gitexp's own times: converted once per UTC minute (local_time's memo), not looked up one by one
        minutes = list(map(itemgetter(slice(0, 16)), values))
        shown = {minute: local_time(iso) for minute, iso in dict(zip(minutes, values, strict=True)).items()}
        if all(minute in _local_minutes for minute in shown):  # (each minute exact: remembered)
            return list(map(shown.__getitem__, minutes))
    if kinds <= {str, type(None)}:
        return per_distinct(_local_times, values)
    return _local_times(values)


def _local_times(values: Iterable[Any]) -> list[str]:
    memo = _local_minutes
    return [shown if type(v) is str and len(v) == 24 and v[-1] == "Z" and (shown := memo.get(v[:16])) is not None
            else local_time(v) for v in values]


def per_distinct(show: Callable[[Sequence[Any]], list[str]], values: Sequence[Any]) -> list[str]:
    """show(values), where *show* maps each value to its text alone, showing each distinct value
    once where many repeat (a sweep's params, its runs' start minutes and short durations: 50,000
    rows in a few milliseconds). For values of one type (and None), that are not float zeros: of
    two equal values, 1 and 1.0, 0.0 and -0.0, one would be shown for both."""
    if len(values) > 4000 and len(set(sample := values[::len(values) // 1000])) == len(sample):
        return show(values)  # (1,000 values spread over the column all differ: a metric's, mostly distinct)
    distinct = dict.fromkeys(values)
    if len(distinct) * 4 > len(values) or (0 in distinct and float in set(map(type, distinct))):
        return show(values)
    shown = dict(zip(distinct, show(list(distinct)), strict=True))
    return list(map(shown.__getitem__, values))


def run_short_ids(records: Sequence[RunRecord]) -> dict[str, str]:
    """The handles of *records*, unique among all runs, not only these, so that `show` accepts them."""
    return run_handles(records)


def differing(values: Sequence[dict[str, Any]]) -> list[str]:
    """Keys whose values are not the same in every mapping (a missing key counts as a value)."""
    keys = sorted(set().union(*values))
    if len(values) <= 1:
        return keys
    return [k for k in keys if _varies(values, k)]


_MISSING = object()


def _comparable(value: Any) -> Any:
    # Scalars compare as themselves (type included: 1 and 1.0 and True differ); only nested
    # values pay for a canonical JSON form.
    if isinstance(value, (dict, list)):
        import json  # here: a listing of plain values never needs it

        return ("json", json.dumps(value, sort_keys=True, default=str))
    return (type(value).__name__, value if value == value else "nan")


def _varies(values: Sequence[dict[str, Any]], key: str) -> bool:
    """Whether *key* has two different values across *values*; stops at the first difference."""
    first = _comparable(values[0].get(key, _MISSING))
    return any(_comparable(v.get(key, _MISSING)) != first for v in values[1:])


def run_rows(records: Sequence[RunRecord], extra: Sequence[str] | None = None,
             all_columns: bool = False, only_changed: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows for `git exp ls`: the base columns plus the params and metrics that differ.

    *extra* columns are any --where field (params.KEY, metrics.KEY.max, env.python, inputs.X.sha256...)
    or a meta.yaml key; *only_changed* keeps, besides id and name, only the columns whose values differ.
    """
    columns, keys, values = _run_values(records, extra, all_columns, only_changed)
    return columns, [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]


def run_columns(records: Sequence[RunRecord], extra: Sequence[str] | None = None, all_columns: bool = False,
                only_changed: bool = False, full_ids: bool = False) -> tuple[list[str], list[list[Any]]]:
    """run_rows as columns: the names, and for each the values of the runs in order (for render_columns).
    *full_ids*: the id column holds full run ids, not handles (what a program reading csv wants)."""
    columns, keys, values = _run_values(records, extra, all_columns, only_changed, full_ids)
    if columns == keys:
        return columns, values
    by_key = dict(zip(keys, values, strict=True))
    return columns, [by_key[c] for c in columns]


def _run_values(records: Sequence[RunRecord], extra: Sequence[str] | None, all_columns: bool,
                only_changed: bool, full_ids: bool = False) -> tuple[list[str], list[str], list[list[Any]]]:
    """(columns shown, every column computed, the values of each computed column, runs in order)."""
    if full_ids:
        ids = [r.id for r in records]
    else:
        shorts = run_short_ids(records)
        ids = [shorts[r.id] for r in records]
    known, base = row_values(records)
    asked = extra is not None
    if extra is None:
        extra = _differing_columns(records, known, limit=differing_limit(all_columns, only_changed))
    extra = [c for c in dict.fromkeys(extra) if c not in BASE_COLUMNS]
    # Column by column, each column's lookup worked out once.
    fetched = _fetch_known(extra, known)
    values = [ids, *base,
              *(fetched[column] if column in fetched else column_values(column, records, known) for column in extra)]
    keys = [*BASE_COLUMNS, *extra]
    if asked:
        _warn_empty(records, extra, values[len(BASE_COLUMNS):])
    columns = keys
    if only_changed and len(records) > 1:
        columns = [c for c, column in zip(keys, values, strict=True) if c in ("id", "name") or column_varies(column)]
    return columns, keys, values


def row_values(records: Sequence[RunRecord]) -> tuple[dict[str, list[dict[str, Any] | None]], list[list[Any]]]:
    """What the listing reads of *records*: their rows' flattened params and last values, by "params"
    and "metrics" (None for a run without a row), and the values of the base columns but id."""
    rows = listing_rows(records)
    present = [row for row in rows if row is not None]
    known: dict[str, list[dict[str, Any] | None]]
    if len(present) == len(rows):  # the usual case, where each part of the rows is read by one map()
        known = {"params": list(map(row_flat_params, present)), "metrics": list(map(row_lasts, present))}
        # what RunRecord's properties answer, from the cache's rows
        base: list[list[Any]] = [list(map(part, present)) for part in (row_name, row_status, row_start, row_duration)]
        base.append([(commit or "")[:7] for commit in map(row_base_commit, present)])
    else:
        known = {"params": [None if row is None else row_flat_params(row) for row in rows],
                 "metrics": [None if row is None else row_lasts(row) for row in rows]}
        base = [[r.name for r in records], [r.status for r in records], [r.start for r in records],
                [r.duration for r in records], [(r.base_commit or "")[:7] for r in records]]
    return known, base


def compared_maps(records: Sequence[RunRecord],
                  known: Mapping[str, Sequence[dict[str, Any] | None]]) -> dict[str, list[dict[str, Any]]]:
    """The flattened params and last metric values of each of *records*, by "params" and "metrics",
    that tell which columns differ: *known*'s (row_values), else the run's own."""
    return {"params": [flatten(r.params) if flat is None else flat
                       for flat, r in zip(known["params"], records, strict=True)],
            "metrics": [{k: v.get("last") for k, v in r.metrics.items() if not k.startswith("system/")}
                        if last is None else last for last, r in zip(known["metrics"], records, strict=True)]}


def key_column(column: str, records: Sequence[RunRecord],
               known: Mapping[str, Sequence[dict[str, Any] | None]]) -> list[Any]:
    """The values run_columns shows in a params or metrics *column* of *records*; *known*: their
    rows' flattened params and last values, by "params" and "metrics"."""
    fetched = _fetch_known([column], known)
    return fetched[column] if column in fetched else column_values(column, records, known)


def differing_limit(all_columns: bool, only_changed: bool) -> int | None:
    """How many params (and as many metrics) that differ a listing shows as columns; None: all."""
    return None if all_columns or only_changed else 8


def _warn_empty(records: Sequence[RunRecord], columns: Sequence[str], values: Sequence[list[Any]]) -> None:
    """Warn of the fields among *columns* that no run of *records* has (their *values* are all None)."""
    from gitexp.store.search import column_path, warn_absent

    empty = [c for c, column in zip(columns, values, strict=True)
             if c not in META_COLUMNS and column.count(None) == len(column)]
    if empty:
        warn_absent(records, [column_path(c) for c in empty], "columns")


def _fetch_known(columns: Sequence[str],
                 known: Mapping[str, Sequence[dict[str, Any] | None]]) -> dict[str, list[Any]]:
    """The values of the params and metrics *columns* that every run's listing row has (*known*),
    fetched a run at a time with one itemgetter call, rather than a column at a time."""
    from gitexp.store.search import column_path, row_key

    if not known["params"]:
        return {}  # no runs
    wanted: dict[str, list[tuple[str, str]]] = {"params": [], "metrics": []}
    for column in columns:
        if column not in BASE_COLUMNS and column not in META_COLUMNS:
            try:
                path = column_path(column)
            except GitexpError:
                continue  # column_values says what is wrong with it
            if (key := row_key(path)) is not None:
                wanted[path[0]].append((column, key))
    fetched: dict[str, list[Any]] = {}
    for head, pairs in wanted.items():
        for group in ([pairs] if len(pairs) > 1 else []) + [[pair] for pair in pairs]:
            if any(column in fetched for column, _ in group):
                continue
            # A run without a row (None), or without one of the keys, fails the whole group.
            rows = cast("Sequence[dict[str, Any]]", known[head])
            try:
                found = list(map(itemgetter(*(key for _, key in group)), rows))
            except (KeyError, TypeError):
                continue
            fetched.update(zip([c for c, _ in group], map(list, zip(*found, strict=True)) if len(group) > 1
                               else [found], strict=True))
    return fetched


def _differing_columns(records: Sequence[RunRecord], known: Mapping[str, Sequence[dict[str, Any] | None]],
                       limit: int | None) -> list[str]:
    """The params and metrics columns whose values differ between *records*, the first *limit* of each;
    *known*: their rows' flattened params and last values (row_values)."""
    compared = compared_maps(records, known)
    pkeys, mkeys = differing(compared["params"]), differing(compared["metrics"])
    if limit is not None:
        pkeys, mkeys = pkeys[:limit], mkeys[:limit]
    return [f"params.{quoted_key(k)}" for k in pkeys] + [f"metrics.{quoted_key(k)}" for k in mkeys]


def column_varies(values: Sequence[Any]) -> bool:
    first = _comparable(values[0])
    return any(_comparable(v) != first for v in values[1:])


def quoted_key(key: str) -> str:
    """A param or metric key as a column name that column_getter reads back (backticks when needed)."""
    from gitexp.store.search import column_path

    for candidate in (key, "`" + key.replace("`", "``") + "`"):
        try:
            if column_path(f"metrics.{candidate}")[1:] in ((key,), tuple(key.split("."))):
                return candidate
        except GitexpError:
            continue
    return key


def split_columns(text: str) -> list[str]:
    """"params.lr,metrics.`a,b`" -> ["params.lr", "metrics.`a,b`"]: commas inside backticks stay."""
    columns: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == "`":
            quoted = not quoted
        if char == "," and not quoted:
            columns.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    columns.append("".join(current).strip())
    return [c for c in columns if c]


META_COLUMNS = ("experiment", "end", "user", "host", "pid", "command", "exit_code", "description")


def column_getter(column: str) -> Callable[[RunRecord], Any]:
    """What one `--columns` entry reads from a run; parsed once, so 10,000 rows stay cheap."""
    if column in BASE_COLUMNS or column in META_COLUMNS:
        special = {"id": lambda r: r.id, "experiment": lambda r: r.experiment,
                   "commit": lambda r: r.base_commit}
        return special.get(column, lambda r: r.meta.get(column))
    from gitexp.store.fields import MISSING
    from gitexp.store.search import RunFields

    path = _column_path(column)

    def get(record: RunRecord) -> Any:
        value = RunFields(record)(path)
        return None if value is MISSING else value
    return get


def column_values(column: str, records: Sequence[RunRecord],
                  known: Mapping[str, Sequence[dict[str, Any] | None]] | None = None) -> list[Any]:
    """[column_getter(column)(r) for r in records], without a call per run for the usual columns;
    *known*: the flattened params and last values of the records' listing rows, by "params", "metrics"."""
    if column in BASE_COLUMNS or column in META_COLUMNS:
        return list(map(column_getter(column), records))
    from gitexp.store.search import field_values

    path = _column_path(column)
    return field_values(records, path, missing=None, known=(known or {}).get(path[0]))


def _column_path(column: str) -> tuple[str, ...]:
    from gitexp.store.search import column_path

    try:
        return column_path(column)
    except GitexpError:
        raise GitexpError(
            f"unknown column {column!r}; use params.KEY, metrics.KEY (or metrics.KEY.min|max|last|count), "
            f"tags.KEY, env.KEY, inputs.NAME.sha256 or one of {', '.join(BASE_COLUMNS + META_COLUMNS)}"
        ) from None


def cell(value: Any, precision: int) -> str:
    """*value* as text; a view shows it through printable() (render_columns does) before a terminal does."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value) or precision >= 17:
            return repr(value)
        return f"{value:.{precision}g}"
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, default=str)
    return str(value)


def printable_column(column: list[str], keep: str = "") -> list[str]:
    """The cells of a column through printable(), when any needs it (one scan of the whole column)."""
    return [printable(c, keep) for c in column] if has_unsafe("".join(column)) else column


def _durations(values: Sequence[Any]) -> list[str]:
    if values and set(map(type, values)) == {float} and all(map(math.isfinite, values)) and \
            min(values) >= 0 and max(values) < 60:
        # (a sweep's short runs, the usual case: "1.5s" each, formatted in one piece, each distinct one once)
        return per_distinct(lambda column: ("%.1fs\n" * len(column) % tuple(column)).split("\n")[:-1], values)
    return [f"{v:.1f}s" if type(v) is float and v < 60 else human_duration(v) for v in values]


def cells(values: Sequence[Any], precision: int) -> list[str]:
    """[cell(v, precision) for v in values], decided once for a column of one type (the usual case)."""
    kinds = set(map(type, values))
    if kinds <= {str}:
        return list(values)
    if kinds <= {str, type(None)}:
        return ["" if v is None else v for v in values]
    if kinds == {int}:
        return per_distinct(lambda column: list(map(str, column)), values)
    if kinds == {float} and precision >= 17:
        return list(map(repr, values))
    if kinds == {float} and all(map(math.isfinite, values)):
        return per_distinct(lambda column: list(map(format, column, repeat(f".{precision}g"))), values)
    if kinds in ({int, type(None)}, {float, type(None)}) and (precision < 17 or float not in kinds):
        # A column of runs of which some lack the value (runs of another shape beside a sweep's): the
        # same, around the gaps, each distinct value shown once (formatting every one of 100,000
        # runs' params took 0.2 s of a listing once a single run lacked them).
        spec = "d" if float not in kinds else f".{precision}g"
        filled = [0 if v is None else v for v in values]  # (0 formats as either kind)

        def shown(column: Sequence[Any]) -> list[str]:
            out = list(map(format, filled if column is values else [0 if v is None else v for v in column],
                           repeat(spec)))
            for i in [i for i, v in enumerate(column) if v is None]:
                out[i] = ""
            return out
        if float not in kinds or all(map(math.isfinite, filled)):
            return per_distinct(shown, values)
    return [cell(v, precision) for v in values]


def text_columns(columns: Sequence[str], values: Sequence[Sequence[Any]], precision: int,
                  pretty: bool) -> list[list[str]]:
    """The cells of each column as text (not yet through printable()); *pretty*: local start times
    and human durations."""
    shown = []
    for column, column_values in zip(columns, values, strict=True):
        if pretty and column == "start":
            column_values = local_times(column_values)
        elif pretty and column == "duration":
            # human_duration, with its usual case inline
            column_values = _durations(column_values)
        shown.append(cells(column_values, precision))
    return shown


def render(columns: Sequence[str], rows: Sequence[dict[str, Any]], form: str = "table",
           precision: int = 4, pretty: bool = True) -> str:
    if form not in FORMATS:
        raise GitexpError(f"unknown format {form!r}; use one of {', '.join(FORMATS)}")
    values = [[row.get(column) for row in rows] for column in columns]
    return render_columns(columns, values, form, precision, pretty, len(rows))


def render_columns(columns: Sequence[str], values: Sequence[Sequence[Any]], form: str = "table",
                   precision: int = 4, pretty: bool = True, count: int | None = None) -> str:
    """render() of columns given as lists of values (one per row); *count* rows when there are no columns."""
    if form not in FORMATS:
        raise GitexpError(f"unknown format {form!r}; use one of {', '.join(FORMATS)}")
    rows = count if count is not None else len(values[0]) if values else 0
    if form == "json":
        table = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)] if values else \
            [{} for _ in range(rows)]
        import json

        return json.dumps(table, indent=2, default=str) + "\n"
    pretty = pretty and form != "csv"  # csv is for machines: ISO times, seconds, full precision
    shown = text_columns(columns, values, precision if pretty else 17, pretty)
    if form == "csv":
        import csv

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(printable_column(list(columns), keep="\n\t"))  # csv quotes a cell's lines
        writer.writerows(zip(*(printable_column(c, keep="\n\t") for c in shown), strict=True) if shown
                         else [[] for _ in range(rows)])
        return out.getvalue()
    text = plain_table(columns, shown, markdown=form == "md")
    if text is not None:
        return text  # every cell printable ASCII: nothing to escape (the usual case, and the fast one)
    # A table cell is one line: no control character (a newline, ESC...) of run data reaches the terminal.
    columns, shown = printable_column(list(columns)), [printable_column(c) for c in shown]
    text = plain_table(columns, shown, markdown=form == "md")
    if text is not None:
        return text
    from tabulate import tabulate

    lines = [list(row) for row in zip(*shown, strict=True)] if shown else [[] for _ in range(rows)]
    style = "github" if form == "md" else "simple"
    return tabulate(lines, headers=list(columns), tablefmt=style, disable_numparse=True) + "\n"


# What `git exp ls` gives up first when its rows are wider than the terminal: the base columns
# that least tell runs apart, then the params and metrics (the least filled first). id, name,
# experiment and status stay.
