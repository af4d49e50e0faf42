"""MLflow's entity classes (Run, RunInfo, RunData, Metric...), built from gitexp runs.

    from gitexp.mlflow.entities import Metric, Param, RunTag, ViewType

A run seen through the drop-in reads as MLflow shows it: params are strings, metrics are last
values, times are milliseconds, and MLflow's system tags (mlflow.runName, mlflow.user,
mlflow.parentRunId...) are derived from the run's meta.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitexp.store.isotime import parse_iso

# gitexp's CRASHED (the process died) has no MLflow name; FAILED is the closest.
STATUS_TO_MLFLOW = {"CRASHED": "FAILED"}
PARENT_TAG, NAME_TAG, NOTE_TAG, USER_TAG = "mlflow.parentRunId", "mlflow.runName", "mlflow.note.content", "mlflow.user"


class ViewType:
    ACTIVE_ONLY, DELETED_ONLY, ALL = 1, 2, 3


class RunStatus:
    RUNNING, SCHEDULED, FINISHED, FAILED, KILLED = "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"

    @staticmethod
    def is_terminated(status: str) -> bool:
        return status in ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int = 0  # milliseconds since the epoch
    step: int = 0


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str = "active"

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunInputs:
    dataset_inputs: list[Any] = field(default_factory=list)


@dataclass
class Run:
    info: RunInfo
    data: RunData
    inputs: RunInputs = field(default_factory=RunInputs)


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None


@dataclass
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None


def millis(iso: str | None) -> int | None:
    return None if not iso else round(parse_iso(iso) * 1000)


def param_strings(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Params as MLflow has them: flat keys (nested gitexp params joined with '.'), string values."""
    from gitexp.store.fields import flatten

    return {key: str(value) for key, value in flatten(params, prefix).items()}


def run_tags(meta: dict[str, Any]) -> dict[str, str]:
    """The run's tags plus the mlflow.* system tags MLflow would have set, derived from meta."""
    tags = dict(meta.get("tags") or {})
    tags[NAME_TAG] = meta.get("name") or ""
    if meta.get("user"):
        tags[USER_TAG] = str(meta["user"])
    if meta.get("description"):
        tags[NOTE_TAG] = str(meta["description"])
    if meta.get("parent_run"):
        tags[PARENT_TAG] = str(meta["parent_run"])
    commit = (meta.get("git") or {}).get("commit")
    if commit:
        tags["mlflow.source.git.commit"] = commit
    command = meta.get("command") or []
    if len(command) > 1:
        tags.setdefault("mlflow.source.name", str(command[1]))
    tags.setdefault("mlflow.source.type", "LOCAL")
    return tags


def make_run(meta: dict[str, Any], params: dict[str, Any], metrics: dict[str, float],
             lifecycle_stage: str = "active") -> Run:
    status = meta.get("status", "RUNNING")
    info = RunInfo(run_id=meta["id"], experiment_id=meta["experiment"], run_name=meta.get("name") or "",
                   user_id=str(meta.get("user") or ""), status=STATUS_TO_MLFLOW.get(status, status),
                   start_time=millis(meta.get("start")), end_time=millis(meta.get("end")),
                   artifact_uri=f"runs:/{meta['id']}/", lifecycle_stage=lifecycle_stage)
    data = RunData(metrics=metrics, params=param_strings(params), tags=run_tags(meta))
    return Run(info, data)


def from_record(record: Any, lifecycle_stage: str = "active") -> Run:
    """An MLflow Run for a gitexp RunRecord (what load_runs returns)."""
    metrics = {k: float(v.get("last", float("nan"))) for k, v in record.metrics.items() if isinstance(v, dict)}
    return make_run({**record.meta, "id": record.id, "experiment": record.experiment}, record.params, metrics,
                    lifecycle_stage)


def from_live(run: Any) -> Run:
    """An MLflow Run for a live gitexp Run of this process, including values not yet written."""
    run.flush_journal()  # buffered metric values move into run.state
    state = run.state
    metrics = {key: series.last for key, series in state.metrics.items()}
    return make_run(state.meta, state.params, metrics)
