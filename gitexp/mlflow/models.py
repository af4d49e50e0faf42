"""Saved models for the drop-in's flavours: a folder with an MLmodel file, logged as run artifacts.

    artifacts/<name>/MLmodel        YAML: flavors (their files and versions), run_id, time
    artifacts/<name>/model.pkl      sklearn, pyfunc (pickle) / data/model.pth (torch.save)

Loading takes a runs:/<run_id>/<name> URI (what log_model returns), a local folder or a file:
URI. The layout is MLflow's, so MLmodel folders imported from MLflow load too when their
serialisation is pickle-based.
"""

from __future__ import annotations

import importlib
import os
import pickle
import tempfile
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gitexp.mlflow.exceptions import MlflowException

MLMODEL = "MLmodel"


@dataclass
class ModelInfo:
    """What log_model returns; model_uri loads the model back with the flavour's load_model."""

    artifact_path: str
    flavors: dict[str, Any]
    model_uri: str
    run_id: str
    utc_time_created: str
    model_uuid: str
    metadata: dict[str, Any] | None = None
    signature: Any = None
    saved_input_example_info: Any = None
    registered_model_version: Any = None
    model_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.artifact_path


def _dump(data: dict[str, Any]) -> str:
    import yaml

    from gitexp.store.state import normalize

    # normalize: version objects (torch's TorchVersion is a str subclass) become plain YAML types
    return yaml.safe_dump(normalize(data), default_flow_style=False, sort_keys=True)


def write_mlmodel(folder: Path, flavors: dict[str, Any], run_id: str | None, name: str,
                  metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    from gitexp import __version__

    mlmodel = {"artifact_path": name, "flavors": flavors, "run_id": run_id, "model_uuid": uuid.uuid4().hex,
               "utc_time_created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
               "saved_by": f"gitexp.mlflow {__version__}"}
    if metadata:
        mlmodel["metadata"] = metadata
    (folder / MLMODEL).write_text(_dump(mlmodel))
    return mlmodel


def log_model(flavor: str, save: Callable[[Path], dict[str, Any]], name: str | None, artifact_path: str | None,
              pyfunc: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
              registered_model_name: str | None = None, **ignored: Any) -> ModelInfo:
    """Save a model with *save(folder)* (which returns the flavour's MLmodel entry) and log the folder."""
    from gitexp.mlflow import fluent

    if registered_model_name:
        warnings.warn(f"gitexp.mlflow: the model registry is not supported; {registered_model_name!r} was not "
                      "registered (the model is logged as run artifacts)", UserWarning, stacklevel=3)
    name = (name or artifact_path or "model").strip("/")
    run = fluent._run()
    with tempfile.TemporaryDirectory(prefix="gitexp-model-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        flavors = {flavor: save(folder)}
        if pyfunc is not None:
            flavors["python_function"] = pyfunc
        mlmodel = write_mlmodel(folder, flavors, run.id, name, metadata)
        run.log_artifacts(folder, name)
    return ModelInfo(artifact_path=name, flavors=flavors, model_uri=f"runs:/{run.id}/{name}", run_id=run.id,
                     utc_time_created=mlmodel["utc_time_created"], model_uuid=mlmodel["model_uuid"],
                     metadata=metadata)


def save_model(flavor: str, save: Callable[[Path], dict[str, Any]], path: str | os.PathLike[str],
               pyfunc: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
    folder = Path(path)
    if folder.exists() and any(folder.iterdir()):
        raise MlflowException(f"Path '{folder}' already exists and is not empty", "RESOURCE_ALREADY_EXISTS")
    folder.mkdir(parents=True, exist_ok=True)
    flavors = {flavor: save(folder)}
    if pyfunc is not None:
        flavors["python_function"] = pyfunc
    write_mlmodel(folder, flavors, None, folder.name, metadata)


def local_folder(model_uri: str | os.PathLike[str], dst_path: str | os.PathLike[str] | None = None) -> Path:
    """A local folder holding the model *model_uri* names (artifacts of a run are restored first)."""
    uri = os.fspath(model_uri)
    if uri.startswith("runs:/"):
        from gitexp.mlflow import runs

        run_id, path = runs.parse_runs_uri(uri)
        return Path(runs.download_artifacts(run_id, path, dst_path))
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise MlflowException(f"cannot load model {uri!r}: gitexp.mlflow loads runs:/<run_id>/<path> URIs (what "
                              "log_model returns), local folders and file: URIs; the model registry (models:/) "
                              "and remote stores are not supported")
    return Path(uri)


def read_mlmodel(folder: Path) -> dict[str, Any]:
    import yaml

    target = folder / MLMODEL
    if not target.is_file():
        raise MlflowException(f"{folder} holds no MLmodel file: it is not a model saved by log_model/save_model",
                              "RESOURCE_DOES_NOT_EXIST")
    loaded = yaml.safe_load(target.read_text())
    if not isinstance(loaded, dict) or not isinstance(loaded.get("flavors"), dict):
        raise MlflowException(f"{target} is not a valid MLmodel file (no 'flavors' mapping)")
    return loaded


def flavor_conf(folder: Path, flavor: str) -> dict[str, Any]:
    flavors = read_mlmodel(folder)["flavors"]
    if flavor not in flavors:
        raise MlflowException(f"the model at {folder} has no {flavor!r} flavour (it has: {', '.join(flavors)}); "
                              f"load it with the matching module's load_model", "RESOURCE_DOES_NOT_EXIST")
    return flavors[flavor]


def unpickle(path: Path) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def pickle_by_value(obj: Any, path: Path) -> str:
    """cloudpickle when it is installed (classes defined in a script load in another process), else pickle."""
    try:
        module = importlib.import_module("cloudpickle")
    except ImportError:
        module = pickle
    with open(path, "wb") as handle:
        module.dump(obj, handle)
    return module.__name__


@dataclass
class ModelSignature:
    """What infer_signature describes: the column names, dtypes and shapes of inputs and outputs."""

    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    params: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs, "params": self.params}


def _describe(data: Any) -> list[dict[str, Any]] | None:
    if data is None:
        return None
    if hasattr(data, "dtypes") and hasattr(data, "columns"):  # a DataFrame
        return [{"name": str(c), "type": str(t)} for c, t in data.dtypes.items()]
    shape = getattr(data, "shape", None)
    dtype = getattr(data, "dtype", None)
    if shape is not None:
        return [{"type": "tensor", "dtype": str(dtype), "shape": [-1, *list(shape)[1:]]}]
    return [{"type": type(data).__name__}]


def infer_signature(model_input: Any = None, model_output: Any = None,
                    params: dict[str, Any] | None = None) -> ModelSignature:
    return ModelSignature(_describe(model_input), _describe(model_output), params)
