"""Importing MLflow runs: each becomes a gitexp run with its history, times, status and artifacts.

    report = import_mlflow("mlruns", repo=".")          # or "mlflow.db", or "sqlite:///mlflow.db"

A run is written as one commit built directly from its MLflow record (store.commit_state), so
it keeps its original start and end times, status and every metric value with its step and
timestamp. Artifacts go through gitexp's artifact ingest (large files into Git LFS). meta.yaml
records `imported_from: {source: mlflow, run_id: ...}`; runs already imported are skipped, so
importing again adds nothing. A run that cannot be read is reported and the others go on.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitexp.errors import GitexpError
from gitexp.git.repo import Repo
from gitexp.store import names
from gitexp.store import writer as store
from gitexp.store.runs import load_runs
from gitexp.store.state import RunState

SOURCE = "mlflow"
_META_TAGS = ("mlflow.runName", "mlflow.note.content", "mlflow.parentRunId", "mlflow.user")


@dataclass
class ImportReport:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (MLflow run id, gitexp run id)
    already: int = 0  # imported before: skipped
    deleted: int = 0  # deleted in MLflow: skipped
    failed: list[str] = field(default_factory=list)  # what could not be imported, and why
    notes: list[str] = field(default_factory=list)  # what was left out of imported runs


def imported_runs(repo: Repo) -> dict[str, str]:
    """MLflow run id -> gitexp run id of every run imported before (removed ones too: never re-add them)."""
    done: dict[str, str] = {}
    for namespace in (names.REF_PREFIX, names.TRASH_PREFIX):
        for record in load_runs(repo, recover=False, namespace=namespace):
            origin = record.meta.get("imported_from")
            if isinstance(origin, dict) and origin.get("source") == SOURCE and origin.get("run_id"):
                done[str(origin["run_id"])] = record.id
    return done


def experiment_for(name: str, override: str | None) -> str:
    if override:
        return names.check_experiment(override)
    from gitexp.mlflow.session import experiment_name

    return experiment_name(name)


def import_mlflow(source: str | os.PathLike[str], repo: Repo | str | os.PathLike[str] | None = None,
                  experiment: str | None = None,
                  progress: Callable[[int, int], None] | None = None) -> ImportReport:
    from gitexp.importer.database import open_store
    from gitexp.importer.stores import Problem

    repo = repo if isinstance(repo, Repo) else Repo.discover(repo)
    if experiment:
        names.check_experiment(experiment)
    src = open_store(os.fspath(source))
    report = ImportReport()
    listed = list(src.list_runs())
    report.failed += [f"{p.where}: {p.message}" for p in listed if isinstance(p, Problem)]
    headers = [h for h in listed if not isinstance(h, Problem)]
    done = imported_runs(repo)
    # Ids first: a nested run's parent may be imported after it, and meta must name the parent's new id.
    ids = dict(done)
    for header in headers:
        start = header.start_ms / 1000 if header.start_ms else time.time()
        ids.setdefault(header.run_id, names.new_run_id(now=start))
    for number, header in enumerate(headers, 1):
        if progress:
            progress(number, len(headers))
        if header.deleted:
            report.deleted += 1
        elif header.run_id in done:
            report.already += 1
        else:
            try:
                run = src.load(header)
                state = build_state(repo, run, ids, experiment_for(header.experiment, experiment))
                state.artifacts = ingest_artifacts(repo, run.artifacts)
                store.commit_state(repo, state, None)
            except GitexpError as exc:
                report.failed.append(f"run {header.run_id} (experiment {header.experiment!r}): {exc}")
                continue
            except OSError as exc:
                report.failed.append(f"run {header.run_id} (experiment {header.experiment!r}): {exc}")
                continue
            report.imported.append((header.run_id, ids[header.run_id]))
            report.notes += [f"run {header.run_id}: {note}" for note in run.notes]
    return report


def build_state(repo: Repo, run: Any, ids: dict[str, str], experiment: str) -> RunState:
    header, tags = run.header, dict(run.tags)
    start = (run.start_ms or run.end_ms or 0) / 1000
    name = run.name or tags.get("mlflow.runName") or ""
    try:
        name = names.check_run_name(name)
    except GitexpError:
        name = names.random_run_name()
    status = {"SCHEDULED": "RUNNING"}.get(run.status, run.status)
    if status not in ("RUNNING", "FINISHED", "FAILED", "KILLED"):
        raise GitexpError(f"unknown MLflow status {run.status!r}")
    commit = tags.get("mlflow.source.git.commit")
    known = isinstance(commit, str) and len(commit) == 40 and repo.has_object(commit)
    meta: dict[str, Any] = {
        "id": ids[header.run_id], "name": name, "experiment": experiment, "status": status,
        "start": store.iso(start), "user": run.user or tags.get("mlflow.user") or getpass.getuser(),
        "tags": {names.check_key(k, "tag"): v for k, v in tags.items() if k not in _META_TAGS},
        "description": tags.get("mlflow.note.content"),
        "git": {"commit": commit if known else None, "branch": None, "dirty": False, "remote": None},
        "imported_from": {"source": SOURCE, "run_id": header.run_id, "experiment_id": header.experiment_id,
                          "experiment": header.experiment},
    }
    if run.end_ms and status != "RUNNING":
        meta["end"] = store.iso(run.end_ms / 1000)
        meta["duration"] = round(max(0.0, run.end_ms / 1000 - start), 3)
    parent = tags.get("mlflow.parentRunId")
    if parent:
        meta["parent_run"] = ids.get(parent, parent)
    state = RunState(meta=meta, params={names.check_key(k, "param"): v for k, v in run.params.items()})
    for key, points in run.metrics.items():
        names.check_key(key, "metric")
        for step, stamp, value in points:
            state.add_metric(key, step, stamp / 1000, value)
    state.inputs = dict(run.inputs)
    return state


def ingest_artifacts(repo: Repo, folders: list[tuple[str, Any]]) -> dict[str, Any]:
    """Every file of the run's artifact folders, stored as gitexp artifacts (large ones in LFS)."""
    from gitexp.store.artifacts import check_name
    from gitexp.store.ingest import Ingest, collect

    if not folders:
        return {}
    ingest = Ingest(repo)
    entries: dict[str, Any] = {}
    for prefix, folder in folders:
        base = f"{prefix}/" if prefix else ""
        if prefix and any(path.startswith(base) for path in entries):
            base = f"{prefix}-model/"  # a logged model named like an artifact folder of the run
        for rel, path in collect(folder):
            entries[check_name(base + rel)] = ingest.file(path)[0]
    return entries
