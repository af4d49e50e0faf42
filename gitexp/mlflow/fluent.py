"""MLflow's fluent API (mlflow.start_run, mlflow.log_metric...) on gitexp runs.

Each verb is a thin call into gitexp.tracking.run.Run: log_metric costs what Run.log_metric costs.
Where MLflow and gitexp differ, the drop-in follows MLflow (steps default to 0, timestamps are
milliseconds, params compare as strings); docs/mlflow.md lists every difference.
"""

from __future__ import annotations

import json
import os
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any

from gitexp.mlflow import entities, session
from gitexp.mlflow.entities import NAME_TAG, NOTE_TAG, PARENT_TAG
from gitexp.mlflow.exceptions import MlflowException
from gitexp.store import names
from gitexp.tracking import run as tracking

_active = tracking.stack  # gitexp's stack of active runs, shared: gitexp.log_metric sees the same run
_last_id: list[str] = []


class ActiveRun:
    """What start_run returns: the run's live .info and .data, and a context manager ending it."""

    def __init__(self, run: tracking.Run) -> None:
        self._run = run

    @property
    def info(self) -> entities.RunInfo:
        return entities.from_live(self._run).info

    @property
    def data(self) -> entities.RunData:
        return entities.from_live(self._run).data

    @property
    def inputs(self) -> entities.RunInputs:
        return entities.RunInputs()

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._run.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<ActiveRun: run_id={self._run.id!r}, experiment={self._run.experiment!r}>"


