"""gitexp.plot and `git exp plot`: checked through the Figure (axes, lines, labels, legend), and the
written files checked to be real PNG, SVG and PDF."""

from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

import gitexp
from gitexp.cli.main import main
from gitexp.errors import GitexpError
from gitexp.views.charts import log_scale
from gitexp.views.figures import LABEL_MAX, LINESTYLES, MAX_LEGEND, PALETTE, legend, new_figure, style
from gitexp.views.plots import MAX_POINTS, decimate, moving_average
from tests.conftest import git
from tests.sample_runs import QUIET, Sample, sample_runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sample(repo: Path) -> Sample:
    return sample_runs(repo, git(repo, "rev-parse", "HEAD").strip())


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- metric curves ------------------------------------------------------------------------------


def test_one_panel_per_metric_one_line_per_run(sample: Sample) -> None:
    fig = gitexp.plot(["loss", "val/acc"])
    assert isinstance(fig, Figure)
    loss, acc = fig.axes
    assert len(loss.lines) == 4  # every run has loss
    assert len(acc.lines) == 2  # only baseline and wide have val/acc
    assert (loss.get_title(), loss.get_ylabel(), loss.get_xlabel()) == ("loss", "loss", "step")
    assert (acc.get_title(), acc.get_ylabel()) == ("val/acc", "val/acc")
    assert legend_texts(fig) == ["broken", "rnn", "wide", "baseline"]  # newest first, one entry per run
    assert fig.legends[0].get_title().get_text() == "4 runs"
    wide = next(line for line in loss.lines if line.get_label() == "wide")
    assert list(wide.get_xdata()) == [0, 1, 2, 3, 4]
    assert list(wide.get_ydata()) == pytest.approx([1.0, 0.775, 0.55, 0.325, 0.1])
    # The same run has the same colour in every panel; runs have distinct colours.
    colours = {line.get_label(): line.get_color() for line in loss.lines}
    assert {line.get_label(): line.get_color() for line in acc.lines} == {k: colours[k] for k in ("wide", "baseline")}
    assert len(set(colours.values())) == 4 and set(colours.values()) <= set(PALETTE)


def test_runs_and_where_select_lines(sample: Sample) -> None:
    fig = gitexp.plot("loss", runs=["baseline", "rnn"])
    assert legend_texts(fig) == ["baseline", "rnn"]
    fig = gitexp.plot("metrics.loss", where="experiment = cnn and status = FINISHED")
    assert [line.get_label() for line in fig.axes[0].lines] == ["wide", "baseline"]
    rnn = gitexp.plot("loss", runs=["rnn"]).axes[0].lines[0]
    assert np.isnan(rnn.get_ydata()[1])  # a NaN leaves a gap in the line


