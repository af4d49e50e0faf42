"""mlflow.pyfunc for the drop-in: PythonModel, log_model/save_model, and load_model for any flavour.

A PythonModel is pickled (by value with cloudpickle when it is installed, so a class defined in
the training script loads elsewhere); its `artifacts` files are stored in the model folder.
load_model returns a PyFuncModel whose predict calls the python model, or the flavour's own
model (sklearn, pytorch) through that flavour's loader.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from gitexp.mlflow import models
from gitexp.mlflow.exceptions import MlflowException

FLAVOR_NAME = "python_function"
PYTHON_MODEL, ARTIFACTS = "python_model.pkl", "artifacts"


class PythonModel:
    """Subclass and define predict(self, context, model_input, params=None)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Called once when the model is loaded: read context.artifacts here."""

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError


class PythonModelContext:
    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None) -> None:
        self.artifacts = artifacts
        self.model_config = model_config or {}


class PyFuncModel:
    """What load_model returns: predict(data) on whatever model the folder holds."""

    def __init__(self, implementation: Any, metadata: dict[str, Any], context: PythonModelContext | None) -> None:
        self._impl, self.metadata, self._context = implementation, metadata, context

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        impl = self._impl
        if self._context is None:  # a flavour's model (sklearn estimator, torch predictor)
            return impl.predict(data) if params is None else impl.predict(data, params)
        predict = impl.predict if hasattr(impl, "predict") else impl
        wants = list(inspect.signature(predict).parameters)
        args: list[Any] = [self._context, data] if wants[:1] == ["context"] else [data]
        if "params" in wants:
            return predict(*args, params=params)
        return predict(*args)

    def unwrap_python_model(self) -> Any:
        return self._impl

    def __repr__(self) -> str:
        return f"<PyFuncModel {type(self._impl).__name__} from run {self.metadata.get('run_id')}>"


def _saver(python_model: Any, artifacts: dict[str, str] | None, loader_module: str | None,
           data_path: str | None) -> Any:
    def save(folder: Path) -> dict[str, Any]:
        conf: dict[str, Any] = {"python_version": sys.version.split()[0]}
        if python_model is not None:
            conf["cloudpickle_version" if models.pickle_by_value(python_model, folder / PYTHON_MODEL) == "cloudpickle"
                 else "pickle"] = True
            conf["python_model"] = PYTHON_MODEL
            stored = {}
            for key, source in (artifacts or {}).items():
                local = Path(models.local_folder(source))
                target = folder / ARTIFACTS / key / local.name
                target.parent.mkdir(parents=True)
                (shutil.copytree if local.is_dir() else shutil.copy2)(local, target)
                stored[key] = f"{ARTIFACTS}/{key}/{local.name}"
            conf["artifacts"] = stored
        elif loader_module is not None:
            conf["loader_module"] = loader_module
            if data_path is not None:
                data = Path(data_path)
                (shutil.copytree if data.is_dir() else shutil.copy2)(data, folder / data.name)
                conf["data"] = data.name
        else:
            raise MlflowException("pyfunc.log_model needs python_model=, or loader_module= (with data_path=)")
        return conf
    return save


def log_model(artifact_path: str | None = None, loader_module: str | None = None, data_path: str | None = None,
              code_paths: Any = None, infer_code_paths: bool = False, conda_env: Any = None,
              python_model: Any = None, artifacts: dict[str, str] | None = None,
              registered_model_name: str | None = None, *, name: str | None = None,
              metadata: dict[str, Any] | None = None, **kwargs: Any) -> models.ModelInfo:
    save = _saver(python_model, artifacts, loader_module, data_path)
    return models.log_model(FLAVOR_NAME, save, name, artifact_path, None, metadata, registered_model_name)


def save_model(path: str | os.PathLike[str], loader_module: str | None = None, data_path: str | None = None,
               code_paths: Any = None, conda_env: Any = None, python_model: Any = None,
               artifacts: dict[str, str] | None = None, *, metadata: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
    models.save_model(FLAVOR_NAME, _saver(python_model, artifacts, loader_module, data_path), path, None, metadata)


def _loader(name: str) -> Any:
    """The module named by loader_module; MLflow's own flavours map to the drop-in's."""
    if name.startswith("mlflow."):
        name = "gitexp." + name
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MlflowException(f"cannot load this model: its loader module {name!r} cannot be imported ({exc})") \
            from None


def load_model(model_uri: str | os.PathLike[str], suppress_warnings: bool = False, dst_path: str | None = None,
               model_config: dict[str, Any] | None = None) -> PyFuncModel:
    folder = models.local_folder(model_uri, dst_path)
    mlmodel = models.read_mlmodel(folder)
    conf = mlmodel["flavors"].get(FLAVOR_NAME)
    if conf is None:
        raise MlflowException(f"the model at {model_uri} has no python_function flavour; load it with its "
                              f"flavour's load_model ({', '.join(mlmodel['flavors'])})")
    if "python_model" in conf:
        impl = models.unpickle(folder / conf["python_model"])
        paths = {k: str(folder / v) for k, v in (conf.get("artifacts") or {}).items()}
        context = PythonModelContext(paths, model_config)
        if hasattr(impl, "load_context"):
            impl.load_context(context)
        return PyFuncModel(impl, mlmodel, context)
    data = conf.get("data") or conf.get("model_path")
    impl = _loader(conf["loader_module"])._load_pyfunc(str(folder / data) if data else str(folder))
    return PyFuncModel(impl, mlmodel, None)
