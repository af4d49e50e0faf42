"""Reading MLflow's stores for the importer: the file store (mlruns/) and the sqlite database.

Both are read only (the database through a read-only sqlite3 connection). list_runs() returns
a header per run, or a Problem for what cannot even be listed; load(header) reads one run
completely or raises SourceError saying what is unreadable, so one corrupt run never stops
the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from gitexp.errors import GitexpError

FILE_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_NOT_RUNS = {"tags", "models", "datasets", "traces", ".trash"}


class SourceError(GitexpError):
    """An MLflow store (or one of its runs) that cannot be read."""


@dataclass
class Problem:
    where: str
    message: str


@dataclass
class RunHeader:
    run_id: str
    experiment_id: str
    experiment: str
    start_ms: int | None
    deleted: bool
    location: Any  # the run folder (file store) or None (sqlite)


@dataclass
class SourceRun:
    header: RunHeader
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    user: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, int, float]]] = field(default_factory=dict)  # key -> (step, ms, value)
    artifacts: list[tuple[str, Path]] = field(default_factory=list)  # (prefix under artifacts/, local folder)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was left out (remote artifacts...)


def _yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
        # (ValueError: text that is not UTF-8, and well-formed YAML of no value, a date of month 13)
        raise SourceError(f"{path} cannot be read: {exc}") from None
    if not isinstance(loaded, dict):
        raise SourceError(f"{path} is not a YAML mapping")
    return loaded


def local_location(uri: str | None, *bases: Path) -> Path | None:
    """The local folder an MLflow artifact location names, or None when it is remote."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "mlflow-artifacts":  # `mlflow server`'s default destination: ./mlartifacts
        return next((b / "mlartifacts" / unquote(parsed.path).lstrip("/") for b in bases), None)
    if parsed.scheme and len(parsed.scheme) > 1:
        return None
    path = Path(uri)
    if path.is_absolute():
        return path
    return next((b / path for b in bases if (b / path).exists()), bases[0] / path if bases else path)


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(key, file) under a params/, tags/ or metrics/ folder: keys with '/' are nested folders."""
    if not folder.is_dir():
        return
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            path = Path(root) / name
            yield path.relative_to(folder).as_posix(), path


def parse_metric_lines(text: str, key: str) -> list[tuple[int, int, float]]:
    """File store metric lines: `timestamp value step` (old stores: no step)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) not in (2, 3):
                raise ValueError(f"{len(parts)} fields")
            out.append((int(parts[2]) if len(parts) == 3 else 0, int(parts[0]), float(parts[1])))
        except ValueError as exc:
            raise SourceError(f"metric {key!r}, line {number}: {line[:60]!r} is not `timestamp value step` "
                              f"({exc})") from None
    return out


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        meta = root / "meta.yaml"
        # SOURCE may be mlruns/ itself or one experiment folder inside it.
        self.experiment_dirs = [root] if meta.is_file() else sorted(
            p for p in root.iterdir() if p.is_dir() and p.name not in _NOT_RUNS)

    def list_runs(self) -> Iterator[RunHeader | Problem]:
        for folder in self.experiment_dirs:
            try:
                exp = _yaml(folder / "meta.yaml")
            except SourceError as exc:
                yield Problem(str(folder), f"experiment folder unreadable: {exc}")
                continue
            exp_id, name = str(exp.get("experiment_id", folder.name)), str(exp.get("name", folder.name))
            exp_deleted = exp.get("lifecycle_stage") == "deleted"
            for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in _NOT_RUNS):
                start, deleted = None, exp_deleted
                try:
                    meta = _yaml(run_dir / "meta.yaml")
                    start = meta.get("start_time")
                    deleted = deleted or meta.get("lifecycle_stage") == "deleted"
                except SourceError:
                    pass  # load() reports it, with the run's id
                yield RunHeader(run_dir.name, exp_id, name, start if isinstance(start, int) else None, deleted,
                                run_dir)

    def load(self, header: RunHeader) -> SourceRun:
        run_dir: Path = header.location
        meta = _yaml(run_dir / "meta.yaml")
        status = meta.get("status")
        run = SourceRun(header, name=str(meta.get("run_name") or ""),
                        status=FILE_STATUSES.get(status, str(status)) if status is not None else "FINISHED",
                        start_ms=meta.get("start_time"), end_ms=meta.get("end_time"),
                        user=str(meta.get("user_id") or ""))
        try:
            run.params = {k: p.read_text(encoding="utf-8") for k, p in _files(run_dir / "params")}
            run.tags = {k: p.read_text(encoding="utf-8") for k, p in _files(run_dir / "tags")}
            for key, path in _files(run_dir / "metrics"):
                run.metrics[key] = parse_metric_lines(path.read_text(encoding="utf-8"), key)
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{run_dir}: {exc}") from None
        location = local_location(meta.get("artifact_uri"), self.root)
        if location is None or not location.is_dir():
            if (run_dir / "artifacts").is_dir():  # the store was moved: its artifacts came along
                location = run_dir / "artifacts"
            elif location is None:
                run.notes.append(f"artifacts at {meta.get('artifact_uri')} are not local; not imported")
        if location is not None and location.is_dir():
            run.artifacts.append(("", location))
        self._models(run, run_dir.parent)
        self._inputs(run, run_dir)
        return run

    def _models(self, run: SourceRun, exp_dir: Path) -> None:
        """MLflow 3 keeps logged models beside the runs (<experiment>/models/<id>/)."""
        models = exp_dir / "models"
        if not models.is_dir():
            return
        for model_dir in sorted(p for p in models.iterdir() if p.is_dir()):
            try:
                meta = _yaml(model_dir / "meta.yaml")
            except SourceError as exc:
                run.notes.append(f"logged model {model_dir.name}: {exc}")
                continue
            if meta.get("source_run_id") != run.header.run_id:
                continue
            location = local_location(meta.get("artifact_location"), self.root)
            if location is None or not location.is_dir():
                location = model_dir / "artifacts"
            if location.is_dir():
                run.artifacts.append((str(meta.get("name") or model_dir.name), location))

    def _inputs(self, run: SourceRun, run_dir: Path) -> None:
        for link in sorted((run_dir / "inputs").glob("*/meta.yaml")):
            try:
                meta = _yaml(link)
                if meta.get("source_type") != "DATASET":
                    continue
                dataset = _yaml(run_dir.parent / "datasets" / str(meta.get("source_id")) / "meta.yaml")
            except SourceError as exc:
                run.notes.append(f"dataset input {link.parent.name}: {exc}")
                continue
            context = (meta.get("tags") or {}).get("mlflow.data.context")
            run.inputs[str(dataset.get("name") or "dataset")] = dataset_entry(
                dataset.get("digest"), dataset.get("source"), dataset.get("source_type"), dataset.get("schema"),
                dataset.get("profile"), context)


def dataset_entry(digest: Any, source: Any, source_type: Any, schema: Any, profile: Any,
                  context: Any) -> dict[str, Any]:
    entry = {"kind": "mlflow-dataset", "digest": digest, "source": source, "source_type": source_type,
             "schema": schema, "profile": profile, "context": context}
    return {k: str(v) for k, v in entry.items() if v is not None}
