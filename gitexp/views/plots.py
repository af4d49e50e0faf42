"""Plots of runs with matplotlib: metric curves, param/metric scatter, parallel coordinates, bars.

    fig = gitexp.plot("val/loss", where="params.lr < 0.1", smooth=20, output="loss.png")

Figures are made with matplotlib's object API on an Agg canvas, never through pyplot: nothing
needs a display, no global backend is switched, and figures are not kept in pyplot's registry
(a notebook still shows the returned Figure). matplotlib is imported only when a plot is made,
so `import gitexp` stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitexp.errors import GitexpError
from gitexp.store import outputs
from gitexp.store.isotime import parse_iso
from gitexp.store.runcache import row_lasts
from gitexp.store.runs import RunRecord
from gitexp.views import sampling, selection
from gitexp.views.compare import run_labels
from gitexp.views.figures import legend, new_figure, plain, style

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
X_AXES = ("step", "time", "relative")
MAX_POINTS = 2000  # per line; longer histories are drawn from per-bucket minima and maxima


def _metric_key(metric: str) -> str:
    return metric[len("metrics."):] if metric.startswith("metrics.") else metric


def plot(metrics: str | Sequence[str] | None = None, runs: Sequence[str | RunRecord] | None = None,
         where: str | None = None, x: str = "step", smooth: int | None = None, log_y: bool = False,
         scatter: Sequence[str] | None = None, parallel: Sequence[str] | None = None, bar: str | None = None,
         output: str | os.PathLike[str] | None = None, experiment: str | None = None,
         repo: Any = None) -> Figure:
    """A matplotlib Figure of runs (the named *runs*, else those matching *where*), saved to *output*
    (.png, .svg or .pdf) when given.

    - metrics: one panel per metric, one line per run; *x* is step, time (UTC) or relative (time
      since the run started); *smooth* averages over the last N points; *log_y* a log y axis.
    - scatter=(PARAM, METRIC): one point per run. parallel=(PARAM..., METRIC): parallel
      coordinates coloured by the metric. bar=METRIC: one bar per run.
    """
    modes = [m for m, given in (("metrics", bool(metrics)), ("scatter", scatter), ("parallel", parallel),
                                ("bar", bar)) if given]
    if len(modes) != 1:
        raise GitexpError("give exactly one of: METRIC..., --scatter PARAM METRIC, --parallel PARAM... METRIC, "
                          f"--bar METRIC (got {', '.join(modes) or 'none'})")
    suffix = _format_of(output) if output is not None else None
    records = selection.select_runs(runs or (), where, experiment=experiment, repo=repo) if runs is None or runs else []
    if not records:
        raise GitexpError(f"no runs to plot{f' match --where {where!r}' if where else ''}; "
                          "`git exp ls` lists the runs")
    from gitexp.views import charts

    if scatter:
        fig = charts.scatter(records, scatter)
    elif parallel:
        fig = charts.parallel(records, parallel)
    elif bar:
        fig = charts.bar(records, bar)
    else:
        fig = _curves(records, [metrics] if isinstance(metrics, str) else list(metrics or ()), x, smooth, log_y)
    if output is not None:
        fig.savefig(os.fspath(output), format=suffix, dpi=110)
        outputs.remember(output)  # written into a work tree: no run's code snapshot takes it
    return fig


def split_metrics_and_runs(items: Sequence[str], records: Sequence[RunRecord]) -> tuple[list[str], list[str]]:
    """`git exp plot METRIC... [RUN...]`: the leading items that are metric keys of some run are the
    metrics (the first item always is, so a typo gets the "no such metric" answer); the rest name runs."""
    split = 1 if items else 0
    while split < len(items) and _some_run_has(records, _metric_key(items[split])):
        split += 1
    return list(items[:split]), list(items[split:])


def split_items(items: Sequence[str], experiment: str | None = None) -> tuple[list[str], list[str]]:
    """split_metrics_and_runs(items, load_runs(experiment=experiment)), from the metric keys of the
    listing `git exp ls` kept where it knows them all (no system/ key asked, every run's last values
    in it), without loading every run (0.7 s at 100,000 runs)."""
    if len(items) <= 1:
        return list(items), []  # the first item is a metric, always
    from gitexp.views import listing

    system = any(_metric_key(i).startswith("system/") for i in items[1:])
    if not system and experiment is None:
        from gitexp.git.lazyrepo import open_repository
        from gitexp.store import runindex
        from gitexp.store.runs import live_here

        repo = open_repository(None)
        # (a run live here may have logged a key its commits do not hold yet)
        keys = None if live_here(repo) else runindex.metric_keys(repo)
        if keys is not None:
            return _split_by(items, keys)
    kept = listing.current() if not system else None
    if kept is None or not kept.plain:
        from gitexp.store.runs import load_runs

        return split_metrics_and_runs(items, load_runs(experiment=experiment))
    if experiment:
        kept = kept.of_experiment(experiment)
    count = len(kept)
    return _split_by(items, {key for key, (_, _, absent) in kept.keys["metrics"].items() if len(absent) < count})


def _split_by(items: Sequence[str], known: set[str]) -> tuple[list[str], list[str]]:
    """The leading items (the first always) whose metric key is one of *known*, and the rest."""
    split = 1
    while split < len(items) and _metric_key(items[split]) in known:
        split += 1
    return list(items[:split]), list(items[split:])


def _some_run_has(records: Sequence[RunRecord], key: str) -> bool:
    """any(key in r.metrics for r in records), from the listing rows where they tell: reading every
    run's metrics took 5 s and 900 MB at 100,000 runs, for `git exp plot loss RUN RUN`."""
    unsure: Sequence[RunRecord] = records
    if not key.startswith("system/"):  # (a row's last values leave out system metrics)
        unsure = []
        for record in records:
            row = record.listing_row
            lasts = None if row is None else row_lasts(row)  # every metric's key but system/ ones, or None
            if lasts is None:
                unsure.append(record)
            elif key in lasts:
                return True
    return any(key in record.metrics for record in unsure)


