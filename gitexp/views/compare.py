"""`git exp compare` (N runs side by side, one column each) and `git exp best` (the winning run)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store import search
from gitexp.store.fields import flatten
from gitexp.store.runs import RunRecord
from gitexp.views.diff import env_summary
from gitexp.views.table import BASE_COLUMNS, differing, human_duration, local_time, render, run_short_ids

# Names that say lower is better; `best` without --min/--max guesses from them and says so.
LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "perplexity", "ppl", "wer", "cer", "latency",
                   "time", "duration", "regret", "cost")


def run_labels(records: Sequence[RunRecord]) -> dict[str, str]:
    """id -> a column header: the run name when it is unique among *records*, else name@handle."""
    shorts = run_short_ids(records)
    names = [r.name for r in records]
    labels = {}
    for record in records:
        if record.name and names.count(record.name) == 1:
            label = record.name
        else:
            label = f"{record.name}@{shorts[record.id]}" if record.name else shorts[record.id]
        labels[record.id] = label if label not in ("field", "start", "duration") else f"{label}@{shorts[record.id]}"
    return labels


def compare_rows(records: Sequence[RunRecord], only_changed: bool = False,
                 pretty: bool = True) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per field (id, status, params.*, metrics.*, env...), one column per run."""
    if len(records) < 1:
        raise GitexpError("compare needs at least one run; name them (git exp compare RUN RUN...) or use --where")
    labels = run_labels(records)
    shorts = run_short_ids(records)
    values: list[dict[str, Any]] = []
    for record in records:
        env = env_summary(record.env)
        row: dict[str, Any] = {
            "id": shorts[record.id] if pretty else record.id, "experiment": record.experiment, "status": record.status,
            "start": local_time(record.start) if pretty else record.start,
            "duration": human_duration(record.duration) if pretty else record.duration,
            "commit": (record.base_commit or "")[:7 if pretty else 40],
        }
        row.update({f"params.{k}": v for k, v in flatten(record.params).items()})
        row.update({f"metrics.{k}": v.get("last") for k, v in sorted(record.metrics.items())})
        row.update({f"env.{k}": v for k, v in env.items() if k in ("python", "host", "gpus")})
        values.append(row)
    order = list(dict.fromkeys(k for row in values for k in row))
    head = [k for k in order if k in (*BASE_COLUMNS, "experiment")]
    rest = sorted((k for k in order if k not in head), key=lambda k: (not k.startswith("params."),
                                                                     not k.startswith("metrics."),
                                                                     k.startswith("metrics.system/"), k))
    keys = head + rest
    if only_changed and len(records) > 1:
        changed = set(differing(values))
        keys = [k for k in keys if k == "id" or k in changed]
    columns = ["field", *(labels[r.id] for r in records)]
    rows = [{"field": key, **{labels[r.id]: v.get(key) for r, v in zip(records, values, strict=True)}}
            for key in keys]
    return columns, rows


def render_compare(records: Sequence[RunRecord], form: str = "table", precision: int = 4,
                   only_changed: bool = False) -> str:
    columns, rows = compare_rows(records, only_changed, pretty=form in ("table", "md"))
    return render(columns, rows, form, precision)


# -- best ------------------------------------------------------------------------------------


def metric_path(metric: str) -> tuple[str, ...]:
    """"acc", "metrics.acc" or "val/acc.max" as the field path of a metric (last value by default)."""
    text = metric if metric.startswith(("metrics.", "`metrics`.")) else f"metrics.{metric}"
    path = search.column_path(text)
    if path[0] != "metrics":
        raise GitexpError(f"{metric!r} is not a metric; give a metric key such as acc or val/loss.min")
    return path


def guess_minimize(metric: str) -> bool:
    """Whether lower is better for *metric*, judged by its words (val/loss, error_rate, wer: yes)."""
    words = re.split(r"[^a-z0-9]+", metric.lower().removeprefix("metrics."))
    return any(w in LOWER_IS_BETTER or w.startswith(("loss", "err")) for w in words)


def best_run(records: Sequence[RunRecord], metric: str, minimize: bool) -> tuple[RunRecord, float]:
    """The run with the lowest (or highest) value of *metric*; runs without it, or NaN, do not compete."""
    found = best_position(search.field_values(records, metric_path(metric)), minimize)
    if found is None:
        raise _no_value(len(records), metric)
    return records[found[0]], found[1]


def best_position(values: Sequence[object], minimize: bool) -> tuple[int, float] | None:
    """(position, value) of the lowest (or highest) number of *values*, the first of equal ones (runs
    come newest first: the newest wins a tie); None when none is a number (a field the run lacks, a
    bool, NaN: they do not compete)."""
    best: tuple[int, float] | None = None
    for k, value in enumerate(values):
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value) and \
                (best is None or (value < best[1] if minimize else value > best[1])):
            best = (k, value)
    return best


def find_best(metric: str, minimize: bool, where: str | None = None,
              experiment: str | None = None) -> RunRecord | None:
    """`git exp best`: the run best_run picks among the runs matching *where* (of *experiment*); None
    when none match. The kept listing's columns answer where they can (views.selection, held to
    the runs' own fields by tests/test_selection.py): 100,000 runs need not all be loaded for one."""
    from gitexp.store import runs
    from gitexp.views import listing, selection

    path = metric_path(metric)
    search.check_query(where, None)
    whole = listing.current()
    if whole is not None:
        kept = whole.of_experiment(experiment) if experiment else whole
        found = selection.select(kept, where, None) if where else kept
        values = None if found is None else selection.field(found, path)
        keep = whole.to_keep()  # (brought up to date: kept for the next command, as `ls` keeps it)
        if keep is not None:
            listing.remember(None, keep)
        if found is not None and not len(found):
            return None
        if found is not None and values is not None:
            best = best_position(values, minimize)
            if best is None:
                raise _no_value(len(found), metric)
            return runs.get_run(found.ids[best[0]], experiment=experiment)
    records = search.search_runs(where, experiment=experiment)
    return best_run(records, metric, minimize)[0] if records else None


def _no_value(count: int, metric: str) -> GitexpError:
    return GitexpError(f"none of the {count} run(s) has a value for metric {metric!r}; "
                       "`git exp ls --all` shows the metrics they have")
