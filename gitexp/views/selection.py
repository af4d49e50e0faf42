"""`git exp ls --where … --sort …` answered from the kept listing's columns.

A query over 100,000 runs that loads every run's record spends a second before it tests the
first: the run cache, a record per run, a lookup per run and field. The kept listing
(gitexp.views.listing) already holds, column by column, what most queries name: each run's
params and last metric values, and the minima and maxima of its metrics. field() gives a field's
values for every run of a listing exactly as search.RunFields answers it for the run's record, or
None where only the run itself can tell (tags, env, inputs, a metric's count, a mapping of params
...); search.select_positions evaluates the query over those columns with the very evaluation
and sort search_runs uses. Where either says None, the caller searches the runs themselves.

tests/test_selection.py holds field() to RunFields and select() to search_runs on varied runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gitexp.store import search
from gitexp.store.fields import MISSING
from gitexp.store.query import Path
from gitexp.store.runs import RunRecord
from gitexp.store.search import STATS, select_positions
from gitexp.views.listing import Listing
from gitexp.views.table import BASE_COLUMNS

_BASE = {"name": BASE_COLUMNS.index("name") - 1, "status": BASE_COLUMNS.index("status") - 1}  # (base has no id)


def field(listing: Listing, path: Path) -> list[object] | None:
    """The value of *path* (("params", "lr"), ("metrics", "val/acc", "max"), ("status",)...) for each
    run of *listing* as search.RunFields answers it, MISSING where a run lacks it; None where the
    listing cannot tell."""
    head, rest = path[0], path[1:]
    if not rest:
        if head == "id":
            return list(listing.ids)
        if head == "experiment":
            return list(listing.experiments)
        return list(listing.base[_BASE[head]]) if head in _BASE else None
    if not listing.plain or head not in ("params", "metrics"):
        return None  # a run's params with dotted keys, or without a listing row: only its record tells
    key = ".".join(rest)
    keys = listing.keys[head]
    if head == "params":
        if any("." in part for part in rest):
            return [MISSING] * len(listing)  # a quoted key with a dot: no key of flattened params has one
        prefix = key + "."
        if any(k.startswith(prefix) for k in keys):
            return None  # a mapping of longer keys, which the flattened params do not hold
        return _with_gaps(listing, head, key)
    if key.startswith("system/"):
        return None  # system metrics are not in the listing rows
    base = ".".join(rest[:-1]) if len(rest) > 1 and rest[-1] in STATS else None
    if base is None or base not in keys:
        return _with_gaps(listing, head, key)
    # A run without a metric named like the whole path takes the statistic of the metric before it.
    # In the usual case no metric is named like that: the statistic is the answer for every run.
    stat = _statistic(listing, base, rest[-1])
    whole = key not in keys
    values: list[object] = [MISSING] * len(listing) if whole else _with_gaps(listing, head, key)
    lacking: Sequence[int] = range(len(listing)) if whole else [i for i, v in enumerate(values) if v is MISSING]
    if stat is None:
        without = set(keys[base][2])
        if any(i not in without for i in lacking):
            return None  # its count or step: only the run's summary holds them
        return values
    if whole:
        return stat
    for i in lacking:
        values[i] = stat[i]
    return values


def _with_gaps(listing: Listing, head: str, key: str) -> list[object]:
    """The values of *key*'s column, MISSING for the runs without the key."""
    if key not in listing.keys[head]:
        return [MISSING] * len(listing)
    _, shown, absent = listing.keys[head][key]
    values: list[object] = list(shown)
    for i in absent:
        values[i] = MISSING
    return values


def _statistic(listing: Listing, key: str, stat: str) -> list[object] | None:
    """metrics.<key>.<stat> for each run, MISSING for the runs without the metric; None for a
    statistic the listing does not hold."""
    if stat == "last":
        return _with_gaps(listing, "metrics", key)
    if stat not in ("min", "max") or listing.extremes is None or key not in listing.extremes:
        return None
    try:
        values: list[object] = list(listing.extremes[key][stat == "max"])
    except ValueError:  # a damaged file's: the runs answer
        return None
    for i in listing.keys["metrics"][key][2]:
        values[i] = MISSING
    return values


def select(listing: Listing, where: str | None, order_by: str | Sequence[str] | None) -> Listing | None:
    """The runs of *listing* that match *where*, in *order_by*'s order, as search_runs orders them;
    None when the listing cannot tell (then search the runs: search_runs also warns of a field that
    no run has). The listing it gives is one to show: without the minima and maxima of metrics."""
    picked = select_positions(len(listing), where, order_by, lambda path: field(listing, path))
    return None if picked is None else listing.subset(picked, extremes=False)


def select_runs(runs: Sequence[str | RunRecord] = (), where: str | None = None,
                order_by: str | Sequence[str] | None = None, experiment: str | None = None,
                repo: Any = None) -> list[RunRecord]:
    """search.select_runs, the runs matching *where* (none named) picked from the kept listing's
    columns where they can tell, and only those read: `git exp plot`, `compare` and `report`
    with --where need not load 100,000 runs to pick a hundred (as `ls --where` does not)."""
    if not runs and where:
        found = _picked(where, order_by, experiment, repo)
        if found is not None:
            return found
    return search.select_runs(runs, where, order_by, experiment, repo)


def _picked(where: str, order_by: str | Sequence[str] | None, experiment: str | None,
            repo: Any) -> list[RunRecord] | None:
    """The records search_runs would give, through select(); None where the kept listing cannot tell."""
    from gitexp.store.runs import load_runs
    from gitexp.views import listing

    search.check_query(where, order_by)
    whole = listing.current(repo)
    if whole is None:
        return None
    found = select(whole.of_experiment(experiment) if experiment else whole, where, order_by)
    keep = whole.to_keep()  # (brought up to date: kept for the next command, as `ls` keeps it)
    if keep is not None:
        listing.remember(repo, keep)
    if found is None or not len(found):
        return None if found is None else []
    by_id = {record.id: record for record in load_runs(repo, only=found.ids)}
    if len(by_id) != len(found):
        return None  # a run went, or was damaged, since: the runs themselves tell
    return [by_id[run_id] for run_id in found.ids]
