"""A run's content in memory: meta, params, tags, metric series; what gets committed."""

from __future__ import annotations

import math
from array import array
from collections.abc import MutableSequence
from dataclasses import dataclass, field
from typing import Any

from gitexp.errors import ParamConflictError

FINAL_STATUSES = ("FINISHED", "FAILED", "KILLED", "CRASHED")
STATUSES = ("RUNNING", *FINAL_STATUSES)


@dataclass
class Series:
    """One metric's full history plus the running summary kept in metrics.yaml.

    A series being logged (Series.logging()) keeps its columns in arrays, 24 bytes a value
    instead of about 100 in lists, and releases the rows its committed chunks hold
    (release_committed()): a run's memory follows what it logged since its last commit, not its
    length. A series read back holds lists.
    """

    steps: MutableSequence[int] = field(default_factory=list)
    times: MutableSequence[float] = field(default_factory=list)
    values: MutableSequence[float] = field(default_factory=list)
    last: float = math.nan
    last_step: int = -1
    min: float = math.nan
    max: float = math.nan
    # Rendered TSV rows and the blob holding them, so a checkpoint only formats new rows.
    rendered: list[str] = field(default_factory=list)
    rendered_count: int = 0
    blob: str | None = None
    # A long history is committed as append-only chunks (gitexp/store/chunks.py): how many rows
    # the chunks written so far hold, and the entries of each level of the chunk tree not yet
    # folded into a subtree, as (name, mode, oid).
    sealed: int = 0
    chunk_levels: list[list[tuple[str, int, str]]] = field(default_factory=lambda: [[]])
    released: int = 0  # rows before the first one in the columns, held by committed chunks only

    @classmethod
    def logging(cls) -> Series:
        return cls(steps=array("q"), times=array("d"), values=array("d"))

    def add(self, step: int, time: float, value: float) -> None:
        try:
            self.steps.append(step)
        except OverflowError:  # a step beyond 64 bits: this series keeps a list from now on
            self.steps = [*self.steps, step]
        self.times.append(time)
        self.values.append(value)
        if step >= self.last_step:
            self.last, self.last_step = value, step
        if value == value:  # NaN never becomes the min or max
            if not self.min <= value:
                self.min = value
            if not self.max >= value:
                self.max = value
        self.blob = None

    def release_committed(self) -> None:
        """Forget the rows that committed chunks hold; call once their commit is on the ref."""
        done = self.sealed - self.released
        if done > 0:
            del self.steps[:done], self.times[:done], self.values[:done]
            self.released = self.sealed

    @property
    def count(self) -> int:
        return self.released + len(self.values)

    def summary(self) -> dict[str, Any]:
        return {"last": self.last, "step": self.last_step, "min": self.min, "max": self.max,
                "count": self.count}


def normalize(value: Any) -> Any:
    """Turn a param value into plain YAML types (numpy scalars, tuples, paths...)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if type(value) not in (bool, int, float, str, type(None)):
            # Subclasses such as IntEnum or numpy.float64 serialise as their base type.
            for base in (bool, int, float, str):
                if isinstance(value, base):
                    return base(value)
        return value
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return normalize(item())
    if hasattr(value, "tolist"):
        return normalize(value.tolist())
    if isinstance(value, (set, frozenset)):
        return sorted((normalize(v) for v in value), key=repr)
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if not isinstance(a, dict) else a == b


def merge_params(current: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Deep-merge *new* into a copy of *current*; a leaf logged again with another value is an error."""
    merged = dict(current)
    for key, value in new.items():
        path = f"{prefix}{key}"
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = merge_params(merged[key], value, f"{path}.")
        elif key in merged and not _same(merged[key], value):
            raise ParamConflictError(
                f"param {path!r} was already logged as {merged[key]!r}; it cannot change to {value!r} "
                "(params are immutable in a run: log the new value under another key, or start a new run)"
            )
        else:
            merged[key] = value
    return merged


@dataclass
class RunState:
    meta: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Series] = field(default_factory=dict)
    env: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    # Other top-level tree entries carried from commit to commit (code.patch, output.log, artifacts).
    files: dict[str, Any] = field(default_factory=dict)
    # Artifacts by path under artifacts/ -> repo.Entry (a content blob, or an LFS pointer blob).
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.meta["id"]

    def add_metric(self, key: str, step: int, time: float, value: float) -> None:
        series = self.metrics.get(key)
        if series is None:
            series = self.metrics[key] = Series.logging()
        series.add(step, time, value)

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = merge_params(self.params, params)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.meta["tags"] = {**self.meta.get("tags", {}), **tags}

    def update_meta(self, changes: dict[str, Any]) -> None:
        self.meta.update(changes)
