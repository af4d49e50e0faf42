"""mlflow.artifacts for the drop-in: download, list and read artifacts of runs by runs:/ URI or run id."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from gitexp.mlflow import runs
from gitexp.mlflow.exceptions import MlflowException


def _target(artifact_uri: str | None, run_id: str | None, artifact_path: str | None) -> tuple[str, str]:
    if artifact_uri is not None:
        return runs.parse_runs_uri(artifact_uri)
    if run_id is None:
        raise MlflowException("give artifact_uri (runs:/<run_id>/<path>) or run_id")
    return run_id, artifact_path or ""


def download_artifacts(artifact_uri: str | None = None, run_id: str | None = None, artifact_path: str | None = None,
                       dst_path: str | None = None, **_: Any) -> str:
    run, path = _target(artifact_uri, run_id, artifact_path)
    return runs.download_artifacts(run, path, dst_path)


def list_artifacts(artifact_uri: str | None = None, run_id: str | None = None,
                   artifact_path: str | None = None) -> list[Any]:
    run, path = _target(artifact_uri, run_id, artifact_path)
    return runs.list_artifacts(run, path)


def load_text(artifact_uri: str) -> str:
    with tempfile.TemporaryDirectory(prefix="gitexp-mlflow-") as tmp:
        return Path(download_artifacts(artifact_uri, dst_path=tmp)).read_text()


def load_dict(artifact_uri: str) -> Any:
    text = load_text(artifact_uri)
    if artifact_uri.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)
