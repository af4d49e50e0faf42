"""mlflow.tracking for the drop-in: `from mlflow.tracking import MlflowClient` keeps working."""

from __future__ import annotations

from gitexp.mlflow.client import MlflowClient

__all__ = ["MlflowClient"]
