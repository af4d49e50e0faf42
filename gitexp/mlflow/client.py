"""MlflowClient for the drop-in: runs addressed by id, created without becoming the active run.

A run made by create_run stays live in this process until set_terminated; logging to a run
that has ended (or was made by another process) resumes it: new commits on its ref.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from gitexp.mlflow import entities, experiments, fluent, runs, session
from gitexp.mlflow.entities import Metric, Param, RunTag, ViewType
from gitexp.tracking import run as tracking


class PagedList(list):
    """A list with MLflow's `token` for the next page (always None: every match is returned at once)."""

    token: str | None = None


class MlflowClient:
    def __init__(self, tracking_uri: str | None = None, registry_uri: str | None = None, **_: Any) -> None:
        if tracking_uri is not None:
            session.set_tracking_uri(tracking_uri)

    # -- experiments ---------------------------------------------------------------------------------

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: dict[str, Any] | None = None) -> str:
        return experiments.create_experiment(name, artifact_location, tags)

    def get_experiment_by_name(self, name: str) -> entities.Experiment | None:
        return experiments.get_experiment_by_name(name)

    def get_experiment(self, experiment_id: str) -> entities.Experiment:
        return experiments.get_experiment(experiment_id)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        session.create(session.experiment_for_id(experiment_id) or session.current_resolved(), {key: value})

    # -- runs ----------------------------------------------------------------------------------------

    def create_run(self, experiment_id: str, start_time: int | None = None, tags: dict[str, Any] | None = None,
                   run_name: str | None = None) -> entities.Run:
        user, system = fluent._system_tags(dict(tags or {}))
        parent = system.get(entities.PARENT_TAG)
        run = tracking.start_run(name=run_name or system.get(entities.NAME_TAG),
                                 experiment=session.experiment_for_id(experiment_id), tags=user,
                                 description=system.get(entities.NOTE_TAG), repo=session.repo_path(),
                                 meta={"parent_run": str(parent)} if parent else None)
        tracking.deactivate(run)  # logged to by id, never implicitly
        session.live[run.id] = run
        if start_time is not None:
            from gitexp.store.writer import iso

            run.update_meta({"start": iso(start_time / 1000)})
        return entities.from_live(run)

    def get_run(self, run_id: str) -> entities.Run:
        return runs.get_run(run_id)

    def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None:
        run = session.live_run(run_id)
        run.end(fluent._status(status or "FINISHED"))
        session.live.pop(run_id, None)

    def delete_run(self, run_id: str) -> None:
        from gitexp.git.lazyrepo import real
        from gitexp.ops import trash

        record = runs._record(run_id)
        trash.remove([record.id], repo=real(record.repo), force=True)

    def search_runs(self, experiment_ids: list[str] | str, filter_string: str = "",
                    run_view_type: int = ViewType.ACTIVE_ONLY, max_results: int = 1000,
                    order_by: list[str] | None = None, page_token: str | None = None) -> PagedList:
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return PagedList(runs.find_runs(ids, filter_string, run_view_type, max_results, order_by))

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return runs.get_metric_history(run_id, key)

    # -- logging -------------------------------------------------------------------------------------

    def log_metric(self, run_id: str, key: str, value: float, timestamp: int | None = None,
                   step: int | None = None, synchronous: bool | None = None, **_: Any) -> None:
        session.live_run(run_id).log_metric(key, value, 0 if step is None else step,
                                            None if timestamp is None else timestamp / 1000)

    def log_param(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        fluent.log_params_to(session.live_run(run_id), {key: value})
        return value

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        fluent.set_tags_on(session.live_run(run_id), {key: value})

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                  tags: Sequence[RunTag] = (), synchronous: bool | None = None) -> None:
        run = session.live_run(run_id)
        if params:
            fluent.log_params_to(run, {p.key: p.value for p in params})
        if tags:
            fluent.set_tags_on(run, {t.key: t.value for t in tags})
        for m in metrics:
            run.log_metric(m.key, m.value, m.step or 0, m.timestamp / 1000 if m.timestamp else None)

    def log_artifact(self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        fluent.log_artifact(local_path, artifact_path, run_id=run_id)

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        fluent.log_artifacts(local_dir, artifact_path, run_id=run_id)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        fluent.log_text(text, artifact_file, run_id=run_id)

    def log_dict(self, run_id: str, dictionary: Any, artifact_file: str) -> None:
        fluent.log_dict(dictionary, artifact_file, run_id=run_id)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[entities.FileInfo]:
        return runs.list_artifacts(run_id, path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        return runs.download_artifacts(run_id, path, dst_path)