def _system_tags(tags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split MLflow system tags that gitexp keeps in meta (run name, note, parent) from the rest."""
    user = {k: v for k, v in tags.items() if k not in (NAME_TAG, NOTE_TAG, PARENT_TAG)}
    return user, {k: tags[k] for k in (NAME_TAG, NOTE_TAG, PARENT_TAG) if k in tags}


def start_run(run_id: str | None = None, experiment_id: str | None = None, run_name: str | None = None,
              nested: bool = False, parent_run_id: str | None = None, tags: dict[str, Any] | None = None,
              description: str | None = None, log_system_metrics: bool | None = None) -> ActiveRun:
    if _active and not nested and run_id != _active[-1].id:
        raise MlflowException(f"Run with UUID {_active[-1].id} is already active. To start a nested run, call "
                              "start_run with nested=True; or end it first with mlflow.end_run()")
    user_tags, system = _system_tags(dict(tags or {}))
    if description is not None and NOTE_TAG in system:
        raise MlflowException(f"Description is already set via the tag {NOTE_TAG} in tags. Remove the key "
                              f"{NOTE_TAG} from the tags or omit the description.")
    if run_id is not None:
        run = session.live_run(run_id)
        tracking.activate(run)
        if user_tags:
            run.set_tags(user_tags)
    else:
        parent = parent_run_id or system.get(PARENT_TAG) or (_active[-1].id if nested and _active else None)
        experiment = session.experiment_for_id(experiment_id) or session.current()
        run = tracking.start_run(name=run_name or system.get(NAME_TAG), experiment=experiment, tags=user_tags,
                                 description=description or system.get(NOTE_TAG), repo=session.repo_path(),
                                 system_metrics_interval=_system_interval(log_system_metrics),
                                 meta={"parent_run": str(parent)} if parent else None)
    session.live[run.id] = run
    _last_id[:] = [run.id]
    return ActiveRun(run)


def _system_interval(wanted: bool | None) -> float | None:
    """0 turns system metrics off; None leaves gitexp's interval (git config exp.systemMetricsInterval)."""
    wanted = session.system_metrics if wanted is None else wanted
    return 0 if wanted is False else None


def active_run() -> ActiveRun | None:
    return ActiveRun(_active[-1]) if _active else None


def end_run(status: str = "FINISHED") -> None:
    if _active:
        _active[-1].end(_status(status))


def _status(status: Any) -> str:
    text = str(status).upper()
    if text not in ("FINISHED", "FAILED", "KILLED"):
        raise MlflowException(f"cannot end a run with status {status!r}: use FINISHED, FAILED or KILLED")
    return text


def last_active_run() -> entities.Run | None:
    if _active:
        return entities.from_live(_active[-1])
    if not _last_id:
        return None
    from gitexp.mlflow.runs import get_run

    return get_run(_last_id[0])


def _run(run_id: str | None = None) -> tracking.Run:
    if run_id is not None:
        return session.live_run(run_id)
    return _active[-1] if _active else start_run()._run


# -- metrics, params, tags: thin --------------------------------------------------------------------


def log_metric(key: str, value: float, step: int | None = None, synchronous: bool | None = None,
               timestamp: int | None = None, run_id: str | None = None, model_id: str | None = None,
               dataset: Any = None) -> None:
    run = _active[-1] if _active and run_id is None else _run(run_id)
    run.log_metric(key, value, 0 if step is None else step, None if timestamp is None else timestamp / 1000)


def log_metrics(metrics: dict[str, float], step: int | None = None, synchronous: bool | None = None,
                run_id: str | None = None, timestamp: int | None = None, model_id: str | None = None,
                dataset: Any = None) -> None:
    run = _active[-1] if _active and run_id is None else _run(run_id)
    run.log_metrics(metrics, 0 if step is None else step, None if timestamp is None else timestamp / 1000)


def param_value(value: Any) -> Any:
    """Scalars stay typed in params.yaml (their str() is what MLflow stores); the rest is stored as str()."""
    return value if type(value) in (str, int, float, bool) else str(value)


def log_params_to(run: tracking.Run, params: dict[str, Any]) -> None:
    """MLflow's rule: a param may be logged again with the same (string) value, never changed."""
    current = run.state.params
    new = {}
    for key, value in params.items():
        value = param_value(value)
        if key in current:
            if str(current[key]) != str(value):
                raise MlflowException(
                    f"Changing param values is not allowed. Param with key={key!r} was already logged with "
                    f"value={str(current[key])!r} for run ID={run.id!r}. Attempted logging new value {str(value)!r}.")
            continue
        new[key] = value
    if new:
        run.log_params(new)


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    log_params_to(_run(), {key: value})
    return value


def log_params(params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None) -> None:
    log_params_to(_run(run_id), params)


def set_tags_on(run: tracking.Run, tags: dict[str, Any]) -> None:
    user, system = _system_tags(tags)
    if NAME_TAG in system:
        run.update_meta({"name": names.check_run_name(str(system[NAME_TAG]))})
    if NOTE_TAG in system:
        run.set_description(str(system[NOTE_TAG]))
    if PARENT_TAG in system:
        run.update_meta({"parent_run": str(system[PARENT_TAG])})
    if user:
        run.set_tags(user)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    set_tags_on(_run(), {key: value})


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    set_tags_on(_run(), tags)


def delete_tag(key: str) -> None:
    run = _run()
    tags = run.tags
    if key not in tags:
        raise MlflowException(f"No tag with name: {key} in run with id {run.id}", "RESOURCE_DOES_NOT_EXIST")
    del tags[key]
    run.update_meta({"tags": tags})


# -- artifacts -----------------------------------------------------------------------------------------


def _join(folder: str | None, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder and folder.strip("/") else name


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None,
                 run_id: str | None = None) -> None:
    path = os.fspath(local_path)
    _run(run_id).log_artifact(path, _join(artifact_path, os.path.basename(os.path.abspath(path))))


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None,
                  run_id: str | None = None) -> None:
    _run(run_id).log_artifacts(local_dir, artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    _run(run_id).log_text(text, artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: str | None = None) -> None:
    """The same bytes MLflow writes: YAML for .yaml/.yml, else JSON (2-space indent, no final newline)."""
    if PurePosixPath(artifact_file).suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(dictionary, indent=2, default_flow_style=False)
    else:
        text = json.dumps(dictionary, indent=2, default=str)
    _run(run_id).log_text(text, artifact_file)


def log_figure(figure: Any, artifact_file: str, *, save_kwargs: dict[str, Any] | None = None) -> None:
    from gitexp.mlflow import images

    images.log_figure(_run(), figure, artifact_file, save_kwargs)


def log_image(image: Any, artifact_file: str | None = None, key: str | None = None, step: int | None = None,
              timestamp: int | None = None, synchronous: bool | None = None) -> None:
    from gitexp.mlflow import images

    images.log_image(_run(), image, artifact_file, key, step)


def log_input(dataset: Any = None, context: str | None = None, tags: dict[str, str] | None = None,
              model: Any = None) -> None:
    from gitexp.mlflow import data

    data.log_input(_run(), dataset, context, tags)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    run = _run()
    return f"runs:/{run.id}/{(artifact_path or '').lstrip('/')}"
