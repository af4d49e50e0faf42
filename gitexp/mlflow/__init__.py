"""A drop-in for MLflow's tracking API that records gitexp runs: change one import line.

    import gitexp.mlflow as mlflow

    mlflow.set_experiment("cnn")
    with mlflow.start_run(run_name="baseline"):
        mlflow.log_param("lr", 0.01)
        mlflow.log_metric("loss", 0.5, step=0)

Flavour modules (mlflow.sklearn, mlflow.pytorch, mlflow.pyfunc), mlflow.data, mlflow.entities,
mlflow.artifacts and mlflow.tracking load on first use. docs/mlflow.md lists what is supported
and where the drop-in differs from MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gitexp.mlflow import autologging
from gitexp.mlflow.entities import RunStatus, ViewType
from gitexp.mlflow.exceptions import MlflowException
from gitexp.mlflow.experiments import (
    create_experiment,
    get_experiment,
    get_experiment_by_name,
    set_experiment,
    set_experiment_tag,
)
from gitexp.mlflow.fluent import (
    ActiveRun,
    active_run,
    delete_tag,
    end_run,
    get_artifact_uri,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_image,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    set_tag,
    set_tags,
    start_run,
)
from gitexp.mlflow.session import get_tracking_uri, set_tracking_uri

if TYPE_CHECKING:
    from gitexp.mlflow.client import MlflowClient
    from gitexp.mlflow.runs import get_run, search_runs

# Reading runs pulls in the query language and run loading: imported when first used, so that a
# training script's `import mlflow` stays cheap.
_LAZY = {"MlflowClient": "client", "get_run": "runs", "search_runs": "runs"}
_SUBMODULES = ("sklearn", "pytorch", "pyfunc", "data", "entities", "artifacts", "tracking", "models", "exceptions",
               "client")

__all__ = [
    "ActiveRun", "MlflowClient", "MlflowException", "RunStatus", "ViewType", "active_run", "autolog",
    "create_experiment", "delete_tag", "disable_system_metrics_logging", "enable_system_metrics_logging",
    "end_run", "get_artifact_uri", "get_experiment", "get_experiment_by_name", "get_run", "get_tracking_uri",
    "is_tracking_uri_set", "last_active_run", "log_artifact", "log_artifacts", "log_dict", "log_figure",
    "log_image", "log_input", "log_metric", "log_metrics", "log_param", "log_params", "log_text", "search_runs",
    "set_experiment", "set_experiment_tag", "set_tag", "set_tags", "set_tracking_uri", "start_run",
]


def autolog(log_models: bool = True, disable: bool = False, silent: bool = False, **kwargs: Any) -> None:
    """mlflow.autolog(): scikit-learn, plus a warning for each unsupported library that is present."""
    from gitexp.mlflow import sklearn

    autologging.enable("sklearn", disable=disable, log_models=log_models, silent=silent, log_model=sklearn.log_model)
    if not disable:
        autologging.warn_unsupported(silent)


def is_tracking_uri_set() -> bool:
    import os

    from gitexp.mlflow import session

    return session._uri is not None or bool(os.environ.get("MLFLOW_TRACKING_URI"))


def enable_system_metrics_logging() -> None:
    from gitexp.mlflow import session

    session.system_metrics = True


def disable_system_metrics_logging() -> None:
    from gitexp.mlflow import session

    session.system_metrics = False


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"gitexp.mlflow.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"gitexp.mlflow.{name}")
    raise AttributeError(f"module 'gitexp.mlflow' has no attribute {name!r}; docs/mlflow.md lists the MLflow API "
                         "that the drop-in supports")
