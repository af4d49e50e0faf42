"""Charts of one value per run: param/metric scatter, parallel coordinates, bars (curves: views/plots.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gitexp.errors import GitexpError
from gitexp.store import search
from gitexp.store.fields import FIELDS, MISSING, PREFIXES
from gitexp.store.runs import RunRecord
from gitexp.views.compare import run_labels
from gitexp.views.figures import MARKERS, legend, new_figure, style

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _field(text: str, default: str) -> tuple[str, tuple[str, ...]]:
    """("lr", path of params.lr) for "lr" or "params.lr"; *default* is the prefix a bare key gets."""
    head = text.split(".", 1)[0].strip("`")
    path = search.column_path(text if head in (*FIELDS, *PREFIXES) else f"{default}.{text}")
    return text, path


def _values(records: Sequence[RunRecord], path: tuple[str, ...]) -> list[Any]:
    out = []
    for record in records:
        value = search.field_value(record, path)
        out.append(None if value is MISSING or isinstance(value, dict | list) else value)
    return out


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def _positions(values: list[Any]) -> tuple[list[float | None], list[str] | None]:
    """Numbers as they are; anything else as category positions 0, 1, ... with their names."""
    if _numeric(values):
        return [None if v is None else float(v) for v in values], None
    categories = sorted({str(v) for v in values if v is not None})
    where = {c: float(i) for i, c in enumerate(categories)}
    return [None if v is None else where[str(v)] for v in values], categories


def _require(records: Sequence[RunRecord], columns: list[list[Any]], names: list[str]) -> list[int]:
    keep = [i for i in range(len(records)) if all(col[i] is not None for col in columns)]
    if not keep:
        raise GitexpError(f"none of the {len(records)} selected run(s) has values for all of "
                          f"{', '.join(names)}; `git exp ls --all` shows what they have")
    return keep


def _taken(column: list[float | None], keep: list[int]) -> list[float]:
    """The values of *column* at *keep*, the rows _require found complete."""
    return [v for v in (column[i] for i in keep) if v is not None]


def scatter(records: Sequence[RunRecord], fields: Sequence[str]) -> Figure:
    if len(fields) != 2:
        raise GitexpError(f"--scatter takes a PARAM and a METRIC, got {len(fields)} value(s): {list(fields)}")
    (pname, ppath), (mname, mpath) = _field(fields[0], "params"), _field(fields[1], "metrics")
    xs, categories = _positions(_values(records, ppath))
    ys, _ = _positions(_values(records, mpath))
    if not _numeric(_values(records, mpath)):
        raise GitexpError(f"{mname!r} has no numeric values in the selected runs; --scatter needs a metric")
    keep = _require(records, [xs, ys], [pname, mname])
    labels = run_labels(records)
    fig = new_figure(8.5, 5.0)
    ax = fig.subplots()
    shown = _taken(xs, keep)
    handles = [ax.scatter([x], [y], s=36, color=style(i)["color"], marker=MARKERS[(i // 8) % 6],
                          label=labels[records[i].id]) for i, x, y in zip(keep, shown, _taken(ys, keep), strict=True)]
    if categories:
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    elif min(shown) > 0 and max(shown) / min(shown) >= 100:
        ax.set_xscale("log")  # learning rates, weight decays...: spread over decades, read on a log axis
    ax.set_xlabel(pname)
    ax.set_ylabel(mname)
    ax.set_title(f"{mname} by {pname}")
    ax.grid(True, alpha=0.3)
    legend(fig, handles, [labels[records[i].id] for i in keep])
    return fig


def parallel(records: Sequence[RunRecord], fields: Sequence[str]) -> Figure:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if len(fields) < 2:
        raise GitexpError(f"--parallel takes one or more PARAMs then a METRIC, got {list(fields)}")
    dims = [_field(f, "params") for f in fields[:-1]] + [_field(fields[-1], "metrics")]
    names = [name for name, _ in dims]
    raw = [_values(records, path) for _, path in dims]
    if not _numeric(raw[-1]):
        raise GitexpError(f"{names[-1]!r} has no numeric values in the selected runs; --parallel ends with a metric")
    columns = [_positions(values) for values in raw]
    keep = _require(records, [c for c, _ in columns], names)
    scaled: list[list[float]] = []  # per axis, the kept runs' positions from 0 to 1
    ticks: list[list[str] | list[float]] = []
    for (col, categories) in columns:
        present = _taken(col, keep)
        low, high = min(present), max(present)
        span = high - low
        scaled.append([0.5 if span == 0 else (v - low) / span for v in present])
        ticks.append(categories if categories else [low, high])
    metric = _taken(columns[-1][0], keep)
    norm = Normalize(min(metric), max(metric) if max(metric) > min(metric) else min(metric) + 1)
    cmap = colormaps["viridis"]  # perceptually uniform and readable with colour-vision deficiencies
    fig = new_figure(max(7.0, 1.8 * len(dims) + 2), 5.0)
    ax = fig.subplots()
    labels_of = run_labels(records)
    for j, i in enumerate(keep):
        ax.plot(range(len(dims)), [s[j] for s in scaled], color=cmap(norm(metric[j])), linewidth=1.4,
                alpha=0.85, label=labels_of[records[i].id])
    ax.vlines(range(len(dims)), 0, 1, colors="0.35", linewidth=1)
    for d, labels in enumerate(ticks):
        if columns[d][1]:
            for c, name in enumerate(labels):
                pos = 0.5 if len(labels) == 1 else c / (len(labels) - 1)
                ax.annotate(str(name), (d, pos), xytext=(4, 0), textcoords="offset points", fontsize="x-small",
                            va="center")
        else:
            ax.annotate(f"{labels[0]:.4g}", (d, 0), xytext=(4, -10), textcoords="offset points", fontsize="x-small")
            ax.annotate(f"{labels[1]:.4g}", (d, 1), xytext=(4, 4), textcoords="offset points", fontsize="x-small")
    ax.set_xticks(range(len(dims)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(dims) - 0.6)
    ax.set_ylim(-0.08, 1.08)
    ax.set_ylabel("each axis scaled from its minimum to its maximum")
    ax.set_title(f"parallel coordinates: {', '.join(names[:-1])} -> {names[-1]}")
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=names[-1])
    return fig


def bar(records: Sequence[RunRecord], metric: str) -> Figure:
    name, path = _field(metric, "metrics")
    values = _values(records, path)
    if not _numeric(values):
        raise GitexpError(f"no run of the {len(records)} selected has a numeric value for {name!r}")
    keep = [i for i in _require(records, [values], [name]) if not math.isnan(values[i])]
    keep.sort(key=lambda i: values[i], reverse=True)
    labels = run_labels(records)
    fig = new_figure(8.5, max(3.0, 0.32 * len(keep) + 1.4))
    ax = fig.subplots()
    bars = ax.barh(range(len(keep)), [values[i] for i in keep], color=[style(i)["color"] for i in keep])
    ax.set_yticks(range(len(keep)), [labels[records[i].id] for i in keep])
    ax.invert_yaxis()  # the highest value on top
    ax.bar_label(bars, labels=[f"{values[i]:.4g}" for i in keep], padding=3, fontsize="small")
    ax.set_xlabel(name)
    ax.set_title(f"{name} by run")
    ax.grid(True, axis="x", alpha=0.3)
    return fig
