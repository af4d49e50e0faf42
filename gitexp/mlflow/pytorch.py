"""mlflow.pytorch for the drop-in: log_model/save_model (torch.save) and load_model (torch.load).

torch is imported only when a model is saved or loaded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from gitexp.mlflow import models
from gitexp.mlflow.exceptions import MlflowException

FLAVOR_NAME = "pytorch"
DATA, FILE = "data", "model.pth"


def _saver(pytorch_model: Any, pickle_module: Any) -> Any:
    def save(folder: Path) -> dict[str, Any]:
        import pickle

        import torch

        (folder / DATA).mkdir()
        module = pickle_module or pickle
        torch.save(pytorch_model, folder / DATA / FILE, pickle_module=module)
        return {"model_data": DATA, "pytorch_version": torch.__version__, "code": None,
                "pickle_module_name": module.__name__}
    return save


def _check_format(serialization_format: str | None) -> None:
    if serialization_format not in (None, "pickle"):
        raise MlflowException(f"serialization_format {serialization_format!r} is not supported by gitexp.mlflow: "
                              "models are saved whole with torch.save ('pickle')")


def _pyfunc() -> dict[str, Any]:
    return {"loader_module": "gitexp.mlflow.pytorch", "data": DATA, "python_version": sys.version.split()[0]}


def log_model(pytorch_model: Any, artifact_path: str | None = None, conda_env: Any = None, code_paths: Any = None,
              pickle_module: Any = None, registered_model_name: str | None = None, *, name: str | None = None,
              metadata: dict[str, Any] | None = None, serialization_format: str | None = None,
              **kwargs: Any) -> models.ModelInfo:
    _check_format(serialization_format)
    return models.log_model(FLAVOR_NAME, _saver(pytorch_model, pickle_module), name, artifact_path, _pyfunc(),
                            metadata, registered_model_name)


def save_model(pytorch_model: Any, path: str | os.PathLike[str], conda_env: Any = None, code_paths: Any = None,
               pickle_module: Any = None, *, metadata: dict[str, Any] | None = None,
               serialization_format: str | None = None, **kwargs: Any) -> None:
    _check_format(serialization_format)
    models.save_model(FLAVOR_NAME, _saver(pytorch_model, pickle_module), path, _pyfunc(), metadata)


def _load(folder: Path, conf: dict[str, Any], **kwargs: Any) -> Any:
    import torch

    data = folder / conf.get("model_data", DATA)
    target = data / FILE if data.is_dir() else data
    kwargs.setdefault("weights_only", False)  # a whole pickled module, as torch.save wrote it
    return torch.load(target, **kwargs)


def load_model(model_uri: str | os.PathLike[str], dst_path: str | None = None, **kwargs: Any) -> Any:
    folder = models.local_folder(model_uri, dst_path)
    return _load(folder, models.flavor_conf(folder, FLAVOR_NAME), **kwargs)


class _TorchPredictor:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        import torch

        self.model.eval()
        with torch.no_grad():
            values = data.to_numpy() if hasattr(data, "to_numpy") else np.asarray(data)
            out = self.model(torch.as_tensor(values, dtype=torch.float32))
        return out.numpy() if hasattr(out, "numpy") else out


def _load_pyfunc(path: str | os.PathLike[str]) -> Any:
    target = Path(path)
    folder = target if (target / models.MLMODEL).is_file() else target.parent
    return _TorchPredictor(_load(folder, models.flavor_conf(folder, FLAVOR_NAME)))


def autolog(disable: bool = False, silent: bool = False, **kwargs: Any) -> None:
    from gitexp.mlflow import autologging

    autologging.enable("pytorch", disable=disable, silent=silent)
