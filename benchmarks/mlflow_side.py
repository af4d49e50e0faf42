"""The MLflow half of bench_core.py: run with the python of benchmarks/.venv-mlflow.

    python mlflow_side.py COMMAND '{"uri": "...", ...}'

Prints one line `RESULT {json}` on stdout. Every Python warning raised while MLflow is
used is collected into the result's "warnings" list (the file store deprecation, notably).
Kept free of gitexp imports: gitexp is not installed in this virtualenv.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings

_caught: list[str] = []


def _showwarning(message, category, filename, lineno, file=None, line=None):
    text = f"{category.__name__}: {message}"
    if text not in _caught:
        _caught.append(text)


warnings.showwarning = _showwarning
warnings.simplefilter("default")


def _setup(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow


def cmd_log_metric(args: dict) -> dict:
    """Median per-call time of mlflow.log_metric in one run."""
    mlflow = _setup(args["uri"])
    mlflow.set_experiment("bench-log-metric")
    n = int(args["n"])
    times = []
    with mlflow.start_run():
        mlflow.log_metric("loss", 0.0, step=0)  # warm-up: creates the metric file / row
        for i in range(1, n + 1):
            t0 = time.perf_counter_ns()
            mlflow.log_metric("loss", float(i), step=i)
            times.append(time.perf_counter_ns() - t0)
    return {"median_us": statistics.median(times) / 1000, "mean_us": statistics.fmean(times) / 1000, "n": n}


def _one_run(mlflow, i: int) -> None:
    mlflow.start_run()
    mlflow.log_params({"lr": 0.01, "batch_size": 32})
    mlflow.log_metric("loss", 0.5, step=0)
    mlflow.log_metric("acc", 0.9, step=0)
    mlflow.end_run()


def cmd_runs(args: dict) -> dict:
    """Mean time of start_run + log_params(2) + log_metric x2 + end_run, after one warm-up run."""
    mlflow = _setup(args["uri"])
    mlflow.set_experiment("bench-runs")
    _one_run(mlflow, -1)
    n = int(args["n"])
    t0 = time.perf_counter()
    for i in range(n):
        _one_run(mlflow, i)
    elapsed = time.perf_counter() - t0
    return {"mean_ms": elapsed / n * 1000, "n": n}


def cmd_populate(args: dict) -> dict:
    """Create runs in bulk with MlflowClient: create_run + log_batch + set_terminated.

    Stops at args["fallback"] runs when the first runs project a total over args["budget_s"].
    """
    _setup(args["uri"])
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args["uri"])
    n, fallback, budget = int(args["n"]), int(args["fallback"]), float(args["budget_s"])
    steps = int(args.get("steps", 10))
    experiments = [client.create_experiment(f"exp{k}") for k in range(int(args.get("experiments", 5)))]
    probe = min(200, n)
    t0 = time.perf_counter()
    created = 0
    target = n
    while created < target:
        i = created
        run = client.create_run(experiments[i % len(experiments)], run_name=f"run-{i}")
        now = int(time.time() * 1000)
        metrics = [Metric("loss", 1.0 / (s + 1) + i * 1e-6, now + s, s) for s in range(steps)]
        metrics += [Metric("acc", s / steps + i * 1e-6, now + s, s) for s in range(steps)]
        params = [Param("lr", str(10 ** -(1 + i % 4))), Param("batch_size", str(2 ** (4 + i % 4))),
                  Param("seed", str(i)), Param("model.layers", str(2 + i % 6)),
                  Param("model.width", str(64 * (1 + i % 3)))]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id)
        created += 1
        if created == probe and n > fallback:
            projected = (time.perf_counter() - t0) / probe * n
            if projected > budget:
                target = fallback
    return {"created": created, "requested": n, "seconds": time.perf_counter() - t0}


def cmd_scale_disk(args: dict) -> dict:
    """Runs shaped as bench_scale's fixture's (scale_fixture.make_runs: 3 experiments, 6 params,
    2 tags, train/loss and val/loss at each of 10 to 100 steps, val/acc at every fifth), or with
    args["shape"] "small" as bench_scale.do_small_runs' (2 params, 2 metrics of one value), in the
    sqlite store at args["db"]; the store's size on disk afterwards."""
    import os

    uri = "sqlite:///" + args["db"]
    _setup(uri)
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [client.create_experiment(name) for name in ("sweep/lr", "sweep/arch", "baseline")]
    n = int(args["n"])
    t0 = time.perf_counter()
    for i in range(n):
        run = client.create_run(experiments[i % len(experiments)], run_name=f"run-{i}")
        now = int(time.time() * 1000)
        if args.get("shape") == "small":
            client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (i + 1), now, 0),
                                                       Metric("acc", 1 - 1.0 / (i + 2), now, 0)],
                             params=[Param("lr", str(10 ** -(1 + i % 4))), Param("batch_size", str(2 ** (4 + i % 4)))])
            client.set_terminated(run.info.run_id)
            continue
        params = {"lr": 10 ** -(1 + i % 4), "batch_size": 2 ** (4 + i % 4), "seed": i % 1000,
                  "optimizer": ("adam", "sgd", "adamw")[i % 3], "model.layers": 2 + i % 6,
                  "model.width": 64 * (1 + i % 3)}
        metrics = []
        for step in range(10 + (i * 37) % 91):
            decay = 1.0 / (step + 1)
            metrics += [Metric("train/loss", decay + i * 1e-6, now + step, step),
                        Metric("val/loss", 1.1 * decay + i * 1e-6, now + step, step)]
            if step % 5 == 4:
                metrics.append(Metric("val/acc", 1 - decay + i * 1e-7, now + step, step))
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag("sweep", f"s{i // 1000}"), RunTag("gpu", ("a100", "h100")[i % 2])])
        client.set_terminated(run.info.run_id)
    seconds = time.perf_counter() - t0
    files = [args["db"] + suffix for suffix in ("", "-wal", "-journal") if os.path.exists(args["db"] + suffix)]
    return {"runs": n, "seconds": seconds, "bytes": sum(os.stat(f).st_size for f in files),
            "allocated": sum(os.stat(f).st_blocks * 512 for f in files)}


def cmd_probe_file_store(args: dict) -> dict:
    """Does this MLflow accept a file: tracking URI without MLFLOW_ALLOW_FILE_STORE=true?"""
    import os

    os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(args["uri"]).search_experiments()
    except Exception as exc:  # MlflowException in 3.x: "in maintenance mode"
        return {"refused": True, "message": f"{type(exc).__name__}: {exc}"}
    return {"refused": False, "message": ""}


def cmd_search(args: dict) -> dict:
    """mlflow.search_runs over every experiment: first call and second call, timed in-process."""
    mlflow = _setup(args["uri"])
    t0 = time.perf_counter()
    df = mlflow.search_runs(search_all_experiments=True)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = mlflow.search_runs(search_all_experiments=True)
    second = time.perf_counter() - t0
    return {"rows": len(df), "first_s": first, "second_s": second}


def cmd_search_once(args: dict) -> dict:
    """What a `list my runs` command does: one search_runs call, the process timed from outside."""
    mlflow = _setup(args["uri"])
    df = mlflow.search_runs(search_all_experiments=True)
    return {"rows": len(df)}


def main() -> None:
    command, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    import mlflow

    result = globals()[f"cmd_{command}"](args)
    result["mlflow_version"] = mlflow.__version__
    result["warnings"] = _caught
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
