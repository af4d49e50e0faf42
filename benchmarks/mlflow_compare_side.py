"""The MLflow half of bench_compare.py: run with the python of benchmarks/.venv-mlflow.

    python mlflow_compare_side.py COMMAND '{"uri": "...", "filter": "...", "order_by": [...]}'

Adds filtered-search commands to mlflow_side.py (its setup, warning capture and `RESULT {json}`
output are reused as they are). Kept free of gitexp imports: gitexp is not in that virtualenv.
"""

from __future__ import annotations

import time

import mlflow_side


def _search(mlflow, args: dict):
    return mlflow.search_runs(search_all_experiments=True, filter_string=args["filter"],
                              order_by=args["order_by"])


def cmd_search_filtered(args: dict) -> dict:
    """search_runs with a filter and an order: first and second call, timed in-process."""
    mlflow = mlflow_side._setup(args["uri"])
    t0 = time.perf_counter()
    df = _search(mlflow, args)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = _search(mlflow, args)
    second = time.perf_counter() - t0
    names = list(df["tags.mlflow.runName"][:3]) if len(df) else []
    return {"rows": len(df), "first_s": first, "second_s": second, "top": names}


def cmd_search_filtered_once(args: dict) -> dict:
    """What `ls --where ... --sort ...` does: one filtered search_runs, the process timed from outside."""
    mlflow = mlflow_side._setup(args["uri"])
    return {"rows": len(_search(mlflow, args))}


if __name__ == "__main__":
    # mlflow_side.main dispatches on its module's cmd_* names: add these and let it run.
    mlflow_side.cmd_search_filtered = cmd_search_filtered
    mlflow_side.cmd_search_filtered_once = cmd_search_filtered_once
    mlflow_side.main()
