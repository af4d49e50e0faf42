"""`git exp import mlflow` on stores written by real MLflow (file store and sqlite) in the test.

Every imported run is checked against what MLflow itself reads back from its store (the DUMP
of tests/mlflow_support.py): params, tags, full metric histories with steps and timestamps,
start and end times, status, nesting and artifacts by content; then idempotency, a corrupted
store, and large artifacts going to Git LFS.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="MLflow is not installed; it is a test extra: pip install -e '.[test]'")

from gitexp.cli.main import main
from gitexp.store.artifacts import list_artifacts
from gitexp.store.runs import RunRecord, load_runs
from gitexp.store.writer import iso
from tests.conftest import git
from tests.mlflow_support import real_mlflow


def imported(repo: Path) -> dict[str, RunRecord]:
    """gitexp runs of *repo* by the MLflow run id they were imported from."""
    return {r.meta["imported_from"]["run_id"]: r for r in load_runs(repo) if "imported_from" in r.meta}


def check_run(record: RunRecord, run: dict[str, Any], ids: dict[str, str]) -> None:
    meta = record.meta
    assert meta["name"] == run["name"] and meta["status"] == run["status"]
    assert meta["start"] == iso(run["start"] / 1000) and meta["end"] == iso(run["end"] / 1000)
    assert record.params == run["params"]  # MLflow's strings, unchanged
    user_tags = {k: v for k, v in run["tags"].items() if k not in
                 ("mlflow.runName", "mlflow.note.content", "mlflow.parentRunId", "mlflow.user")}
    assert meta["tags"] == user_tags
    assert meta.get("description") == run["tags"].get("mlflow.note.content")
    parent = run["tags"].get("mlflow.parentRunId")
    assert meta.get("parent_run") == (ids[parent] if parent else None)
    assert sorted(record.metrics) == sorted(run["history"])
    for key, points in run["history"].items():
        series = record.history(key)
        got = [(s, "nan" if math.isnan(v) else v, round(t * 1000)) for s, t, v in
               zip(series.steps, series.times, series.values, strict=True)]
        assert got == [tuple(p) for p in points], f"history of {key} in run {run['name']}"
    arts = {a.path: a.sha256 for a in list_artifacts(record.repo, record.commit)}
    assert {p: h for p, h in arts.items() if p in run["artifacts"]} == run["artifacts"]


def import_cli(source: Path, *extra: str) -> int:
    return main(["import", "mlflow", str(source), *extra])


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_import_basic_store(repo: Path, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    dump, store = real_mlflow("basic", backend)
    assert import_cli(store) == 0
    runs = imported(repo)
    assert sorted(runs) == sorted(dump["runs"])
    ids = {mlflow_id: record.id for mlflow_id, record in runs.items()}
    for mlflow_id, run in dump["runs"].items():
        check_run(runs[mlflow_id], run, ids)
        assert runs[mlflow_id].experiment == run["experiment"]
    assert f"imported {len(dump['runs'])} run(s)" in capsys.readouterr().out

    # Importing again adds nothing: same refs, same commits.
    refs = git(repo, "for-each-ref", "refs/experiments/")
    assert import_cli(store) == 0
    assert git(repo, "for-each-ref", "refs/experiments/") == refs
    assert f"imported 0 run(s) from {store}; skipped {len(dump['runs'])} already imported" in capsys.readouterr().out


def test_import_models_and_client_runs_into_one_experiment(repo: Path) -> None:
    dump, store = real_mlflow("client_models")
    assert import_cli(store, "--experiment", "from-mlflow") == 0
    runs = imported(repo)
    ids = {mlflow_id: record.id for mlflow_id, record in runs.items()}
    for mlflow_id, run in dump["runs"].items():
        check_run(runs[mlflow_id], run, ids)
        assert runs[mlflow_id].experiment == "from-mlflow"
    models = next(r for r in runs.values() if r.name == "with-models")
    paths = {a.path for a in list_artifacts(models.repo, models.commit)}
    # MLflow 3 keeps logged models beside the runs; they come along under the model's name.
    assert {"model/MLmodel", "adder/MLmodel", "images/array.png", "figures/line.png"} <= paths
    inputs = models.read("inputs.yaml")
    assert inputs is not None and b"mlflow.data.context" not in inputs and b"context: training" in inputs


def test_large_artifacts_go_to_lfs(repo: Path) -> None:
    _, store = real_mlflow("basic")
    git(repo, "config", "exp.lfsThreshold", "20")
    assert import_cli(store) == 0
    parent = next(r for r in imported(repo).values() if r.name == "parent")
    stored = {a.path: a for a in list_artifacts(parent.repo, parent.commit)}
    assert stored["config.json"].lfs and stored["config.json"].present
    assert not stored["outputs/a.txt"].lfs  # 1 byte: an ordinary blob


@pytest.mark.parametrize("bad_yaml", ["run_id: [unclosed\n", "start_time: 2026-13-45\n"],
                         ids=["not YAML", "a date YAML cannot build"])
def test_corrupt_file_store_imports_the_rest(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             bad_yaml: str) -> None:
    dump, store = real_mlflow("basic")
    broken = tmp_path / "mlruns"
    shutil.copytree(store, broken)
    by_name = {run["name"]: rid for rid, run in dump["runs"].items()}
    bad_meta, bad_metric = by_name["broken"], by_name["child"]
    run_dirs = {p.name: p for p in broken.glob("*/*") if p.is_dir()}
    (run_dirs[bad_meta] / "meta.yaml").write_text(bad_yaml)
    (run_dirs[bad_metric] / "metrics" / "child_metric").write_text("1700000000000 not-a-number 3\n")
    assert import_cli(broken) == 1
    err = capsys.readouterr().err
    assert bad_meta in err and bad_metric in err and "not-a-number" in err
    assert sorted(imported(repo)) == sorted(set(dump["runs"]) - {bad_meta, bad_metric})

    # Once repaired, importing again brings exactly the missing runs.
    shutil.rmtree(broken)
    shutil.copytree(store, broken)
    assert import_cli(broken) == 0
    assert sorted(imported(repo)) == sorted(dump["runs"])


def test_unreadable_sources_are_refused_clearly(repo: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert import_cli(tmp_path / "nowhere") == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert import_cli(tmp_path / "notes.txt") == 1
    assert "neither a folder" in capsys.readouterr().err
    db = tmp_path / "other.db"
    sqlite3.connect(db).execute("CREATE TABLE runs (x)").connection.commit()
    assert import_cli(db) == 1
    assert "lacks the table(s) experiments, metrics, params, tags" in capsys.readouterr().err


def test_progress_on_a_terminal(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    import os
    import pty
    import subprocess
    import sys

    dump, store = real_mlflow("basic")
    leader, follower = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "gitexp", "import", "mlflow", str(store)], cwd=repo,
                          env=env_for_subprocess, stdout=subprocess.PIPE, stderr=follower, check=False)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's other end is closed and everything was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    total = len(dump["runs"])
    assert proc.returncode == 0 and f"importing MLflow runs: {total}/{total} (100%)".encode() in shown
