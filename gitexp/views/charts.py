"""Charts of one value per run: param/metric scatter, parallel coordinates, bars (curves: views/plots.py)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from gitexp.errors import GitexpError
from gitexp.store import schema, search
from gitexp.store.fields import FIELDS, MISSING, PREFIXES
from gitexp.store.runs import RunRecord
from gitexp.views.compare import run_labels
from gitexp.views.figures import MARKERS, legend, new_figure, plain, style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LOG_DECADES = 2  # positive values spanning this many powers of ten or more are read on a log axis


def log_scale(values: Iterable[float | None]) -> bool:
    """Whether an axis of *values* is logarithmic, the one rule of every chart: when all of them are
    positive and they span LOG_DECADES decades or more (learning rates, weight decays, losses near
    zero), where a linear axis would squeeze most of them together. Missing and non-finite values,
    which are not drawn, do not count; two or more values are needed."""
    drawn = [float(v) for v in values if v is not None and math.isfinite(v)]
    if len(drawn) < 2 or min(drawn) <= 0:
        return False
    return max(drawn) / min(drawn) >= 10 ** LOG_DECADES


def _field(text: str, default: str) -> tuple[str, tuple[str, ...]]:
    """("lr", path of params.lr) for "lr" or "params.lr"; *default* is the prefix a bare key gets."""
    head = text.split(".", 1)[0].strip("`")
    path = search.column_path(text if head in (*FIELDS, *PREFIXES) else f"{default}.{text}")
    return text, path


def _label(path: tuple[str, ...], default: str) -> str:
    """How a figure names the field at *path*: without the prefix a bare key gets, and without the
    backquotes that quote a key in a query (metrics.`val/acc` is drawn as val/acc)."""
    return ".".join(path[1:] if path[0] == default and len(path) > 1 else path)


def _values(records: Sequence[RunRecord], path: tuple[str, ...]) -> list[Any]:
    out = []
    for record in records:
        value = search.field_value(record, path)
        if type(value) is int and not schema.fits_float(value):
            # A param may be any integer (10**400 is stored as logged); past a float's range it is
            # drawn as the infinity it would round to, which no chart draws, not an OverflowError.
            value = math.inf if value > 0 else -math.inf
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
    shown, values = _taken(xs, keep), _taken(ys, keep)
    handles = [ax.scatter([x], [y], s=36, color=style(i)["color"], marker=MARKERS[(i // 8) % 6],
                          label=labels[records[i].id]) for i, x, y in zip(keep, shown, values, strict=True)]
    if categories:
        ax.set_xticks(range(len(categories)), [plain(c) for c in categories], rotation=30, ha="right")
    elif log_scale(shown):
        ax.set_xscale("log")
    if log_scale(values):
        ax.set_yscale("log")
    xlabel, ylabel = _label(ppath, "params"), _label(mpath, "metrics")
    ax.set_xlabel(plain(xlabel))
    ax.set_ylabel(plain(ylabel))
    ax.set_title(plain(f"{ylabel} by {xlabel}"))
    ax.grid(True, alpha=0.3)
    legend(fig, handles, [labels[records[i].id] for i in keep])
    return fig


def parallel(records: Sequence[RunRecord], fields: Sequence[str]) -> Figure:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize

    if len(fields) < 2:
        raise GitexpError(f"--parallel takes one or more PARAMs then a METRIC, got {list(fields)}")
    dims = [_field(f, "params") for f in fields[:-1]] + [_field(fields[-1], "metrics")]
    names = [name for name, _ in dims]
    raw = [_values(records, path) for _, path in dims]
    if not _numeric(raw[-1]):
        raise GitexpError(f"{names[-1]!r} has no numeric values in the selected runs; --parallel ends with a metric")
    # A NaN or infinite value has no place on an axis: that run is left out like one missing the field.
    columns = [(_finite(col), categories) for col, categories in map(_positions, raw)]
    keep = _require(records, [c for c, _ in columns], names)
    axes = [_ParallelAxis(_taken(col, keep), categories) for col, categories in columns]
    metric = axes[-1]
    low, high = min(metric.values), max(metric.values)
    norm = (LogNorm(low, high) if metric.log else
            Normalize(low, high if high > low else low + 1))
    cmap = colormaps["viridis"]  # perceptually uniform and readable with colour-vision deficiencies
    fig = new_figure(max(7.0, 1.8 * len(dims) + 2), 5.0)
    ax = fig.subplots()
    labels_of = run_labels(records)
    for j, i in enumerate(keep):
        ax.plot(range(len(dims)), [a.scaled[j] for a in axes], color=cmap(norm(metric.values[j])), linewidth=1.4,
                alpha=0.85, label=labels_of[records[i].id])
    ax.vlines(range(len(dims)), 0, 1, colors="0.35", linewidth=1)
    for d, axis in enumerate(axes):
        axis.draw_ticks(ax, d)
    shown = [_label(path, "params" if d < len(dims) - 1 else "metrics") for d, (_, path) in enumerate(dims)]
    ax.set_xticks(range(len(dims)), [plain(n) + (" (log)" if a.log else "") for n, a in zip(shown, axes, strict=True)])
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(dims) - 0.6)
    ax.set_ylim(-0.08, 1.08)
    ax.set_ylabel("each axis from its minimum to its maximum")
    ax.set_title(plain(f"parallel coordinates: {', '.join(shown[:-1])} -> {shown[-1]}"))
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=plain(shown[-1]))
    return fig


def _finite(column: list[float | None]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in column]


class _ParallelAxis:
    """One axis of a parallel-coordinates chart: its values placed from 0 (the least) to 1 (the
    greatest), on a log scale when log_scale says so, and the real values its ticks name."""

    def __init__(self, values: list[float], categories: list[str] | None) -> None:
        self.values, self.categories = values, categories
        self.log = not categories and log_scale(values)
        self.low, self.high = min(values), max(values)
        self.scaled = [self.place(v) for v in values]

    def place(self, value: float) -> float:
        low, high = self.low, self.high
        if self.log:
            value, low, high = math.log10(value), math.log10(low), math.log10(high)
        return 0.5 if high == low else (value - low) / (high - low)

    def ticks(self) -> list[tuple[float, str]]:
        """(position, label) of each tick: every category; else the least and greatest values and
        round values between them (powers of ten on a log axis), none crowding the ends."""
        if self.categories:
            count = len(self.categories)
            return [(0.5 if count == 1 else c / (count - 1), name) for c, name in enumerate(self.categories)]
        if self.low == self.high:
            return [(0.5, f"{self.low:.4g}")]
        from matplotlib.ticker import LogLocator, MaxNLocator

        whole = all(float(v).is_integer() for v in self.values)
        locator = LogLocator(base=10, numticks=8) if self.log else MaxNLocator(nbins=4, integer=whole)
        inner = [(self.place(float(v)), f"{float(v):.4g}") for v in locator.tick_values(self.low, self.high)
                 if self.low < v < self.high]
        return [(0.0, f"{self.low:.4g}"), *[(p, t) for p, t in inner if 0.08 < p < 0.92], (1.0, f"{self.high:.4g}")]

    def draw_ticks(self, ax: Axes, index: int) -> None:
        ticks = self.ticks()
        if not self.categories:  # ax.lines stays one line per run
            ax.hlines([pos for pos, _ in ticks], index - 0.03, index, colors="0.35", linewidth=1)
        for pos, text in ticks:
            ax.annotate(plain(text), (index, pos), xytext=(4, 0), textcoords="offset points", fontsize="x-small",
                        va="center")


def bar(records: Sequence[RunRecord], metric: str) -> Figure:
    name, path = _field(metric, "metrics")
    values = _values(records, path)
    if not _numeric(values):
        raise GitexpError(f"no run of the {len(records)} selected has a numeric value for {name!r}")
    keep = [i for i in _require(records, [values], [name]) if math.isfinite(values[i])]
    if not keep:
        raise GitexpError(f"no run of the {len(records)} selected has a finite value for {name!r} (NaN or "
                          "infinite values have no bar)")
    keep.sort(key=lambda i: values[i], reverse=True)
    shown = [float(values[i]) for i in keep]
    labels = run_labels(records)
    fig = new_figure(8.5, max(3.0, 0.32 * len(keep) + 1.4))
    ax = fig.subplots()
    log = log_scale(shown)
    # On a log axis a bar cannot start at 0: all start at the power of ten below the least value.
    base = 10.0 ** math.floor(math.log10(min(shown))) if log else 0.0
    bars = ax.barh(range(len(keep)), [v - base for v in shown], left=base, color=[style(i)["color"] for i in keep])
    if log:
        ax.set_xscale("log")
    ax.set_yticks(range(len(keep)), [plain(labels[records[i].id]) for i in keep])
    ax.invert_yaxis()  # the highest value on top
    ax.bar_label(bars, labels=[f"{v:.4g}" for v in shown], padding=3, fontsize="small")
    label = _label(path, "metrics")
    ax.set_xlabel(plain(label) + (" (log scale)" if log else ""))
    ax.set_title(plain(f"{label} by run"))
    ax.grid(True, axis="x", alpha=0.3)
    return fig