def _format_of(output: str | os.PathLike[str]) -> str:
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise GitexpError(f"cannot tell which image format to write to {os.fspath(output)!r}: "
                          f"name the file with one of the suffixes .{', .'.join(FORMATS)}")
    return suffix


# -- metric curves -----------------------------------------------------------------------------


def _curves(records: Sequence[RunRecord], metrics: list[str], x: str, smooth: int | None, log_y: bool) -> Figure:
    import numpy as np

    if x not in X_AXES:
        raise GitexpError(f"unknown x axis {x!r}; use one of {', '.join(X_AXES)}")
    if smooth is not None and smooth < 1:
        raise GitexpError(f"--smooth {smooth}: the window must be 1 point or more")
    keys = [_metric_key(m) for m in metrics]
    for key in keys:
        if not any(key in r.metrics for r in records):
            known = sorted({k for r in records for k in r.metrics})
            raise GitexpError(f"no run of the {len(records)} selected has a metric {key!r}; they have: "
                              f"{', '.join(known[:30]) or 'no metrics'}")
    labels = run_labels(records)
    data = {key: [(i, r, _xy(r, key, x, smooth)) for i, r in enumerate(records) if key in r.metrics]
            for key in keys}
    # (points drawn, points logged) of each metric's lines, said in the title when they differ.
    drawn = {key: (sum(len(xy[0]) for _, _, xy in rows), sum(_logged(r, key) for _, r, _ in rows))
             for key, rows in data.items()}
    unit, scale = ("s", 1.0)
    if x == "relative":
        longest = max((float(np.nanmax(xs)) for rows in data.values() for _, _, (xs, _) in rows if len(xs)),
                      default=0.0)
        unit, scale = ("h", 3600.0) if longest > 2 * 3600 else ("min", 60.0) if longest > 180 else ("s", 1.0)
    fig = new_figure(9.5, max(3.6, 3.0 * len(keys) + 0.6))
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    handles: dict[str, Any] = {}
    for ax, key in zip(axes, keys, strict=True):
        for index, record, (xs, ys) in data[key]:
            (line,) = ax.plot(xs / scale if x == "relative" else xs, ys, label=labels[record.id],
                              linewidth=1.3, **style(index))
            handles.setdefault(record.id, line)
        shown, logged = drawn[key]
        notes = [f"moving average of {smooth} points"] if smooth and smooth > 1 else []
        if logged > shown:
            notes.append(f"{shown:,} of {logged:,} points drawn: every bucket's min and max kept")
        ax.set_title(plain(key) + (f" ({'; '.join(notes)})" if notes else ""))
        ax.set_ylabel(plain(key))
        ax.set_xlabel({"step": "step", "time": "time (UTC)", "relative": f"time since run start ({unit})"}[x])
        if log_y:
            ax.set_yscale("log")
        if x == "time":
            from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

            locator = AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.grid(True, alpha=0.3)
    legend(fig, [handles[r.id] for r in records if r.id in handles], [labels[r.id] for r in records
                                                                       if r.id in handles])
    return fig


def _logged(record: RunRecord, key: str) -> int:
    summary = record.metrics.get(key)
    return int(summary.get("count") or 0) if isinstance(summary, dict) else 0


def ordered_xy(record: RunRecord, key: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """A metric's points as float arrays against *x* (step, time or relative seconds), in x order
    (a resumed run may log steps again). Read as columns: a 1,000,000-step history costs 24 MB, not 100."""
    import numpy as np

    series = record.columns(key)
    ys = np.asarray(series.values, dtype=float)
    if x == "step":
        xs = np.asarray(series.steps, dtype=float)
    else:
        xs = np.asarray(series.times, dtype=float)
        if x == "relative":
            start = record.start
            xs = xs - (parse_iso(start) if start else (xs[0] if len(xs) else 0.0))
    if len(xs) > 1 and bool(np.any(np.diff(xs) < 0)):
        order = np.argsort(xs, kind="stable")
        xs, ys = xs[order], ys[order]
    return xs, ys


def _xy(record: RunRecord, key: str, x: str, smooth: int | None) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    xs, ys = ordered_xy(record, key, x)
    ys = np.where(np.isfinite(ys), ys, np.nan)  # matplotlib cannot draw inf; NaN leaves a gap
    if smooth and smooth > 1:
        ys = moving_average(ys, smooth)
    xs, ys = decimate(xs, ys, MAX_POINTS)
    if x == "time":
        return (xs * 1000).astype("datetime64[ms]"), ys
    return xs, ys


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last *window* finite values at each point (fewer at the start); NaN where none."""
    import numpy as np

    finite = np.isfinite(values)
    sums = np.concatenate(([0.0], np.cumsum(np.where(finite, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(finite)))
    end = np.arange(1, len(values) + 1)
    begin = np.maximum(end - window, 0)
    n = counts[end] - counts[begin]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[end] - sums[begin]) / n, np.nan)


def decimate(xs: np.ndarray, ys: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most *limit* points that keep the shape (views/sampling.py: the first, the last, and each
    bucket's minimum and maximum, so no spike disappears); a no-op for short lines."""

    if len(xs) <= limit:
        return xs, ys
    keep = sampling.minmax_indices(ys.tolist(), limit)
    return xs[keep], ys[keep]
