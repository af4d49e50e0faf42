"""Reading runs through the drop-in: get_run, search_runs, metric histories, artifacts.

Runs live in this process are committed first (session.sync_live_runs), so a search sees
what was logged a moment ago, as it would with MLflow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from gitexp.errors import AmbiguousRunError, RunNotFoundError
from gitexp.mlflow import entities, filters, session
from gitexp.mlflow.entities import Metric, ViewType
from gitexp.mlflow.exceptions import MlflowException
from gitexp.store import names, search
from gitexp.store import runs as gruns


def _record(run_id: str, deleted: bool = False) -> gruns.RunRecord:
    namespace = names.TRASH_PREFIX if deleted else names.REF_PREFIX
    try:
        return gruns.resolve(gruns.load_runs(session.repo(), namespace=namespace), run_id)
    except (RunNotFoundError, AmbiguousRunError) as exc:
        raise MlflowException(f"Run {run_id!r} not found: {exc}", "RESOURCE_DOES_NOT_EXIST") from None


def _live(run_id: str) -> Any:
    from gitexp.tracking import run as tracking

    run = session.live.get(run_id) or next((r for r in tracking.stack if r.id == run_id), None)
    return run if run is not None and not run.ended else None


def get_run(run_id: str) -> entities.Run:
    live = _live(run_id)
    if live is not None:
        return entities.from_live(live)
    return entities.from_record(_record(run_id))


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    live = _live(run_id)
    if live is not None:
        series = live.history(key)
    else:
        record = _record(run_id)
        series = record.history(key) if key in record.metrics else None
    if series is None:
        return []
    return [Metric(key, value, round(stamp * 1000), step)
            for step, stamp, value in zip(series.steps, series.times, series.values, strict=True)]


def _experiments(experiment_ids: list[str] | None, experiment_names: list[str] | None,
                 search_all: bool) -> list[str] | None:
    """The gitexp experiments to search (None: every one)."""
    if search_all:
        return None
    chosen = [session.experiment_for_id(e) or "" for e in experiment_ids or []]
    chosen += [session.experiment_name(n) for n in experiment_names or []]
    return chosen or [session.current_resolved()]


def find_runs(experiment_ids: list[str] | None = None, filter_string: str = "",
              run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int | None = None,
              order_by: list[str] | None = None, experiment_names: list[str] | None = None,
              search_all_experiments: bool = False) -> list[entities.Run]:
    node = filters.translate(filter_string)  # a malformed filter fails before anything is read
    keys = filters.translate_order(order_by)
    session.sync_live_runs()
    repo = session.repo()
    scope = _experiments(experiment_ids, experiment_names, search_all_experiments)
    found: list[tuple[gruns.RunRecord, str]] = []
    spaces = {ViewType.ACTIVE_ONLY: [(names.REF_PREFIX, "active")],
              ViewType.DELETED_ONLY: [(names.TRASH_PREFIX, "deleted")]}.get(
        run_view_type, [(names.REF_PREFIX, "active"), (names.TRASH_PREFIX, "deleted")])
    for namespace, stage in spaces:
        records = gruns.load_runs(repo, namespace=namespace)
        found += [(r, stage) for r in records if scope is None or r.experiment in scope]
    stages = {r.id: stage for r, stage in found}
    chosen = search.filter_runs([r for r, _ in found], node)
    chosen = search.sort_runs(chosen, keys) if keys else chosen
    if max_results is not None:
        chosen = chosen[:max_results]
    return [entities.from_record(r, stages[r.id]) for r in chosen]


def search_runs(experiment_ids: list[str] | None = None, filter_string: str = "",
                run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int = 100000,
                order_by: list[str] | None = None, output_format: str = "pandas",
                search_all_experiments: bool = False, experiment_names: list[str] | None = None) -> Any:
    found = find_runs(experiment_ids, filter_string, run_view_type, max_results, order_by, experiment_names,
                      search_all_experiments)
    if output_format == "list":
        return found
    if output_format != "pandas":
        raise MlflowException(f"unsupported output_format {output_format!r}: use 'pandas' or 'list'")
    try:
        import pandas as pd
    except ImportError:
        raise MlflowException("search_runs(output_format='pandas') needs pandas (pip install pandas); "
                              "pass output_format='list' for Run objects") from None
    return to_frame(found, pd)


def to_frame(found: list[entities.Run], pd: Any) -> Any:
    """MLflow's DataFrame layout: run_id, experiment_id, status, artifact_uri, start_time, end_time,
    then metrics.*, params.* and tags.* columns."""
    rows = []
    for run in found:
        info = run.info
        row: dict[str, Any] = {"run_id": info.run_id, "experiment_id": info.experiment_id, "status": info.status,
                               "artifact_uri": info.artifact_uri,
                               "start_time": pd.to_datetime(info.start_time, unit="ms", utc=True),
                               "end_time": pd.to_datetime(info.end_time, unit="ms", utc=True)}
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    base = ["run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time"]
    frame = pd.DataFrame(rows, columns=None if rows else base)
    rest = sorted(c for c in frame.columns if c not in base)
    ordered = [c for c in base if c in frame.columns]
    ordered += [c for p in ("metrics.", "params.", "tags.") for c in rest if c.startswith(p)]
    return frame[ordered]


# -- artifacts -----------------------------------------------------------------------------------------


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """(run id, artifact path) of runs:/<run_id>/<path>."""
    if not uri.startswith("runs:/"):
        raise MlflowException(f"{uri!r} is not a runs:/<run_id>/<path> URI")
    run_id, _, path = uri[len("runs:/"):].strip("/").partition("/")
    if not run_id:
        raise MlflowException(f"{uri!r} names no run: use runs:/<run_id>/<path>")
    return run_id, path


def download_artifacts(run_id: str, path: str = "", dst_path: str | os.PathLike[str] | None = None) -> str:
    from gitexp.ops import restore

    if _live(run_id) is not None:
        session.sync_live_runs()
    record = _record(run_id)
    target = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp(prefix=f"gitexp-{record.id}-"))
    return str(restore.download_artifacts(record, path.strip("/") or None, target))


def list_artifacts(run_id: str, path: str | None = None) -> list[entities.FileInfo]:
    from gitexp.store.artifacts import list_artifacts as listing
    if _live(run_id) is not None:
        session.sync_live_runs()
    record = _record(run_id)
    prefix = f"{path.strip('/')}/" if path and path.strip("/") else ""
    seen: dict[str, entities.FileInfo] = {}
    for artifact in listing(record.repo, record.commit):
        if not artifact.path.startswith(prefix):
            continue
        head, sep, _ = artifact.path[len(prefix):].partition("/")
        full = prefix + head
        seen.setdefault(full, entities.FileInfo(full, True, None) if sep else
                        entities.FileInfo(full, False, artifact.size))
    return sorted(seen.values(), key=lambda f: f.path)
