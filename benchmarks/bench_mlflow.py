#!/usr/bin/env python
"""The MLflow drop-in against MLflow itself: one training script, two imports, side by side.

    python benchmarks/bench_mlflow.py            # full: 5 timed runs of each, ~2 minutes
    python benchmarks/bench_mlflow.py --quick    # 3 runs of each and a smaller loop

The script (SCRIPT below) is typical MLflow code: set_experiment, start_run, log_params, a loop
of log_metric/log_metrics calls, a dict and a text artifact. It runs with real MLflow in
benchmarks/.venv-mlflow (the virtualenv bench_core.py builds; file store and sqlite) and with
`import gitexp.mlflow as mlflow` in a git repository, alternately so that both see the same
machine load. The script times its own logging part; the whole process is timed from outside.

Then log_metric alone, µs per call in batches of 1000 (median over batches), for the drop-in's
mlflow.log_metric and gitexp's own Run.log_metric, each in a fresh process: the drop-in must
cost the same as gitexp (target ≤ 3 µs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core as core  # noqa: E402  (the MLflow virtualenv, isolation and timing helpers)

SCRIPT = '''
import json, sys, time
t0 = time.perf_counter()
import mlflow

t1 = time.perf_counter()
mlflow.set_experiment("bench-script")
with mlflow.start_run(run_name="train"):
    mlflow.log_params({"lr": 0.01, "batch_size": 64, "optimizer": "adam", "epochs": EPOCHS})
    for epoch in range(EPOCHS):
        for step in range(STEPS):
            mlflow.log_metric("loss", 1.0 / (epoch * STEPS + step + 1), step=epoch * STEPS + step)
        mlflow.log_metrics({"val/loss": 0.5 / (epoch + 1), "val/acc": epoch / EPOCHS}, step=epoch)
    mlflow.set_tags({"dataset": "synthetic", "model": "mlp"})
    mlflow.log_dict({"layers": [64, 64], "activation": "relu"}, "config.json")
    mlflow.log_text("final notes\\n", "notes.txt")
t2 = time.perf_counter()
print("TIMING " + json.dumps({"import_s": t1 - t0, "logging_s": t2 - t1}))
'''

FULL = {"epochs": 20, "steps": 50, "reps": 5, "calls": 100_000}
QUICK = {"epochs": 10, "steps": 20, "reps": 3, "calls": 20_000}


def script(cfg: dict[str, Any], drop_in: bool) -> str:
    text = SCRIPT.replace("EPOCHS", str(cfg["epochs"])).replace("STEPS", str(cfg["steps"]))
    return text.replace("import mlflow\n", "import gitexp.mlflow as mlflow\n") if drop_in else text


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900)
    total = time.perf_counter() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith("TIMING ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {**json.loads(line[len("TIMING "):]), "process_s": total}


def worker(kind: str, calls: int) -> dict[str, Any]:
    """µs per log_metric call, median over batches of 1000, in this (fresh) process."""
    if kind == "dropin":
        import gitexp.mlflow as mlflow

        mlflow.start_run(run_name="bench-dropin")
        log_metric = mlflow.log_metric
    else:
        import gitexp

        log_metric = gitexp.start_run(name="bench-gitexp").log_metric
    per_call = []
    for b in range(calls // 1000):
        t0 = time.perf_counter_ns()
        for i in range(b * 1000, b * 1000 + 1000):
            log_metric("loss", float(i), step=i)
        per_call.append((time.perf_counter_ns() - t0) / 1000 / 1000)
    if kind == "dropin":
        mlflow.end_run()
    else:
        gitexp.end_run()
    return {"median_us": statistics.median(per_call), "p90_us": sorted(per_call)[int(len(per_call) * 0.9)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of each and a smaller loop")
    parser.add_argument("--no-install", action="store_true", help="do not create the MLflow virtualenv")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker[0], int(args.worker[1]))), flush=True)
        return 0
    cfg = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-mlflow-") as tmp:
        work = Path(tmp)
        core.isolate(work / "home")
        python, version = core.ensure_mlflow(allow_install=not args.no_install)
        repo = core.make_code_repo(work / "project")
        core.git(repo, "config", "exp.systemMetricsInterval", "0")  # as MLflow: no system metrics
        (repo / "train_mlflow.py").write_text(script(cfg, drop_in=False))
        (repo / "train_dropin.py").write_text(script(cfg, drop_in=True))
        env = dict(os.environ)
        stores = {"file": (work / "mlruns").as_uri(), "sqlite": f"sqlite:///{work / 'mlflow.db'}"}
        samples: dict[str, list[dict[str, float]]] = {"dropin": [], "file": [], "sqlite": []}
        if python is None:
            core.log(f"MLflow unavailable ({version}): timing the drop-in only")
            stores = {}
        for uri in stores.values():  # untimed warm-up: creates the store (sqlite: migrations)
            timed([str(python), "train_mlflow.py"], repo, {**env, "MLFLOW_TRACKING_URI": uri})
        timed([sys.executable, "train_dropin.py"], repo, env)
        for rep in range(cfg["reps"]):
            core.log(f"script run {rep + 1}/{cfg['reps']}")
            samples["dropin"].append(timed([sys.executable, "train_dropin.py"], repo, env))
            for backend, uri in stores.items():
                samples[backend].append(timed([str(python), "train_mlflow.py"], repo,
                                              {**env, "MLFLOW_TRACKING_URI": uri}))
        per_call = {kind: core.run_json([sys.executable, __file__, "--worker", kind, str(cfg["calls"])],
                                        f"log_metric worker {kind}", cwd=repo) for kind in ("dropin", "gitexp")}
    report(cfg, samples, per_call, version if python else None)
    return 0


def report(cfg: dict[str, Any], samples: dict[str, list[dict[str, float]]], per_call: dict[str, Any],
           mlflow_version: str | None) -> None:
    from tabulate import tabulate

    def med(kind: str, key: str) -> str:
        return f"{statistics.median(s[key] for s in samples[kind]):.2f} s" if samples[kind] else "n/a"

    values = cfg["epochs"] * cfg["steps"] + 2 * cfg["epochs"]
    rows = [[f"script: whole process ({values:,} metric values)", med("file", "process_s"),
             med("sqlite", "process_s"), med("dropin", "process_s")],
            ["script: `import mlflow`", med("file", "import_s"), med("sqlite", "import_s"), med("dropin", "import_s")],
            ["script: logging (start_run to end)", med("file", "logging_s"), med("sqlite", "logging_s"),
             med("dropin", "logging_s")]]
    print(tabulate(rows, headers=["benchmark", "MLflow, file store", "MLflow, sqlite", "gitexp.mlflow drop-in"],
                   tablefmt="github", disable_numparse=True))
    print()
    d, g = per_call["dropin"], per_call["gitexp"]
    rows = [["log_metric (µs/call, median of batches of 1000)", f"{d['median_us']:.2f}", f"{g['median_us']:.2f}",
             "≤ 3 µs", "yes" if d["median_us"] <= 3 else "NO"],
            ["log_metric (µs/call, p90 of batches)", f"{d['p90_us']:.2f}", f"{g['p90_us']:.2f}", "", ""]]
    print(tabulate(rows, headers=["benchmark", "drop-in mlflow.log_metric", "gitexp Run.log_metric", "target", "ok?"],
                   tablefmt="github", disable_numparse=True))
    print()
    from importlib import metadata

    print(f"mode: {'quick' if cfg is QUICK else 'full'}, {cfg['reps']} timed runs of each (median); gitexp "
          f"{metadata.version('gitexp')}, MLflow {mlflow_version or 'n/a'}; python {sys.version.split()[0]}; "
          f"{os.cpu_count()} CPUs; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
