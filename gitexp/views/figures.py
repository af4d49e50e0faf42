"""What every figure of gitexp shares: a display-free matplotlib Figure, each run's style, the legend.

gitexp.views.plots (metric curves) and gitexp.views.charts (one value per run) both draw through
these, so a run keeps its colour across kinds of plot.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Okabe & Ito's colour-blind-safe palette, yellow last (it is faint on white); past 8 runs the
# line style changes, past 32 a marker is added, so every run stays distinguishable.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
MAX_LEGEND = 60


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


def legend(fig: Figure, handles: list[Any], labels: list[str]) -> None:
    """One legend for the whole figure, outside the axes on the right, so it never hides data.

    Past MAX_LEGEND runs only the first are named (the title says so): hundreds of entries
    would take over the figure and no reader could match them to lines anyway."""
    if not handles:
        return
    count = len(handles)
    title = f"{count} run{'s' * (count != 1)}" if count <= MAX_LEGEND else f"first {MAX_LEGEND} of {count} runs"
    shown = min(count, MAX_LEGEND)
    fig.legend(handles[:shown], labels[:shown], loc="outside right upper", fontsize="small",
               ncols=math.ceil(shown / 30), title=title, frameon=False)
