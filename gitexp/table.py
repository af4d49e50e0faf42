"""Turning runs into rows and rows into text: table, csv, json and markdown."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gitexp import names
from gitexp.errors import GitexpError
from gitexp.runs import RunRecord

FORMATS = ("table", "csv", "json", "md")
BASE_COLUMNS = ("id", "name", "status", "start", "duration", "commit")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: {"model": {"layers": 4}} -> {"model.layers": 4}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def short_ids(ids: Iterable[str], minimum: int = 13) -> dict[str, str]:
    """The shortest prefix of each id, at least *minimum* long, that no other id shares."""
    ordered = sorted(set(ids))
    out = {}
    for i, current in enumerate(ordered):
        need = minimum
        for other in (ordered[i - 1] if i else "", ordered[i + 1] if i + 1 < len(ordered) else ""):
            if current[:need] != other[:need]:
                continue  # they differ within what is kept already: the usual case, decided in C
            common = need
            while common < min(len(current), len(other)) and current[common] == other[common]:
                common += 1
            need = max(need, common + 1)
        out[current] = current[:need]
    return out


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


def local_time(iso: str | None) -> str:
    if not iso:
        return ""
    from gitexp.store import parse_iso

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(parse_iso(iso)))


def run_short_ids(records: Sequence[RunRecord]) -> dict[str, str]:
    """Short ids of *records* that are unique among all runs, not only these, so `show` accepts them."""
    every = records[0].repo.refs(names.REF_PREFIX) if records else {}
    return short_ids([*(ref.rsplit("/", 1)[-1] for ref in every), *(r.id for r in records)])


def differing(values: Sequence[dict[str, Any]]) -> list[str]:
    """Keys whose values are not the same in every mapping (a missing key counts as a value)."""
    keys = sorted({k for v in values for k in v})
    if len(values) <= 1:
        return keys
    return [k for k in keys if _varies(values, k)]


_MISSING = object()


def _comparable(value: Any) -> Any:
    # Scalars compare as themselves (type included: 1 and 1.0 and True differ); only nested
    # values pay for a canonical JSON form.
    if isinstance(value, (dict, list)):
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
    shorts = run_short_ids(records)
    if extra is None:
        params = [flatten(r.params) for r in records]
        metrics = [{k: v.get("last") for k, v in r.metrics.items() if not k.startswith("system/")} for r in records]
        pcols, mcols = differing(params), differing(metrics)
        if not (all_columns or only_changed):
            pcols, mcols = pcols[:8], mcols[:8]
        extra = [f"params.{_quoted(k)}" for k in pcols] + [f"metrics.{_quoted(k)}" for k in mcols]
    extra = [c for c in dict.fromkeys(extra) if c not in BASE_COLUMNS]
    getters = [(column, column_getter(column)) for column in extra]
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "id": shorts[record.id], "name": record.name, "status": record.status,
            "start": record.start, "duration": record.duration, "commit": (record.base_commit or "")[:7],
        }
        for column, getter in getters:
            row[column] = getter(record)
        rows.append(row)
    columns = [*BASE_COLUMNS, *extra]
    if only_changed and len(rows) > 1:
        changed = set(differing([{c: row.get(c) for c in columns} for row in rows]))
        columns = [c for c in columns if c in ("id", "name") or c in changed]
    return columns, rows


def _quoted(key: str) -> str:
    """A param or metric key as a column name that column_getter reads back (backticks when needed)."""
    from gitexp.search import column_path

    for candidate in (key, "`" + key.replace("`", "``") + "`"):
        try:
            if column_path(f"metrics.{candidate}")[1:] in ((key,), tuple(key.split("."))):
                return candidate
        except GitexpError:
            continue
    return key


def split_columns(text: str) -> list[str]:
    """"params.lr,metrics.`a,b`" -> ["params.lr", "metrics.`a,b`"]: commas inside backticks stay."""
    columns, current, quoted = [], [], False
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
    from gitexp.query import MISSING
    from gitexp.search import RunFields, column_path

    try:
        path = column_path(column)
    except GitexpError:
        raise GitexpError(
            f"unknown column {column!r}; use params.KEY, metrics.KEY (or metrics.KEY.min|max|last|count), "
            f"tags.KEY, env.KEY, inputs.NAME.sha256 or one of {', '.join(BASE_COLUMNS + META_COLUMNS)}"
        ) from None

    def get(record: RunRecord) -> Any:
        value = RunFields(record)(path)
        return None if value is MISSING else value
    return get


def lookup(record: RunRecord, column: str, flat: dict[str, Any] | None = None,
           last: dict[str, Any] | None = None) -> Any:
    """The value of one column for one run (None when the run lacks it)."""
    return column_getter(column)(record)


def cell(value: Any, precision: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value) or precision >= 17:
            return repr(value)
        return f"{value:.{precision}g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def render(columns: Sequence[str], rows: Sequence[dict[str, Any]], form: str = "table",
           precision: int = 4, pretty: bool = True) -> str:
    if form not in FORMATS:
        raise GitexpError(f"unknown format {form!r}; use one of {', '.join(FORMATS)}")
    if form == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2, default=str) + "\n"
    pretty = pretty and form != "csv"  # csv is for machines: ISO times, seconds, full precision
    shown = []
    for row in rows:
        values = dict(row)
        if pretty:
            values["start"] = local_time(row.get("start")) if "start" in row else None
            values["duration"] = human_duration(row.get("duration")) if "duration" in row else None
        shown.append([cell(values.get(c), precision if pretty else 17) for c in columns])
    if form == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(shown)
        return out.getvalue()
    from tabulate import tabulate

    style = "github" if form == "md" else "simple"
    return tabulate(shown, headers=list(columns), tablefmt=style, disable_numparse=True) + "\n"
