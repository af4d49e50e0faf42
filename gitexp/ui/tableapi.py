"""The runs table of the UI as JSON: `git exp ls` a page at a time.

The columns are the ones `git exp ls` chooses (views.table.run_columns: the base columns, then the
params and metrics that differ), or those the user picked; cells are the text ls prints (local start
times, human durations, 4 significant digits) with every digit in a title. 10,000 runs are never
sent at once: the matching runs and their columns are worked out once per snapshot and query, and
the page asks for the rows it shows, PAGE_SIZE at a time, as the user scrolls.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from gitexp.errors import GitexpError, QueryError
from gitexp.store.fields import flatten
from gitexp.store.runcache import row_flat_params, row_lasts
from gitexp.store.runs import RunRecord, listing_rows
from gitexp.ui.catalog import Snapshot, is_live, plain
from gitexp.views.table import BASE_COLUMNS, cell, run_columns, split_columns, text_columns

PAGE_SIZE = 200
MAX_PAGE = 1000
PRECISION = 4
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_/-]+(\.[A-Za-z0-9_/-]+)*")
_CACHED_QUERIES = 8


class Query:
    """What the table asks: which runs, in which order, with which columns."""

    def __init__(self, experiment: str | None = None, where: str | None = None, sort: str | None = None,
                 columns: str | None = None, only_changed: bool = False) -> None:
        self.experiment = experiment or None
        self.where = (where or "").strip() or None
        self.sort = (sort or "").strip() or None
        self.columns = (columns or "").strip() or None
        self.only_changed = only_changed

    def key(self) -> tuple[Any, ...]:
        return self.experiment, self.where, self.sort, self.columns, self.only_changed


class Listing:
    """The matching runs of one query on one snapshot, with their columns' values (every run's)."""

    def __init__(self, records: list[RunRecord], columns: list[str], values: list[list[Any]]) -> None:
        self.records, self.columns, self.values = records, columns, values


_cache: OrderedDict[tuple[Any, ...], Listing] = OrderedDict()
_cache_lock = threading.Lock()


def listing(snapshot: Snapshot, query: Query) -> Listing:
    """The runs of *query* in *snapshot*, and the columns ls would show of them (kept for scrolling)."""
    key = (snapshot.serial, *query.key())
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    records = snapshot.select(query.experiment, query.where, query.sort)
    extra = split_columns(query.columns) if query.columns else None
    if records:
        columns, values = run_columns(records, extra, only_changed=query.only_changed)
    else:
        columns, values = list(BASE_COLUMNS), [[] for _ in BASE_COLUMNS]
    made = Listing(records, columns, values)
    with _cache_lock:
        _cache[key] = made
        while len(_cache) > _CACHED_QUERIES:
            _cache.popitem(last=False)
    return made


def table(snapshot: Snapshot, query: Query, offset: int = 0, limit: int = PAGE_SIZE) -> dict[str, Any]:
    """The JSON of one page of the runs table; a query that does not parse answers its error
    (message, and the column of the expression where it went wrong), not a page."""
    scope = [r for r in snapshot.records if r.experiment == query.experiment] if query.experiment \
        else snapshot.records
    answer: dict[str, Any] = {"experiments": snapshot.experiments(), "total": len(scope), "offset": offset}
    try:
        found = listing(snapshot, query)
    except QueryError as exc:
        answer.update(error={"message": str(exc), "column": getattr(exc, "column", None)},
                      matched=0, rows=[], columns=[])
        return answer
    except GitexpError as exc:  # an unknown column
        answer.update(error={"message": str(exc), "column": None}, matched=0, rows=[], columns=[])
        return answer
    limit = max(1, min(limit, MAX_PAGE))
    page = found.records[offset:offset + limit]
    values = [column[offset:offset + limit] for column in found.values]
    shown = text_columns(found.columns, values, PRECISION, pretty=True)
    full = [[_full(v) for v in column] for column in values]
    rows = []
    for i, record in enumerate(page):
        rows.append({"id": record.id, "experiment": record.experiment, "status": record.status,
                     "live": is_live(record) if record.status == "RUNNING" else False,
                     "cells": [column[i] for column in shown],
                     "titles": [column[i] for column in full]})
    answer.update(matched=len(found.records), rows=rows,
                  columns=[{"name": c, "numeric": _numeric(v)} for c, v in zip(found.columns, found.values,
                                                                                   strict=True)])
    return answer


def available_columns(snapshot: Snapshot, experiment: str | None = None) -> list[str]:
    """Every column the chooser offers: the base columns, then each param and metric some run has."""
    records = [r for r in snapshot.records if r.experiment == experiment] if experiment else snapshot.records
    params: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for record, row in zip(records, listing_rows(records), strict=True):
        flat = row_flat_params(row) if row is not None else None
        lasts = row_lasts(row) if row is not None else None
        params.update(dict.fromkeys(flat if flat is not None else flatten(record.params)))
        metrics.update(dict.fromkeys(lasts if lasts is not None else record.metrics))
    return [*BASE_COLUMNS, "experiment", *(f"params.{_quoted(k)}" for k in sorted(params)),
            *(f"metrics.{_quoted(k)}" for k in sorted(metrics, key=lambda k: (k.startswith("system/"), k)))]


def _quoted(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else "`" + key.replace("`", "``") + "`"


def _numeric(values: Sequence[Any]) -> bool:
    return any(isinstance(v, int | float) and not isinstance(v, bool) for v in values[:50])


def _full(value: Any) -> Any:
    """A cell's value with all its digits, for its title; None when the cell shows it whole already."""
    if isinstance(value, float):
        return plain(value) if cell(value, 17) != cell(value, PRECISION) else None
    return None
