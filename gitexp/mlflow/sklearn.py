"""mlflow.sklearn for the drop-in: log_model/save_model/load_model (pickle) and autolog.

scikit-learn itself is only imported by autolog; saving and loading a model only pickle it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from gitexp.mlflow import models
from gitexp.mlflow.exceptions import MlflowException

FLAVOR_NAME = "sklearn"
PICKLED = "model.pkl"
SERIALIZATION_FORMAT_PICKLE, SERIALIZATION_FORMAT_CLOUDPICKLE = "pickle", "cloudpickle"


def _saver(sk_model: Any, serialization_format: str | None) -> Any:
    def save(folder: Path) -> dict[str, Any]:
        fmt = serialization_format or SERIALIZATION_FORMAT_PICKLE
        if fmt not in (SERIALIZATION_FORMAT_PICKLE, SERIALIZATION_FORMAT_CLOUDPICKLE):
            raise MlflowException(f"serialization_format {fmt!r} is not supported here; use 'pickle' or 'cloudpickle'")
        module = importlib.import_module(fmt)  # each format is named after its module
        with open(folder / PICKLED, "wb") as handle:
            module.dump(sk_model, handle)
        sklearn = sys.modules.get("sklearn")
        return {"pickled_model": PICKLED, "serialization_format": fmt,
                "sklearn_version": getattr(sklearn, "__version__", None), "code": None}
    return save


def _pyfunc() -> dict[str, Any]:
    return {"loader_module": "gitexp.mlflow.sklearn", "model_path": PICKLED,
            "python_version": sys.version.split()[0], "predict_fn": "predict"}


def log_model(sk_model: Any, artifact_path: str | None = None, conda_env: Any = None, code_paths: Any = None,
              serialization_format: str | None = None, registered_model_name: str | None = None,
              *, name: str | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> models.ModelInfo:
    return models.log_model(FLAVOR_NAME, _saver(sk_model, serialization_format), name, artifact_path, _pyfunc(),
                            metadata, registered_model_name)


def save_model(sk_model: Any, path: str | os.PathLike[str], conda_env: Any = None, code_paths: Any = None,
               serialization_format: str | None = None, *, metadata: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
    models.save_model(FLAVOR_NAME, _saver(sk_model, serialization_format), path, _pyfunc(), metadata)


def _load(folder: Path, conf: dict[str, Any]) -> Any:
    fmt = conf.get("serialization_format", SERIALIZATION_FORMAT_PICKLE)
    if fmt not in (SERIALIZATION_FORMAT_PICKLE, SERIALIZATION_FORMAT_CLOUDPICKLE):
        raise MlflowException(f"the model at {folder} was saved as {fmt!r}; gitexp.mlflow loads pickle and "
                              "cloudpickle models (load this one with MLflow itself)")
    return models.unpickle(folder / conf.get("pickled_model", PICKLED))


def load_model(model_uri: str | os.PathLike[str], dst_path: str | None = None) -> Any:
    folder = models.local_folder(model_uri, dst_path)
    return _load(folder, models.flavor_conf(folder, FLAVOR_NAME))


def _load_pyfunc(path: str | os.PathLike[str]) -> Any:
    """pyfunc's entry point: *path* is the model folder or the pickled file in it."""
    target = Path(path)
    folder = target if target.is_dir() else target.parent
    return _load(folder, models.flavor_conf(folder, FLAVOR_NAME))


def autolog(log_models: bool = True, disable: bool = False, silent: bool = False, **kwargs: Any) -> None:
    from gitexp.mlflow import autologging

    autologging.enable("sklearn", disable=disable, log_models=log_models, silent=silent, log_model=log_model)
