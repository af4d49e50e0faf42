#!/usr/bin/env python
"""Benchmarks of comparing runs (query, plots), with MLflow's search_runs as the anchor.

    python benchmarks/bench_compare.py            # 10,000 runs; a few minutes once fixtures exist
    python benchmarks/bench_compare.py --quick    # 1,000 runs

Prints one table: benchmark | gitexp | MLflow (anchor) | target | ok?

The run fixtures (10,000 runs in a gitexp repository and in an MLflow sqlite store, the same
params and metrics) are bench_core.py's, built and cached by its functions under
benchmarks/.cache/. The plot fixture (50 runs x 10,000 steps of one metric) is cached there
too. Every measurement runs in a fresh process; whole-process timings alternate gitexp and
MLflow so both see the same machine load. gitexp is imported from this checkout (PYTHONPATH),
whatever `pip` has installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import bench_core as core  # noqa: E402  (needs the path above)

MLFLOW_SIDE = HERE / "mlflow_compare_side.py"
# The same question to both tools: the fixture's lr is the float 0.01 in gitexp and the string
# '0.01' in MLflow (MLflow params are strings); acc's last value is 0.9 + i * 1e-6 for run i.
WHERE, SORT = "params.lr = 0.01 and metrics.acc > 0.905", "-metrics.acc"
MLFLOW_FILTER, MLFLOW_ORDER = "params.lr = '0.01' and metrics.acc > 0.905", ["metrics.acc DESC"]
PLOT_RUNS, PLOT_STEPS = 50, 10_000
FULL = {"runs": 10_000, "reps": 5, "mlflow_fallback": 2000, "mlflow_budget_s": 900.0, "plot_reps": 3}
QUICK = {"runs": 1000, "reps": 3, "mlflow_fallback": 500, "mlflow_budget_s": 120.0, "plot_reps": 2}


# -- workers (fresh processes) -------------------------------------------------------------------


def worker_search(args: dict[str, Any]) -> dict[str, Any]:
    import gitexp
    from gitexp.git.repo import Repo

    Repo.discover(args["repo"])
    gitexp.load_runs(args["repo"])  # the cache is warm, as after any earlier `git exp ls`
    t0 = time.perf_counter()
    gitexp.load_runs(args["repo"])
    loading = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = gitexp.search_runs(WHERE, SORT, repo=args["repo"])
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "load_runs_s": loading, "rows": len(records)}


def worker_plot(args: dict[str, Any]) -> dict[str, Any]:
    """plot() of one metric over every run to a PNG, matplotlib imported before the clock starts."""
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    import gitexp

    records = gitexp.load_runs(args["repo"])
    t0 = time.perf_counter()
    for record in records:
        record.history("loss")
    histories = time.perf_counter() - t0
    t0 = time.perf_counter()
    fig = gitexp.plot("loss", runs=records, output=args["output"])
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "histories_s": histories, "lines": len(fig.axes[0].lines)}


WORKERS = {"search": worker_search, "plot": worker_plot}


def worker(name: str, args: dict[str, Any]) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(args)]
    return core.run_json(argv, f"worker {name}")


# -- the plot fixture -------------------------------------------------------------------------


def cached_plot_fixture() -> Path:
    final = core.CACHE / f"plot-{core.gitexp_version_key()}-{PLOT_RUNS}x{PLOT_STEPS}"
    if (final / "fixture.json").exists():
        return final / "repo"
    core.log(f"building the plot fixture: {PLOT_RUNS} runs x {PLOT_STEPS:,} steps (cached in {final})")
    import gitexp

    tmp = core.CACHE / f"tmp-plot-{os.getpid()}"
    repo = core.make_code_repo(tmp / "repo", dirty=False)
    for i in range(PLOT_RUNS):
        with gitexp.start_run(name=f"run-{i:02d}", params={"lr": 10 ** -(1 + i % 4)}, repo=repo,
                              capture_env=False, capture_code=False, system_metrics_interval=0) as run:
            log = run.log_metric
            for step in range(PLOT_STEPS):  # a noisy decaying loss: not a line matplotlib can simplify away
                log("loss", math.exp(-step / 2500) * (1 + 0.05 * math.sin(step * 0.7 + i)) + i * 0.002, step=step)
    gitexp.flush()  # the runs' notes, before the repository moves
    (tmp / "fixture.json").write_text(json.dumps({"runs": PLOT_RUNS, "steps": PLOT_STEPS}))
    tmp.rename(final)
    return final / "repo"


# -- the benchmarks ---------------------------------------------------------------------------


def bench_query(cfg: dict[str, Any], work: Path, mlflow: Path | None, version: str,
                rows: list[list[str]], notes: list[str]) -> None:
    n, reps = cfg["runs"], cfg["reps"]
    repo = cfg["fixture"] or core.cached_gitexp_fixture(n)[0]
    inproc = worker("search", {"repo": str(repo)})
    ls = [sys.executable, "-m", "gitexp", "ls", "--where", WHERE, "--sort", SORT]
    notes.append(f"query: gitexp `--where \"{WHERE}\" --sort {SORT}`; MLflow filter_string=\"{MLFLOW_FILTER}\", "
                 f"order_by={MLFLOW_ORDER}; gitexp found {inproc['rows']:,} of {n:,} runs")
    notes.append(f"search_runs in-process: load_runs() alone (warm cache, runs.py) takes {inproc['load_runs_s']:.3f} s "
                 f"of its {inproc['seconds']:.3f} s; the filter and sort the rest")
    m_whole = m_inproc = "n/a"
    if mlflow is not None:
        uri, minfo = core.cached_mlflow_fixture(mlflow, version, n, cfg["mlflow_fallback"], cfg["mlflow_budget_s"])
        args = {"uri": uri, "filter": MLFLOW_FILTER, "order_by": MLFLOW_ORDER}
        out = core.run_json([str(mlflow), str(MLFLOW_SIDE), "search_filtered", json.dumps(args)], "mlflow search")
        notes.append(f"MLflow {version} found {out['rows']:,} of {minfo['runs']:,} runs (sqlite store)")
        once = [str(mlflow), str(MLFLOW_SIDE), "search_filtered_once", json.dumps(args)]
        g_whole, m_s = core.paired_medians(ls, once, reps, cwd=repo)
        m_whole = f"{core.secs(m_s)} (search_runs, whole process)"
        m_inproc = f"{core.secs(out['second_s'])} (search_runs, 2nd call)"
    else:
        g_whole = core.median_wall(ls, reps, cwd=repo)[0]
    rows.append([f"`git exp ls --where ... --sort ...` over {n:,} runs, whole process, warm (median of {reps})",
                 core.secs(g_whole), m_whole, "≤ 0.3 s", core.ok(g_whole <= 0.3)])
    rows.append([f"search_runs(where, order_by) over {n:,} runs, in-process, warm cache",
                 core.secs(inproc["seconds"]), m_inproc, "—", "-"])


def bench_plot(cfg: dict[str, Any], work: Path, rows: list[list[str]], notes: list[str]) -> None:
    repo = cached_plot_fixture()
    results = [worker("plot", {"repo": str(repo), "output": str(work / f"p{i}.png")})
               for i in range(cfg["plot_reps"])]
    seconds = statistics.median(r["seconds"] for r in results)
    histories = statistics.median(r["histories_s"] for r in results)
    if any(r["lines"] != PLOT_RUNS for r in results):
        raise RuntimeError(f"the plot has {results[0]['lines']} lines, expected {PLOT_RUNS}")
    notes.append(f"plot: reading the {PLOT_RUNS} histories (record.history: parsed once, then from the "
                 f"history cache by blob id) alone takes "
                 f"{histories:.2f} s of the in-process time; matplotlib's import is not counted in-process")
    rows.append([f"gitexp.plot() of {PLOT_RUNS} runs x {PLOT_STEPS:,} steps to PNG, in-process "
                 f"(median of {cfg['plot_reps']})", core.secs(seconds), "n/a (no plotting API)", "≤ 2 s",
                 core.ok(seconds <= 2)])
    argv = [sys.executable, "-m", "gitexp", "plot", "loss", "-o", str(work / "whole.png")]
    whole = core.median_wall(argv, cfg["plot_reps"], cwd=repo)[0]
    rows.append([f"`git exp plot loss -o f.png`, {PLOT_RUNS} x {PLOT_STEPS:,}, whole process", core.secs(whole),
                 "n/a", "—", "-"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs instead of 10,000")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow anchor column")
    parser.add_argument("--json", type=Path, help="also write the rows and notes to this file")
    parser.add_argument("--fixture", type=Path, metavar="REPO",
                        help="an existing bench_core fixture repository to query (skips building one; "
                             "its key changes with every edit of gitexp's format code)")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "ARGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(WORKERS[args.worker[0]](json.loads(args.worker[1]))), flush=True)
        return 0
    cfg = {**(QUICK if args.quick else FULL), "fixture": args.fixture}
    started = time.perf_counter()
    core.CACHE.mkdir(exist_ok=True)
    rows: list[list[str]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-compare-") as tmp:
        work = Path(tmp)
        core.isolate(work / "home")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        mlflow, version = (None, "skipped") if args.no_mlflow else core.ensure_mlflow(allow_install=False)
        if mlflow is None:
            notes.append(f"MLflow unavailable: {version}")
        for label, run in (("query", lambda: bench_query(cfg, work, mlflow, version, rows, notes)),
                           ("plot", lambda: bench_plot(cfg, work, rows, notes))):
            core.log(label)
            try:
                run()
            except Exception as exc:  # report the failure in the table, measure the rest
                rows.append([label, core.error_cell(exc), "", "", "?"])
                core.log(f"{label} failed: {exc}")
    from tabulate import tabulate

    print(tabulate(rows, headers=["benchmark", "gitexp", "MLflow (anchor)", "target", "ok?"], tablefmt="github",
                   disable_numparse=True))
    print()
    print(f"{'quick' if args.quick else 'full'} mode; gitexp {core.source_state()}; MLflow {version}; "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; total {time.perf_counter() - started:.0f} s")
    for note in notes:
        print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
