"""What every figure of gitexp shares: a display-free matplotlib Figure, each run's style, the legend.

gitexp.views.plots (metric curves) and gitexp.views.charts (one value per run) both draw through
these, so a run keeps its colour across kinds of plot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

# Okabe & Ito's colour-blind-safe palette, yellow last (it is faint on white); past 8 runs the
# line style changes, past 32 a marker is added, so every run stays distinguishable.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
MAX_LEGEND = 60  # runs named in a legend (docs/cli.md promises it)
LABEL_MAX = 40  # characters of a legend entry
LEGEND_HEIGHT = 6.5  # inches a figure may grow to, so that its legend needs fewer columns
LEGEND_SHARE = 0.25  # of the figure's width, what a legend may take before the figure widens
LEGEND_MARGIN = 0.1  # inches kept free above and below the legend (constrained layout pads 0.04)


def style(index: int) -> dict[str, Any]:
    """Colour, line style (and marker past 32 runs) of the index-th run."""
    out: dict[str, Any] = {"color": PALETTE[index % len(PALETTE)],
                           "linestyle": LINESTYLES[(index // len(PALETTE)) % len(LINESTYLES)]}
    cycle = len(PALETTE) * len(LINESTYLES)
    if index >= cycle:
        out.update(marker=MARKERS[(index // cycle - 1) % len(MARKERS)], markevery=0.1, markersize=4)
    return out


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plain(text: object) -> str:
    """*text* drawn as it is: matplotlib reads text between two '$' as TeX math, and a run name or
    metric key with dollars would be garbled or make drawing fail."""
    return str(text).replace("$", r"\$")


def legend_label(label: str) -> str:
    """*label* as the legend shows it: plain, and at most LABEL_MAX characters (the middle cut out,
    so both a name's start and a trailing @short-id stay)."""
    if len(label) > LABEL_MAX:
        keep = LABEL_MAX - 1
        label = label[: keep - keep // 3] + "\u2026" + label[len(label) - keep // 3:]
    return plain(label)


def legend(fig: Figure, handles: list[Any], labels: list[str]) -> Legend | None:
    """One legend for the whole figure, outside the axes on the right, so it never hides data.

    Every entry it names lies inside the figure: the figure grows taller (up to LEGEND_HEIGHT
    inches), then the legend takes more columns, and the figure grows wider by what the columns
    take beyond LEGEND_SHARE of it, so the axes keep their room. Past MAX_LEGEND runs only the
    first are named and the title says how many were left out: hundreds of entries would take
    over the figure and no reader could match them to lines anyway."""
    if not handles:
        return None
    count = len(handles)
    shown = min(count, MAX_LEGEND)
    title = (f"{count} run{'s' * (count != 1)}" if count == shown
             else f"first {shown} of {count} runs ({count - shown} not named)")
    names = [legend_label(label) for label in labels[:shown]]
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]

    def make(columns: int) -> Legend:
        return fig.legend(handles[:shown], names, loc="outside right upper", fontsize="small", ncols=columns,
                          title=title, frameon=False)

    def height(made: Legend) -> float:  # inches the legend and the figure's margins take
        return float(made.get_window_extent(renderer).height) / fig.dpi + 2 * LEGEND_MARGIN

    columns = 1
    made = make(columns)
    needed = height(made)
    if needed > fig.get_figheight():
        fig.set_figheight(max(fig.get_figheight(), min(needed, LEGEND_HEIGHT)))
    while columns < shown and height(made) > fig.get_figheight():
        made.remove()
        columns += 1
        made = make(columns)
    beyond = float(made.get_window_extent(renderer).width) / fig.dpi - LEGEND_SHARE * fig.get_figwidth()
    if beyond > 0:
        fig.set_figwidth(fig.get_figwidth() + beyond)
    return made
