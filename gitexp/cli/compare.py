"""Commands that compare runs: diff, compare, best, plot, report (the work lives in the library)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gitexp.cli.options import add_sort

AddCommand = Callable[[str, str], argparse.ArgumentParser]
SELECT_HELP = "runs to use: ids, id prefixes or names (default: every run matching --where)"


def cmd_diff(run_a: str, run_b: str, code: bool, form: str, experiment: str | None) -> int:
    from gitexp.store import runs
    from gitexp.views import diff

    a, b = runs.get_runs([run_a, run_b], experiment=experiment)
    sys.stdout.write(diff.render_diff(diff.diff_runs(a, b, code=code), form))
    return 0


def cmd_compare(runs: list[str], where: str | None, sort: str | None, form: str, precision: int,
                only_changed: bool, experiment: str | None) -> int:
    from gitexp.views import compare, selection

    records = selection.select_runs(runs, where, sort, experiment=experiment)
    if not records:
        print(f"no runs match --where {where!r}" if where else "no runs yet", file=sys.stderr)
        return 0
    sys.stdout.write(compare.render_compare(records, form, precision, only_changed))
    return 0


def cmd_best(metric: str, minimize: bool | None, where: str | None, form: str, experiment: str | None) -> int:
    from gitexp.views import compare, show

    guessed = minimize is None
    minimize = compare.guess_minimize(metric) if minimize is None else minimize
    record = compare.find_best(metric, minimize, where, experiment)
    if record is None:
        print(f"no runs match --where {where!r}" if where else "no runs yet", file=sys.stderr)
        return 1
    if guessed:
        print(f"best = {'lowest' if minimize else 'highest'} {metric} (guessed from the name; "
              f"--{'max' if minimize else 'min'} for the other way)", file=sys.stderr)
    sys.stdout.write(show.render(record, form))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from gitexp.store import runs
    from gitexp.views import plots

    one_value = args.scatter or args.parallel or args.bar
    metrics, names = ([], args.items) if one_value else plots.split_items(args.items, args.experiment)
    plots.plot(metrics or None, runs=runs.get_runs(names, experiment=args.experiment) if names else None,
               where=args.where, x=args.x, smooth=args.smooth, log_y=args.log_y, scatter=args.scatter,
               parallel=args.parallel, bar=args.bar, output=args.output, experiment=args.experiment)
    print(args.output)
    return 0


def cmd_report(runs: list[str], where: str | None, output: str | None, title: str | None,
               experiment: str | None) -> int:
    from gitexp.views import report

    path = report.report(runs, where, output, experiment=experiment, title=title)
    print(path)
    if output is None:  # a place the user did not choose: say how to open it
        print(f"open it in a browser: {path.resolve().as_uri()}", file=sys.stderr)
    return 0


def register(add: AddCommand) -> None:
    p = add("diff", "Show how run B differs from run A: params, metrics, environment, inputs, code.")
    p.add_argument("run_a", metavar="RUN_A", help="the run compared against")
    p.add_argument("run_b", metavar="RUN_B", help="the run whose changes are shown")
    p.add_argument("--code", action="store_true", help="also print the diff between the two code snapshots")
    p.add_argument("--format", "-f", dest="form", default="text", choices=("text", "json"),
                   help="output format; json prints everything as one object")
    p.add_argument("--experiment", "-e", help="look the runs up in this experiment only")
    p.set_defaults(func=lambda a: cmd_diff(a.run_a, a.run_b, a.code, a.form, a.experiment))

    p = add("compare", "Show runs side by side, one column per run: params, metrics, environment.")
    p.add_argument("runs", nargs="*", metavar="RUN", help=SELECT_HELP)
    p.add_argument("--where", "-w", metavar="EXPR", help="only runs matching EXPR (docs/query.md)")
    add_sort(p, "column order, e.g. -metrics.acc")
    p.add_argument("--format", "-f", dest="form", default="table", choices=("table", "csv", "json", "md"),
                   help="output format; csv and json keep ISO times, seconds and full precision")
    p.add_argument("--precision", type=int, default=4, help="significant digits of numbers (default 4)")
    p.add_argument("--only-changed", action="store_true", help="only the rows whose values differ between runs")
    p.add_argument("--experiment", "-e", help="only runs of this experiment")
    p.set_defaults(func=lambda a: cmd_compare(a.runs, a.where, a.sort, a.form, a.precision, a.only_changed,
                                              a.experiment))

    p = add("best", "Show the run with the best value of METRIC, as `show` does.")
    p.add_argument("metric", metavar="METRIC", help="metric key; its last value, or KEY.min / KEY.max")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--min", dest="minimize", action="store_const", const=True,
                           help="lower is better (default for names like loss, error)")
    direction.add_argument("--max", dest="minimize", action="store_const", const=False, help="higher is better")
    p.add_argument("--where", "-w", metavar="EXPR", help="only among runs matching EXPR")
    p.add_argument("--format", "-f", dest="form", default="text", choices=("text", "yaml", "json"),
                   help="output format, as for `git exp show`")
    p.add_argument("--experiment", "-e", help="only among runs of this experiment")
    p.set_defaults(func=lambda a: cmd_best(a.metric, a.minimize, a.where, a.form, a.experiment))

    p = add("plot", "Plot metrics of runs (one line per run, one panel per metric) to a PNG, SVG or PDF file.")
    p.add_argument("items", nargs="*", metavar="METRIC/RUN",
                   help="METRIC... [RUN...]: the metrics to plot, then the runs (default: every run matching --where)")
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="the image; .png, .svg or .pdf")
    p.add_argument("--where", "-w", metavar="EXPR", help="only runs matching EXPR (docs/query.md)")
    p.add_argument("--x", default="step", choices=("step", "time", "relative"),
                   help="x axis: step, time (UTC) or relative (time since the run started)")
    p.add_argument("--smooth", type=int, metavar="N", help="moving average over the last N points")
    p.add_argument("--log-y", action="store_true", help="logarithmic y axis")
    p.add_argument("--scatter", nargs=2, metavar=("PARAM", "METRIC"), help="one point per run")
    p.add_argument("--parallel", nargs="+", metavar="FIELD",
                   help="PARAM... METRIC: parallel coordinates of the params, coloured by the metric")
    p.add_argument("--bar", metavar="METRIC", help="one bar per run")
    p.add_argument("--experiment", "-e", help="only runs of this experiment")
    p.set_defaults(func=cmd_plot)

    p = add("report", "Write one self-contained HTML report of runs: plots, comparison table, params, environment.")
    p.add_argument("runs", nargs="*", metavar="RUN", help=SELECT_HELP)
    p.add_argument("--output", "-o", metavar="FILE",
                   help="the HTML file to write (default: a new file in .git/gitexp/reports/, outside the work tree)")
    p.add_argument("--where", "-w", metavar="EXPR", help="only runs matching EXPR (docs/query.md)")
    p.add_argument("--title", help="the page title (default: gitexp report: N runs)")
    p.add_argument("--experiment", "-e", help="only runs of this experiment")
    p.set_defaults(func=lambda a: cmd_report(a.runs, a.where, a.output, a.title, a.experiment))
