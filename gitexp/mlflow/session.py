"""Where the drop-in writes: the tracking URI (which repository), the experiment, and live runs.

MLflow's tracking URI names a server or a store; here it can only name a git repository: a
local path or a file: URI inside one (the folder need not exist: `file:./mlruns` in a project
selects the project's repository). Experiment ids are experiment names.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gitexp.errors import InvalidNameError
from gitexp.git.repo import Repo
from gitexp.mlflow.entities import Experiment
from gitexp.mlflow.exceptions import MlflowException
from gitexp.store import names
from gitexp.tracking import launch
from gitexp.tracking import run as tracking

DEFAULT_EXPERIMENT_ID = "0"  # MLflow's "Default" experiment

_uri: str | None = None
_experiment: str | None = None
# Experiments made by create_experiment/set_experiment in this process: gitexp keeps no
# experiment records, an experiment exists through its runs.
_created: dict[str, dict[str, str]] = {}
# Runs started in this process through the drop-in (fluent or MlflowClient), by id.
live: dict[str, tracking.Run] = {}
_warned: set[str] = set()
# mlflow.enable/disable_system_metrics_logging(); None: gitexp's exp.systemMetricsInterval decides.
system_metrics: bool | None = None


def local_path(uri: str | os.PathLike[str]) -> Path:
    """The folder a tracking URI names; any scheme but file: is refused, naming the URI."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise MlflowException(f"tracking URI {text!r} names host {parsed.netloc!r}; gitexp.mlflow only "
                                  "writes to a local git repository: use file:///path/inside/the/repository")
        return Path(unquote(parsed.path) or ".")
    if parsed.scheme and not re.fullmatch(r"[A-Za-z]", parsed.scheme):  # a drive letter is a path
        raise MlflowException(
            f"tracking URI {text!r} is not supported by gitexp.mlflow: gitexp stores runs in a git repository, "
            "not on an MLflow server or database. Use a local path or a file: URI inside the repository (or "
            "leave the URI unset for the current one); to bring the runs of that store over, run "
            "`git exp import mlflow SOURCE`")
    return Path(text)


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    global _uri
    local_path(uri)  # refuse other schemes now, where the script sets them
    _uri = os.fspath(uri)


def _chosen_uri() -> str | None:
    return _uri if _uri is not None else os.environ.get("MLFLOW_TRACKING_URI") or None


def repo_path() -> str | None:
    """A path inside the selected repository (None: the current directory's)."""
    uri = _chosen_uri()
    if uri is None:
        return None
    path = local_path(uri).absolute()
    while not path.exists() and path != path.parent:  # ./mlruns need not exist yet
        path = path.parent
    return str(path)


def repo() -> Repo:
    return Repo.discover(repo_path())


def get_tracking_uri() -> str:
    uri = _chosen_uri()
    if uri is not None:
        return uri
    found = repo()
    return (found.workdir or found.gitdir).absolute().as_uri()


# -- experiments -------------------------------------------------------------------------------------


def experiment_name(name: str) -> str:
    """The gitexp experiment for an MLflow experiment name: git refuses some characters in ref names
    (spaces, ':', '..'...), so those become '-', with a warning saying where the runs go."""
    if name == "Default":
        return names.DEFAULT_EXPERIMENT
    try:
        return names.check_experiment(name)
    except InvalidNameError:
        pass
    clean = re.sub(r"[\x00-\x20\x7f~^:?*\[\\]+|@\{", "-", name.strip())
    clean = re.sub(r"\.{2,}", ".", re.sub(r"/{2,}", "/", clean)).strip("/")
    parts = [re.sub(r"\.lock$", "-lock", p.lstrip(".")) or "-" for p in clean.split("/")]
    clean = "/".join(parts).rstrip(".").lstrip("-") or "experiment"
    if names.is_run_id(clean.rsplit("/", 1)[-1]):
        clean += "-exp"
    try:
        names.check_experiment(clean)
    except InvalidNameError as exc:
        raise MlflowException(f"experiment name {name!r} cannot be stored by gitexp: {exc}") from None
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"gitexp.mlflow: experiment {name!r} is stored as {clean!r} (git ref names cannot hold "
                      "some of its characters)", UserWarning, stacklevel=3)
    return clean


def experiment_for(experiment_id: str | int) -> str:
    """The gitexp experiment of an MLflow experiment id."""
    if str(experiment_id) == DEFAULT_EXPERIMENT_ID:  # MLflow's Default: gitexp's usual choice
        return launch.resolve_experiment(repo(), None)
    return experiment_name(str(experiment_id))


def experiment_for_id(experiment_id: str | int | None) -> str | None:
    return None if experiment_id is None else experiment_for(experiment_id)


def set_current(name: str) -> None:
    global _experiment
    _experiment = name


def current() -> str | None:
    """The experiment set_experiment chose, else MLFLOW_EXPERIMENT_NAME/ID, else None (gitexp decides)."""
    if _experiment is not None:
        return _experiment
    if os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return experiment_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    return experiment_for_id(os.environ.get("MLFLOW_EXPERIMENT_ID"))


def current_resolved() -> str:
    return current() or launch.resolve_experiment(repo(), None)


def exists(name: str) -> bool:
    return name in _created or bool(repo().refs(f"{names.REF_PREFIX}{name}/"))


def create(name: str, tags: dict[str, Any] | None = None) -> str:
    _created.setdefault(name, {}).update({str(k): str(v) for k, v in (tags or {}).items()})
    return name


def experiment(name: str) -> Experiment:
    location = f"{get_tracking_uri()}#refs/experiments/{name}"
    return Experiment(experiment_id=name, name=name, artifact_location=location, tags=dict(_created.get(name, {})))


# -- live runs -----------------------------------------------------------------------------------------


def live_run(run_id: str) -> tracking.Run:
    """The live gitexp Run *run_id* of this process; an ended or foreign run is resumed (its ref goes on)."""
    run = live.get(run_id) or next((r for r in tracking.stack if r.id == run_id), None)
    if run is not None and not run.ended:
        return run
    resumed = tracking.start_run(resume=run_id, repo=repo_path())
    tracking.deactivate(resumed)  # MlflowClient runs are logged to by id, never implicitly
    live[resumed.id] = resumed
    return resumed


def sync_live_runs() -> None:
    """Commit what live runs of this process logged, so that reading the repository sees it (as MLflow does)."""
    for run in {id(r): r for r in [*live.values(), *tracking.stack]}.values():
        if run.owner:
            run.checkpoint()


def reset() -> None:
    """Forget the tracking URI, experiment and experiments chosen in this process (tests, notebooks)."""
    global _uri, _experiment, system_metrics
    _uri = _experiment = system_metrics = None
    _created.clear()
    live.clear()