def test_x_axes_smoothing_and_log_scale(sample: Sample) -> None:
    fig = gitexp.plot("loss", runs=["wide"], x="time")
    assert fig.axes[0].get_xlabel() == "time (UTC)"
    assert np.asarray(fig.axes[0].lines[0].get_xdata()).dtype.kind == "M"  # datetime64
    fig = gitexp.plot("loss", runs=["wide"], x="relative")
    xs = np.asarray(fig.axes[0].lines[0].get_xdata())
    assert fig.axes[0].get_xlabel() == "time since run start (s)"
    assert (xs >= 0).all() and (np.diff(xs) >= 0).all()
    fig = gitexp.plot("loss", runs=["wide"], smooth=2, log_y=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "loss (moving average of 2 points)"
    assert list(ax.lines[0].get_ydata()) == pytest.approx([1.0, 0.8875, 0.6625, 0.4375, 0.2125])


def test_system_metrics_are_plotted_like_any_other(repo: Path) -> None:
    with gitexp.start_run(name="gpu-run", **QUIET) as run:
        for step in range(3):
            run.log_metric("system/gpu0/util", 50.0 + step, step=step)
    fig = gitexp.plot("system/gpu0/util")
    assert fig.axes[0].get_title() == "system/gpu0/util"
    assert list(fig.axes[0].lines[0].get_ydata()) == [50.0, 51.0, 52.0]


def test_plot_arguments_split_into_metrics_and_runs_as_every_runs_metrics_say(repo: Path) -> None:
    """`git exp plot M... RUN...`: an item is a metric when some run has it. Told from the listing
    rows (reading each run's metrics took 5 s and 900 MB at 100,000 runs), and from the runs
    themselves for system metrics, which rows leave out."""
    from gitexp.store.runs import load_runs
    from gitexp.views.plots import split_metrics_and_runs

    with gitexp.start_run(name="a", **QUIET) as run:
        run.log_metric("loss", 1.0)
        run.log_metric("system/gpu0/util", 50.0)
    with gitexp.start_run(name="b", **QUIET) as run:
        run.log_metric("val/acc", 0.5)
    for _ in range(3):
        with gitexp.start_run(name="other", **QUIET) as run:
            run.log_metric("loss", 2.0)
    load_runs()
    for items in (["loss", "val/acc", "a", "b"], ["val/acc", "system/gpu0/util", "b"], ["loss", "metrics.val/acc"],
                  ["loss", "nothing", "loss"], ["a"]):
        records = load_runs()
        every = {key for record in load_runs() for key in record.metrics}
        split = next((i for i, item in enumerate(items) if i and item.removeprefix("metrics.") not in every),
                     len(items))
        assert split_metrics_and_runs(items, records) == (items[:split], items[split:]), items
        if "system/gpu0/util" not in items:
            assert all(r.listing_row is not None for r in records), "a run's metrics were read"
    # split_items (`git exp plot`): the same split, from the metric keys of the listing `git exp ls` kept.
    from gitexp.store.runcache import CACHE_FILE
    from gitexp.views.plots import split_items

    with gitexp.start_run(name="c", experiment="other", **QUIET) as run:
        run.log_metric("train/acc", 0.1)
    for kept in (False, True):
        if kept:
            assert main(["ls"]) == 0
        for items in (["loss", "val/acc", "a"], ["loss", "train/acc", "b"], ["val/acc", "system/gpu0/util", "b"],
                      ["loss", "metrics.val/acc", "nothing"], ["x"], []):
            for experiment in (None, "other"):
                assert split_items(items, experiment) == split_metrics_and_runs(items, load_runs(
                    experiment=experiment)), (kept, items, experiment)
    # A run live here may have logged a key that no commit holds yet: a metric all the same.
    with gitexp.start_run(name="live", **QUIET) as run:
        run.log_metric("fresh/key", 1.0)
        run.flush_journal()
        assert split_items(["loss", "fresh/key", "a"]) == (["loss", "fresh/key"], ["a"])
    (repo / ".git" / CACHE_FILE).unlink()
    assert split_items(["loss", "val/acc", "a"]) == (["loss", "val/acc"], ["a"])
    assert not (repo / ".git" / CACHE_FILE).exists(), "every run was loaded"


def test_more_runs_than_colours_change_the_line_style(repo: Path) -> None:
    assert style(0) == {"color": PALETTE[0], "linestyle": "-"}
    assert style(8) == {"color": PALETTE[0], "linestyle": "--"}
    assert "marker" in style(32) and "marker" not in style(31)
    styles = {(style(i)["color"], style(i)["linestyle"], style(i).get("marker")) for i in range(40)}
    assert len(styles) == 40  # every run distinguishable
    for i in range(10):
        with gitexp.start_run(name=f"r{i}", capture_env=False, capture_code=False, **QUIET) as run:
            run.log_metric("loss", float(i), step=0)
            run.log_metric("loss", float(i) / 2, step=1)
    lines = gitexp.plot("loss").axes[0].lines
    assert len(lines) == 10
    assert {line.get_linestyle() for line in lines} == {"-", "--"}
    assert len({(line.get_color(), line.get_linestyle()) for line in lines}) == 10
    assert LINESTYLES[0] == "-"


def test_legend_names_at_most_max_legend_runs() -> None:
    fig = new_figure(6, 4)
    ax = fig.subplots()
    lines = [ax.plot([0, 1], [i, i])[0] for i in range(MAX_LEGEND + 5)]
    legend(fig, lines, [f"run {i}" for i in range(len(lines))])
    assert len(legend_texts(fig)) == MAX_LEGEND
    assert fig.legends[0].get_title().get_text() == f"first {MAX_LEGEND} of {MAX_LEGEND + 5} runs (5 not named)"


def outside_figure(fig: Figure) -> list[str]:
    """The legend parts (the legend, its title, each entry's text and line) drawn, at 100 and at
    300 dpi, not wholly inside the figure."""
    out = []
    for dpi in (100, 300):
        fig.set_dpi(dpi)
        fig.canvas.draw()
        box = fig.bbox
        for legend_ in fig.legends:
            parts = [("legend", legend_), ("title", legend_.get_title()),
                     *((t.get_text(), t) for t in legend_.get_texts()),
                     *((f"line {i}", h) for i, h in enumerate(legend_.legend_handles))]
            for name, artist in parts:
                extent = artist.get_window_extent()
                if not (extent.x0 >= box.x0 - 0.5 and extent.y0 >= box.y0 - 0.5 and extent.x1 <= box.x1 + 0.5
                        and extent.y1 <= box.y1 + 0.5):
                    out.append(f"{name} at {dpi} dpi")
    return out


def test_legend_shows_every_run_it_names_inside_the_figure(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: with 22 runs the legend said "22 runs" and showed 18, the rest below the
    figure's edge. Every entry lies inside the figure at any count up to MAX_LEGEND, and past it
    the title says how many runs it does not name."""
    names = [f"lr-{0.01 * 1.1 ** i:.3g}-seed{i}" for i in range(MAX_LEGEND + 1)]
    for i, name in enumerate(names):
        with gitexp.start_run(name=name, params={"lr": 0.01 * 1.1 ** i}, capture_env=False, capture_code=False,
                              **QUIET) as run:
            run.log_metric("loss", 1.0 / (i + 1), step=0)
            run.log_metric("loss", 0.5 / (i + 1), step=1)
    for count in (1, 22, 40, MAX_LEGEND, MAX_LEGEND + 1):
        for fig in (gitexp.plot("loss", runs=names[:count]), gitexp.plot(scatter=["lr", "loss"], runs=names[:count])):
            assert len(fig.legends) == 1
            shown = legend_texts(fig)
            assert len(shown) == min(count, MAX_LEGEND)
            title = fig.legends[0].get_title().get_text()
            assert title == (f"{count} run{'s' * (count > 1)}" if count <= MAX_LEGEND
                             else f"first {MAX_LEGEND} of {count} runs (1 not named)")
            assert outside_figure(fig) == [], (count, outside_figure(fig))
    target = repo.parent / "loss.png"
    code, out, err = cli(capsys, "plot", "loss", *names[:22], "-o", str(target))
    assert (code, out, err) == (0, f"{target}\n", "")
    assert imread(target).shape[0] > 3.6 * 110  # taller than the one-panel figure, to hold 22 entries


def test_legend_fits_long_names_and_many_columns() -> None:
    for width, height in ((9.5, 3.6), (8.5, 5.0), (4.0, 3.0)):
        fig = new_figure(width, height)
        ax = fig.subplots()
        lines = [ax.plot([0, 1], [i, i], **style(i))[0] for i in range(MAX_LEGEND)]
        legend(fig, lines, [f"{'a-very-long-run-name-' * 5}{i}@{i:07x}" for i in range(MAX_LEGEND)])
        assert outside_figure(fig) == []
        assert all(len(t) <= LABEL_MAX for t in legend_texts(fig))
        assert legend_texts(fig)[3].startswith("a-very-long-run-name-") and legend_texts(fig)[3].endswith("@0000003")
        assert ax.get_window_extent().width > 0.5 * width * fig.dpi  # the axes keep their room: the figure widens


def test_text_with_dollars_is_drawn_as_it_is(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: matplotlib reads text between two dollars as TeX, and a run named `cost $a^{$ x`
    made `git exp plot` fail with a traceback (ParseSyntaxException)."""
    name, key = "cost $a^{$ x", "$loss$"
    with gitexp.start_run(name=name, params={"$lr": 0.1}, capture_env=False, capture_code=False, **QUIET) as run:
        run.log_metric(key, 1.0, step=0)
        run.log_metric(key, 0.5, step=1)
    quoted, lr = f"metrics.`{key}`", "params.`$lr`"  # field names outside [A-Za-z0-9_./-] take backquotes
    for option in ([key], ["--bar", quoted], ["--scatter", lr, quoted], ["--parallel", lr, quoted]):
        target = tmp_path / "dollars.png"
        code, out, err = cli(capsys, "plot", *option, "-o", str(target))
        assert (code, out, err) == (0, f"{target}\n", ""), option
    fig = gitexp.plot(key)
    fig.canvas.draw()
    texts = [t for t in fig.legends[0].get_texts()]
    assert [t.get_text() for t in texts] == [name.replace("$", r"\$")]
    assert fig.axes[0].get_title() == r"\$loss\$"  # what matplotlib draws as $loss$


def test_long_histories_are_decimated_keeping_extremes() -> None:
    xs = np.arange(100_000, dtype=float)
    ys = np.sin(xs / 1000)
    ys[12_345] = 50.0  # a spike must survive
    ys[54_321] = np.nan
    dx, dy = decimate(xs, ys, MAX_POINTS)
    assert len(dx) <= MAX_POINTS + 2
    assert dx[0] == 0 and dx[-1] == 99_999 and (np.diff(dx) > 0).all()
    assert np.nanmax(dy) == 50.0 and np.nanmin(dy) == pytest.approx(-1.0, abs=1e-4)
    short = np.arange(5.0)
    assert decimate(short, short, MAX_POINTS)[0] is short


def test_a_plot_of_a_long_history_says_how_many_points_it_draws(repo: Path) -> None:
    with gitexp.start_run(name="long", system_metrics_interval=0) as run:
        for step in range(5000):
            run.log_metric("loss", 1.0 if step != 4321 else 99.0, step=step)  # one spike
    ax = gitexp.plot("loss").axes[0]
    shown = len(ax.lines[0].get_xdata())
    assert shown <= MAX_POINTS and max(ax.lines[0].get_ydata()) == 99.0
    assert ax.get_title() == f"loss ({shown:,} of 5,000 points drawn: every bucket's min and max kept)"


def test_moving_average_skips_nan() -> None:
    values = np.array([1.0, 3.0, np.nan, 5.0, np.inf])
    assert list(moving_average(np.where(np.isfinite(values), values, np.nan), 2)) == pytest.approx(
        [1.0, 2.0, 3.0, 5.0, 5.0])
    assert np.isnan(moving_average(np.array([np.nan, np.nan]), 3)).all()


# -- one value per run ------------------------------------------------------------------------


def test_scatter(sample: Sample) -> None:
    fig = gitexp.plot(scatter=["lr", "loss"])
    ax = fig.axes[0]
    assert len(ax.collections) == 4  # one point per run
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("lr", "loss", "loss by lr")
    assert ax.get_xscale() == "log"  # lr spans 0.001 .. 1: decades
    assert sorted(legend_texts(fig)) == ["baseline", "broken", "rnn", "wide"]
    fig = gitexp.plot(scatter=["params.model.act", "metrics.val/acc.max"])
    ax = fig.axes[0]
    assert len(ax.collections) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["relu"]


def test_parallel_coordinates(sample: Sample) -> None:
    fig = gitexp.plot(parallel=["lr", "model.layers", "val/acc"])
    ax, colourbar = fig.axes
    assert len(ax.lines) == 2  # runs that have all three
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lr", "model.layers", "val/acc"]
    assert colourbar.get_ylabel() == "val/acc"
    assert ax.get_title() == "parallel coordinates: lr, model.layers -> val/acc"
    # Each axis is scaled to [0, 1]; wide has the larger lr, layers and val/acc.
    wide = next(line for line in ax.lines if line.get_label() == "wide")
    assert list(wide.get_ydata()) == [1.0, 1.0, 1.0]


def test_one_log_rule_for_every_chart() -> None:
    assert log_scale([0.01, 0.1, 3.0]) and log_scale([None, 0.01, float("nan"), 1.0, float("inf")])
    assert not log_scale([0.01, 0.5])  # under two decades
    assert not log_scale([0.0, 1.0, 100.0]) and not log_scale([-1.0, 0.01, 10.0])  # zero or negative: no log
    assert not log_scale([5.0]) and not log_scale([]) and not log_scale([None, 2.0])


def log_spaced_sweep() -> dict[float, float]:
    """lr 0.01 .. 3 (log-spaced, as sweeps are) -> loss 0.002 .. 0.9; one run each."""
    sweep = {0.01: 0.9, 0.02: 0.5, 0.05: 0.2, 0.1: 0.05, 0.3: 0.01, 1.0: 0.004, 3.0: 0.002}
    for lr, loss in sweep.items():
        with gitexp.start_run(name=f"lr-{lr}", params={"lr": lr, "batch": 32 if lr < 0.1 else 64},
                              capture_env=False, capture_code=False, **QUIET) as run:
            run.log_metric("loss", loss)
    return sweep


def test_parallel_uses_the_log_rule(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: the parallel-coordinates plot drew lr 0.01..3 on a linear axis, where every run
    under lr 0.3 sat within 10% of the bottom; the scatter plot already used a log axis."""
    sweep = log_spaced_sweep()
    fig = gitexp.plot(parallel=["lr", "batch", "loss"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["lr (log)", "batch", "loss (log)"]
    span = math.log10(3.0) - math.log10(0.01)
    for line in ax.lines:
        lr = float(line.get_label().removeprefix("lr-"))
        assert line.get_ydata()[0] == pytest.approx((math.log10(lr) - math.log10(0.01)) / span)
        assert line.get_ydata()[1] in (0.0, 1.0)  # batch: 32 or 64, one octave: linear
    labels = {t.get_text() for t in ax.texts}  # the ticks name the real values
    assert {"0.01", "0.1", "1", "3", "32", "64", "0.002", "0.9"} <= labels
    assert fig.axes[1].get_yscale() == "log"  # the colour bar follows its axis
    # Through the command line: the SVG names its texts in comments.
    target = tmp_path / "parallel.svg"
    code, out, err = cli(capsys, "plot", "--parallel", "lr", "batch", "loss", "-o", str(target))
    assert (code, out, err) == (0, f"{target}\n", "")
    svg = target.read_text()
    assert "<!-- lr (log) -->" in svg and "<!-- 0.1 -->" in svg and "<!-- loss (log) -->" in svg
    assert len(sweep) == len(ax.lines)


def test_scatter_and_bar_use_the_log_rule(repo: Path) -> None:
    log_spaced_sweep()
    ax = gitexp.plot(scatter=["lr", "loss"]).axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    ax = gitexp.plot(scatter=["batch", "loss"]).axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("linear", "log")
    ax = gitexp.plot(bar="loss").axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "loss (log scale)"
    assert [patch.get_x() for patch in ax.patches] == [0.001] * 7  # from the power of ten below the least
    assert [patch.get_x() + patch.get_width() for patch in ax.patches] == pytest.approx(
        [0.9, 0.5, 0.2, 0.05, 0.01, 0.004, 0.002])


def test_bar(sample: Sample) -> None:
    fig = gitexp.plot(bar="loss")
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_yticklabels()] == ["broken", "rnn", "baseline", "wide"]  # highest first
    assert (ax.get_xlabel(), ax.get_title(), ax.get_xscale()) == ("loss", "loss by run", "linear")  # 0.1 .. 5


def test_plot_errors_say_what_to_do(sample: Sample, tmp_path: Path) -> None:
    with pytest.raises(GitexpError, match=r"has a metric 'nope'; they have: acc\.max, loss, val/acc"):
        gitexp.plot("nope")
    with pytest.raises(GitexpError, match="give exactly one of"):
        gitexp.plot("loss", bar="loss")
    with pytest.raises(GitexpError, match="give exactly one of"):
        gitexp.plot()
    with pytest.raises(GitexpError, match=r"suffixes \.png, \.svg, \.pdf"):
        gitexp.plot("loss", output=tmp_path / "plot.jpg")
    with pytest.raises(GitexpError, match="no runs to plot match --where"):
        gitexp.plot("loss", where="params.lr > 100")
    with pytest.raises(GitexpError, match="unknown x axis 'epoch'"):
        gitexp.plot("loss", x="epoch")
    with pytest.raises(GitexpError, match="--scatter takes a PARAM and a METRIC"):
        gitexp.plot(scatter=["lr"])
    with pytest.raises(GitexpError, match="none of the 4 selected run"):
        gitexp.plot(parallel=["nothing", "loss"])


# -- files and the command line ----------------------------------------------------------------


def test_written_files_are_valid_png_svg_pdf(sample: Sample, tmp_path: Path) -> None:
    png, svg, pdf = tmp_path / "a.png", tmp_path / "b.SVG", tmp_path / "c.pdf"
    gitexp.plot("loss", output=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
    gitexp.plot(bar="loss", output=svg)
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    gitexp.plot(parallel=["lr", "loss"], output=pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_cli_plot(sample: Sample, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "curves.png"
    code, out, err = cli(capsys, "plot", "loss", "val/acc", "baseline", "wide", "-o", str(out_file),
                         "--smooth", "2", "--x", "relative", "--log-y")
    assert (code, err, out) == (0, "", f"{out_file}\n")
    assert imread(out_file).ndim == 3
    code, out, _ = cli(capsys, "plot", "loss", "--where", "experiment = rnn", "-o", str(tmp_path / "r.svg"))
    assert code == 0 and ET.parse(tmp_path / "r.svg").getroot().tag.endswith("svg")
    for option in (["--scatter", "lr", "loss"], ["--parallel", "lr", "model.layers", "loss"], ["--bar", "loss"]):
        target = tmp_path / f"{option[0].strip('-')}.pdf"
        code, out, err = cli(capsys, "plot", *option, "-o", str(target))
        assert (code, err) == (0, ""), option
        assert target.read_bytes()[:4] == b"%PDF"
    code, out, err = cli(capsys, "plot", "loss", "nosuchrun", "-o", str(tmp_path / "x.png"))
    assert code == 1 and "no run matches 'nosuchrun'" in err
    code, out, err = cli(capsys, "plot", "loss", "-o", str(tmp_path / "x.gif"))
    assert code == 1 and "cannot tell which image format" in err


def test_import_gitexp_does_not_import_matplotlib(env_for_subprocess: dict[str, str]) -> None:
    code = "import sys, gitexp; gitexp.search_runs; print('matplotlib' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=env_for_subprocess).stdout
    assert out.split() == ["False", "False"]
