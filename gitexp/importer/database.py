"""Reading an MLflow sqlite database for the importer (read-only connection, plain sqlite3).

Tables read: experiments, runs, params, tags, metrics (the full history, in insertion order),
and where they exist logged_models (MLflow 3) and inputs/datasets/input_tags.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from gitexp.importer.stores import FileStore, Problem, RunHeader, SourceError, SourceRun, dataset_entry, local_location


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.resolve().parent
        try:
            self.db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
            self.tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:
            raise SourceError(f"{path} cannot be opened as an MLflow sqlite database: {exc}") from None
        missing = {"experiments", "runs", "params", "tags", "metrics"} - self.tables
        if missing:
            raise SourceError(f"{path} is not an MLflow database: it lacks the table(s) {', '.join(sorted(missing))}")

    def _rows(self, sql: str, *args: Any) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def list_runs(self) -> Iterator[RunHeader | Problem]:
        try:
            experiments = {str(i): (str(n), stage) for i, n, stage in
                           self._rows("SELECT experiment_id, name, lifecycle_stage FROM experiments")}
            runs = self._rows("SELECT run_uuid, experiment_id, start_time, lifecycle_stage FROM runs "
                              "ORDER BY start_time, run_uuid")
        except sqlite3.Error as exc:
            raise SourceError(f"{self.path}: the runs cannot be listed ({exc})") from None
        for run_id, exp_id, start, stage in runs:
            name, exp_stage = experiments.get(str(exp_id), (str(exp_id), "active"))
            yield RunHeader(str(run_id), str(exp_id), name, start, "deleted" in (stage, exp_stage), None)

    def load(self, header: RunHeader) -> SourceRun:
        try:
            return self._load(header)
        except sqlite3.Error as exc:
            raise SourceError(f"run {header.run_id} in {self.path} cannot be read: {exc}") from None

    def _load(self, header: RunHeader) -> SourceRun:
        rid = header.run_id
        row = self._rows("SELECT name, status, start_time, end_time, user_id, artifact_uri FROM runs "
                         "WHERE run_uuid = ?", rid)[0]
        run = SourceRun(header, name=row[0] or "", status=row[1] or "FINISHED", start_ms=row[2], end_ms=row[3],
                        user=row[4] or "")
        run.params = {k: v for k, v in self._rows("SELECT key, value FROM params WHERE run_uuid = ?", rid)}
        run.tags = {k: v or "" for k, v in self._rows("SELECT key, value FROM tags WHERE run_uuid = ?", rid)}
        for key, value, stamp, step, is_nan in self._rows(
                "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? ORDER BY rowid", rid):
            run.metrics.setdefault(key, []).append((int(step or 0), int(stamp or 0),
                                                    math.nan if is_nan else float(value)))
        location = local_location(row[5], self.base, Path.cwd())
        if location is None:
            run.notes.append(f"artifacts at {row[5]} are not local; not imported")
        elif location.is_dir():
            run.artifacts.append(("", location))
        if "logged_models" in self.tables:
            for model_id, name, where in self._rows(
                    "SELECT model_id, name, artifact_location FROM logged_models WHERE source_run_id = ? AND "
                    "(lifecycle_stage IS NULL OR lifecycle_stage = 'active') ORDER BY creation_timestamp_ms", rid):
                folder = local_location(where, self.base, Path.cwd())
                if folder is not None and folder.is_dir():
                    run.artifacts.append((str(name or model_id), folder))
        if {"inputs", "datasets"} <= self.tables:
            self._inputs(run)
        return run

    def _inputs(self, run: SourceRun) -> None:
        context = "(SELECT value FROM input_tags t WHERE t.input_uuid = i.input_uuid AND t.name = " \
                  "'mlflow.data.context')" if "input_tags" in self.tables else "NULL"
        for name, digest, kind, source, schema, profile, ctx in self._rows(
                f"SELECT d.name, d.digest, d.dataset_source_type, d.dataset_source, d.dataset_schema, "
                f"d.dataset_profile, {context} FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id "
                "WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND i.destination_id = ?",
                run.header.run_id):
            run.inputs[str(name or "dataset")] = dataset_entry(digest, source, kind, schema, profile, ctx)

    def close(self) -> None:
        self.db.close()


def open_store(source: str | Path) -> FileStore | SqliteStore:
    """The store at *source*: an mlruns/ folder (or one experiment folder in it), a sqlite database file,
    or a sqlite:/// or file: URI of either."""
    text = str(source)
    parsed = urlparse(text)
    if parsed.scheme == "sqlite":
        path = Path(unquote(text[len("sqlite:///"):] if text.startswith("sqlite:///") else parsed.path))
    elif parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    else:
        path = Path(text)
    if path.is_dir():
        return FileStore(path)
    if not path.exists():
        raise SourceError(f"MLflow store {text!r} does not exist; give an mlruns/ folder or an MLflow sqlite "
                          "database file (e.g. mlflow.db)")
    with open(path, "rb") as handle:
        magic = handle.read(16)
    if magic != b"SQLite format 3\x00":
        raise SourceError(f"{text!r} is neither a folder (an MLflow file store, mlruns/) nor a sqlite database")
    return SqliteStore(path)
