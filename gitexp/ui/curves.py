"""Metric curves of the selected runs as JSON for Plotly: each metric's history against step or time.

Histories are read as `git exp plot` reads them (RunRecord.history: the committed history, plus
the journal's values for a run live on this machine), smoothed on the whole history when asked
(views.plots.moving_average), then cut to at most a few thousand points per line by
views.sampling.downsample_minmax, which keeps every bucket's minimum and maximum: a spike of one
step in a million is still drawn. Each line says how many points it has and how many it shows.
The lines of ended runs are kept in memory (their commit cannot change), so a page following one
live run among many finished ones reads only the live run's history every 2 seconds.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

from gitexp.errors import GitexpError
from gitexp.store.runs import RunRecord
from gitexp.ui.catalog import is_live
from gitexp.views.compare import run_labels
from gitexp.views.sampling import minmax_indices

X_AXES = ("step", "time", "relative")
MAX_POINTS = 4000  # of one line, when it is drawn alone: about two per pixel of a wide chart
CHART_POINTS = 20_000  # of all the lines of one chart: what Plotly (SVG) redraws in a fraction of a second
MIN_LINE_POINTS = 200
MAX_METRICS = 24  # charts drawn unless the metrics are named
CACHED_POINTS = 500_000  # of the downsampled lines of ended runs kept in memory (about 30 MB)

_lines: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_lines_lock = threading.Lock()
_cached_points = 0


def line_points(lines: int) -> int:
    """How many points each of *lines* lines of a chart keeps."""
    return max(MIN_LINE_POINTS, min(MAX_POINTS, CHART_POINTS // max(1, lines)))


def metric_keys(records: Sequence[RunRecord]) -> list[str]:
    """The metrics of *records*, system metrics (system/...) last."""
    keys = {k for r in records for k in r.metrics}
    return sorted(keys, key=lambda k: (k.startswith("system/"), k))


def curves(records: Sequence[RunRecord], metrics: Sequence[str] | None = None, x: str = "step",
           smooth: int | None = None, max_points: int | None = None) -> dict[str, Any]:
    """{"charts": [{"key", "lines": [{"id", "label", "x", "y", "count", "shown"}]}], "live", "more"}."""
    if x not in X_AXES:
        raise GitexpError(f"unknown x axis {x!r}; use one of {', '.join(X_AXES)}")
    keys = list(metrics) if metrics else metric_keys(records)
    more = max(0, len(keys) - MAX_METRICS) if not metrics else 0
    keys = keys[:MAX_METRICS] if not metrics else keys
    labels = run_labels(records)
    charts = []
    for key in keys:
        having = [r for r in records if key in r.metrics]
        points = max_points or line_points(len(having))
        lines = [{**_cached_line(r, key, x, smooth, points), "id": r.id, "label": labels[r.id]} for r in having]
        charts.append({"key": key, "lines": lines})
    return {"charts": charts, "more": more, "x": x,
            "live": [r.id for r in records if r.status == "RUNNING" and is_live(r)],
            "running": [r.id for r in records if r.status == "RUNNING"]}


def _cached_line(record: RunRecord, key: str, x: str, smooth: int | None, points: int) -> dict[str, Any]:
    """_line, kept for the run commits that cannot change: a live page asks for every selected run's
    curves every 2 s, and only the running ones have anything new."""
    if record.status == "RUNNING":
        return _line(record, key, x, smooth, points)
    wanted = (record.commit, key, x, smooth, points)
    with _lines_lock:
        found = _lines.get(wanted)
        if found is not None:
            _lines.move_to_end(wanted)
            return found
    line = _line(record, key, x, smooth, points)
    global _cached_points
    with _lines_lock:
        _lines[wanted] = line
        _cached_points += line["shown"]
        while _cached_points > CACHED_POINTS and len(_lines) > 1:
            _cached_points -= _lines.popitem(last=False)[1]["shown"]
    return line


def _line(record: RunRecord, key: str, x: str, smooth: int | None, points: int) -> dict[str, Any]:
    import numpy as np

    from gitexp.views.plots import moving_average, ordered_xy

    xs, values = ordered_xy(record, key, x)
    count = len(values)
    if smooth and smooth > 1:

        values = moving_average(np.where(np.isfinite(values), values, np.nan), smooth)
    keep = minmax_indices(cast("Sequence[float]", values), max(points, 4))  # an array: the fast path takes it as is
    if len(keep) < len(values):
        xs, values = xs[keep], values[keep]
    if x == "time":  # epoch milliseconds: what a Plotly date axis reads
        xs = xs * 1000.0
    return {"count": count, "shown": len(values),
            "x": _numbers(xs, integral=x == "step"), "y": _numbers(values)}


def _numbers(array: Any, integral: bool = False) -> list[Any]:
    """An array as JSON numbers; NaN and infinities as null, which Plotly draws as a gap."""
    out = array.tolist()
    if integral:
        return [int(v) if math.isfinite(v) else None for v in out]
    return [v if math.isfinite(v) else None for v in out]
