"""mlflow.data for the drop-in: dataset descriptions (from_pandas, from_numpy) and log_input.

A dataset logged with log_input becomes an entry of the run's inputs.yaml: its name, a
content digest (sha256 over the data), its source, and the context MLflow records.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp.mlflow.exceptions import MlflowException


@dataclass
class Dataset:
    """What MLflow's Dataset exposes: name, digest, source, schema and profile."""

    name: str
    digest: str
    source: str
    source_type: str = "local"
    schema: str | None = None
    profile: str | None = None
    sha256: str | None = None
    targets: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "digest": self.digest, "source": self.source, "source_type": self.source_type,
               "schema": self.schema, "profile": self.profile}
        return {k: v for k, v in out.items() if v is not None}


def _source(source: Any) -> str:
    if source is None:
        return ""
    return os.fspath(source) if isinstance(source, str | os.PathLike) else str(getattr(source, "uri", source))


def from_pandas(df: Any, source: Any = None, targets: str | None = None, name: str | None = None,
                digest: str | None = None, predictions: str | None = None) -> Dataset:
    import pandas as pd

    hashed = hashlib.sha256(pd.util.hash_pandas_object(df, index=True).values.tobytes())
    hashed.update(json.dumps([str(c) for c in df.columns]).encode())
    schema = json.dumps({"columns": [{"name": str(c), "type": str(t)} for c, t in df.dtypes.items()]})
    profile = json.dumps({"num_rows": len(df), "num_elements": int(df.size)})
    return Dataset(name=name or "dataset", digest=digest or hashed.hexdigest()[:8], source=_source(source),
                   schema=schema, profile=profile, sha256=hashed.hexdigest(), targets=targets)


def from_numpy(features: Any, source: Any = None, targets: Any = None, name: str | None = None,
               digest: str | None = None) -> Dataset:
    import numpy as np

    hashed = hashlib.sha256()
    shapes = {}
    for label, array in (("features", features), ("targets", targets)):
        if array is not None:
            array = np.ascontiguousarray(array)
            hashed.update(f"{label}:{array.dtype}:{array.shape};".encode())
            hashed.update(array.tobytes())
            shapes[label] = list(array.shape)
    profile = json.dumps({"shapes": shapes})
    return Dataset(name=name or "dataset", digest=digest or hashed.hexdigest()[:8], source=_source(source),
                   profile=profile, sha256=hashed.hexdigest())


def log_input(run: Any, dataset: Any, context: str | None, tags: dict[str, str] | None) -> None:
    """Record *dataset* (from mlflow.data, this module, or a file path) in the run's inputs.yaml."""
    if dataset is None:
        return  # MLflow 3 allows log_input(model=...) alone: there is no dataset to record
    if isinstance(dataset, str | os.PathLike) and Path(dataset).exists():
        run.log_input(dataset)
        return
    if not hasattr(dataset, "digest") or not hasattr(dataset, "name"):
        raise MlflowException(f"log_input needs a dataset from mlflow.data (from_pandas, from_numpy...), "
                              f"not {type(dataset).__name__}")
    entry: dict[str, Any] = {"kind": "mlflow-dataset", "digest": str(dataset.digest),
                             "source": _source(getattr(dataset, "source", None))}
    for key in ("sha256", "schema", "profile", "source_type"):
        value = getattr(dataset, key, None)
        if value is not None and not callable(value):
            entry[key] = value if isinstance(value, str) else str(value)
    if context:
        entry["context"] = context
    if tags:
        entry["tags"] = {str(k): str(v) for k, v in tags.items()}
    from gitexp.store import names

    run.add_inputs({names.check_key(str(dataset.name), "input"): entry})
