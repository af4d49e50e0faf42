"""`git exp import mlflow SOURCE`: bring the runs of an MLflow store into the repository."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\rimporting MLflow runs: {done}/{total} ({100 * done // max(total, 1)}%)")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_import(kind: str, source: str, experiment: str | None) -> int:
    from gitexp.importer.convert import import_mlflow

    report = import_mlflow(source, experiment=experiment, progress=_progress if sys.stderr.isatty() else None)
    for mlflow_id, run_id in report.imported:
        print(f"imported {mlflow_id} as {run_id}")
    skipped = [f"{report.already} already imported"] if report.already else []
    skipped += [f"{report.deleted} deleted in MLflow"] if report.deleted else []
    summary = f"imported {len(report.imported)} run(s) from {source}"
    print(summary + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.failed:
        print(f"git exp: error: {len(report.failed)} run(s) or part(s) of {source} could not be imported:",
              file=sys.stderr)
        for failure in report.failed:
            print(f"  {failure}", file=sys.stderr)
        print("fix or remove them and import again: runs already imported are skipped", file=sys.stderr)
        return 1
    return 0


def register(add: AddCommand) -> None:
    p = add("import", "Import runs from another tracker (MLflow file store or sqlite database).")
    p.add_argument("kind", choices=("mlflow",), help="the tracker the runs come from")
    p.add_argument("source", metavar="SOURCE", help="an mlruns/ folder, or an MLflow sqlite database file")
    p.add_argument("--experiment", "-e", metavar="NAME",
                   help="put every imported run in this experiment (default: the MLflow experiment's name)")
    p.set_defaults(func=lambda a: cmd_import(a.kind, a.source, a.experiment))
