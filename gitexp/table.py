"""Turning runs into rows and rows into text: table, csv, json and markdown."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterable, Sequence
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
            common = 0
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


def differing(values: Sequence[dict[str, Any]]) -> list[str]:
    """Keys whose values are not the same in every mapping (a missing key counts as a value)."""
    keys = sorted({k for v in values for k in v})
    if len(values) <= 1:
        return keys
    return [k for k in keys if len({json.dumps(v.get(k), sort_keys=True, default=str) for v in values}) > 1]


def run_rows(records: Sequence[RunRecord], extra: Sequence[str] | None = None,
             all_columns: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows for `git exp ls`: the base columns plus the params and metrics that differ."""
    # Short ids must be unique among all runs, not only the listed ones, so `show` accepts them.
    every = records[0].repo.refs(names.REF_PREFIX) if records else {}
    shorts = short_ids([*(ref.rsplit("/", 1)[-1] for ref in every), *(r.id for r in records)])
    params = [flatten(r.params) for r in records]
    metrics = [{k: v.get("last") for k, v in r.metrics.items() if not k.startswith("system/")} for r in records]
    if extra is None:
        pcols, mcols = differing(params), differing(metrics)
        if not all_columns:
            pcols, mcols = pcols[:8], mcols[:8]
        extra = [f"params.{k}" for k in pcols] + [f"metrics.{k}" for k in mcols]
    rows = []
    for record, flat, last in zip(records, params, metrics, strict=True):
        row: dict[str, Any] = {
            "id": shorts[record.id], "name": record.name, "status": record.status,
            "start": record.start, "duration": record.duration, "commit": (record.base_commit or "")[:7],
        }
        for column in extra:
            row[column] = lookup(record, column, flat, last)
        rows.append(row)
    return [*BASE_COLUMNS, *extra], rows


def lookup(record: RunRecord, column: str, flat: dict[str, Any], last: dict[str, Any]) -> Any:
    kind, _, key = column.partition(".")
    if kind == "params":
        return flat.get(key)
    if kind == "metrics":
        for stat in ("min", "max", "last", "count", "step"):
            if key.endswith(f".{stat}") and key[: -len(stat) - 1] in record.metrics:
                return record.metrics[key[: -len(stat) - 1]].get(stat)
        return last.get(key, (record.metrics.get(key) or {}).get("last"))
    if kind == "tags":
        return record.tags.get(key)
    if kind == "env":
        node: Any = record.env
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node
    if column in BASE_COLUMNS or column in record.meta:
        return record.meta.get(column)
    raise GitexpError(f"unknown column {column!r}; use params.KEY, metrics.KEY, tags.KEY, env.KEY or one of "
                      f"{', '.join(BASE_COLUMNS)}")


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
