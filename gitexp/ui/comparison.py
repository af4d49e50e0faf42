"""Runs side by side as JSON: what `git exp compare` and `git exp diff` show, and field values for charts.

compare() is views.compare.compare_rows (one row per field, one column per run) with each row
marked when its values differ and the best value of each metric pointed out, as the report bolds
it; for two runs it adds the text of `git exp diff`. field_values() gives any --where field of each
run, for the scatter and parallel-coordinates charts the browser draws with Plotly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store.runs import RunRecord
from gitexp.ui.catalog import plain
from gitexp.views.compare import compare_rows, guess_minimize, run_labels
from gitexp.views.diff import diff_runs, render_diff
from gitexp.views.table import cell, column_values, differing, run_short_ids, split_columns

PRECISION = 6
MAX_CHART_RUNS = 10_000


def compare(records: Sequence[RunRecord]) -> dict[str, Any]:
    """{"runs": [{id, label, handle}], "rows": [{field, cells, differs, best}], "diff": text or None}."""
    if len(records) < 2:
        raise GitexpError(f"compare needs two runs or more; {len(records)} selected: tick two rows of the table")
    columns, rows = compare_rows(records)
    labels = columns[1:]
    per_run: list[dict[str, Any]] = [{} for _ in labels]
    for row in rows:
        for i, label in enumerate(labels):
            per_run[i][row["field"]] = row.get(label)
    changed = set(differing(per_run))
    handles = run_short_ids(records)
    out_rows = []
    for row in rows:
        field, values = row["field"], [row.get(label) for label in labels]
        out_rows.append({"field": field, "cells": [cell(v, PRECISION) for v in values],
                         "differs": field in changed and field != "id",
                         "best": _best(field[len("metrics."):], values) if field.startswith("metrics.") else None})
    diff = render_diff(diff_runs(records[0], records[1])) if len(records) == 2 else None
    return {"runs": [{"id": r.id, "label": label, "handle": handles[r.id]}
                     for r, label in zip(records, labels, strict=True)],
            "rows": out_rows, "diff": diff}


def _best(key: str, values: Sequence[Any]) -> int | None:
    """The index of the best value of metric *key* (lowest for names like loss), None if under two or tied."""
    finite = [(v, i) for i, v in enumerate(values)
              if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    if len(finite) < 2 or len({v for v, _ in finite}) == 1:
        return None
    return (min(finite) if guess_minimize(key) else max(finite))[1]


def field_values(records: Sequence[RunRecord], fields: str) -> dict[str, Any]:
    """Each of *fields* (comma-separated --where fields) for each run: {"runs", "fields": {name: values}}."""
    names = split_columns(fields)
    if not names:
        raise GitexpError("name the fields to chart, e.g. params.lr,metrics.loss")
    records = records[:MAX_CHART_RUNS]
    labels = run_labels(records)
    return {"runs": [{"id": r.id, "label": labels[r.id]} for r in records],
            "fields": {name: plain(column_values(name, records)) for name in names}}
