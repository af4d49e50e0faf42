"""Reading runs: load_runs, get_run, and resolving a run from an id prefix or a name."""

from __future__ import annotations

import gc
import marshal
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp import names, store
from gitexp.errors import AmbiguousRunError, CorruptRunError, RunNotFoundError
from gitexp.repo import Repo
from gitexp.state import Series

CACHE_FILE = Path("gitexp") / "cache" / "runs-v1.marshal"
MISSING: Any = None


@dataclass
class RunRecord:
    """What gitexp knows of one run, as of its ref's current commit."""

    id: str
    experiment: str
    commit: str
    meta: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    repo: Repo = field(repr=False, compare=False)
    env_blob: str | None = field(default=None, repr=False)
    _env: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return store.run_ref(self.experiment, self.id)

    @property
    def name(self) -> str:
        return self.meta.get("name") or ""

    @property
    def status(self) -> str:
        return self.meta.get("status", "RUNNING")

    @property
    def tags(self) -> dict[str, str]:
        return self.meta.get("tags") or {}

    @property
    def start(self) -> str | None:
        return self.meta.get("start")

    @property
    def duration(self) -> float | None:
        return self.meta.get("duration")

    @property
    def base_commit(self) -> str | None:
        return (self.meta.get("git") or {}).get("commit")

    @property
    def env(self) -> dict[str, Any]:
        if self._env is None:
            data = self.repo.read_path(self.commit, fmt.ENV)
            self._env = fmt.load_yaml(data, f"{fmt.ENV} of run {self.id}") or {}
        return self._env

    @property
    def artifacts(self) -> list[Any]:
        """The run's artifacts (gitexp.artifacts.Artifact: path, size, sha256, lfs, present), by path."""
        from gitexp.artifacts import list_artifacts

        return list_artifacts(self.repo, self.commit)

    def history(self, key: str) -> Series:
        """The full history of metric *key* (steps, times, values), read on demand."""
        if key not in self.metrics:
            raise RunNotFoundError(f"run {self.id} has no metric {key!r}; it has: "
                                   f"{', '.join(sorted(self.metrics)) or 'no metrics'}")
        return fmt.read_history(self.repo, self.commit, key)

    def read(self, path: str) -> bytes | None:
        """Raw bytes of a file of the run commit's tree (output.log, code.patch...)."""
        return self.repo.read_path(self.commit, path)

    def to_dict(self, env: bool = False) -> dict[str, Any]:
        out = {"id": self.id, "experiment": self.experiment, "commit": self.commit, "meta": self.meta,
               "params": self.params, "metrics": self.metrics}
        if env:
            out["env"] = self.env
        return out


class _Cache:
    """Parsed summaries keyed by commit id: a commit never changes, so an entry never goes stale."""

    def __init__(self, repo: Repo) -> None:
        self.path = repo.commondir / CACHE_FILE
        self.entries: dict[str, tuple] = {}
        self.dirty = False
        # marshal.load on a file reads piecemeal through Python calls (5x slower than loads of
        # the bytes), and the cyclic GC would walk the many new containers for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            loaded = marshal.loads(self.path.read_bytes())
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, EOFError, ValueError, TypeError):
            pass  # no cache or an unreadable one: rebuild from git
        finally:
            if collecting:
                gc.enable()

    def save(self, keep: Iterable[str]) -> None:
        if not self.dirty:
            return
        keep = set(keep)
        data = {k: v for k, v in self.entries.items() if k in keep}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                marshal.dump(data, handle)
            tmp.replace(self.path)
        except (OSError, ValueError):  # ValueError: a value marshal cannot store (from a foreign tool)
            pass  # a read-only repository still lists runs, only slower


def split_ref(ref: str, namespace: str = names.REF_PREFIX) -> tuple[str, str]:
    experiment, _, run_id = ref[len(namespace):].rpartition("/")
    return experiment, run_id


def load_runs(repo: Repo | str | os.PathLike[str] | None = None, experiment: str | None = None,
              recover: bool = True, namespace: str = names.REF_PREFIX) -> list[RunRecord]:
    """Every run (of *experiment*, or all), newest first.

    Runs whose process died on this machine are finished as CRASHED first (*recover*);
    *namespace* is refs/experiments-trash/ to list removed runs.
    """
    repo = repo if isinstance(repo, Repo) else Repo.discover(repo)
    if recover:
        store.recover(repo)
    prefix = namespace + (f"{names.check_experiment(experiment)}/" if experiment else "")
    refs = repo.refs(prefix)
    cache = _Cache(repo)
    records = []
    for ref, commit in refs.items():
        exp, run_id = split_ref(ref, namespace)
        if experiment and exp != experiment:
            continue
        entry = cache.entries.get(commit)
        if entry is None:
            try:
                entry = fmt.read_listing(repo, commit)
            except CorruptRunError as exc:
                warnings.warn(f"gitexp: skipping run {ref}: {exc}", RuntimeWarning, stacklevel=2)
                continue
            cache.entries[commit] = entry
            cache.dirty = True
        meta, params, metrics, env_blob = entry
        records.append(RunRecord(run_id, exp, commit, meta, params, metrics, repo, env_blob))
    cache.save(refs.values())
    records.sort(key=lambda r: r.id, reverse=True)
    return records


def resolve(records: list[RunRecord], text: str) -> RunRecord:
    """The one run whose id is *text*, whose name is *text*, or whose id starts with *text*."""
    for matches in ([r for r in records if r.id == text], [r for r in records if r.name == text],
                    [r for r in records if r.id.startswith(text)] if len(text) >= 4 else []):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = "\n".join(f"  {r.id}  {r.experiment}  {r.name}" for r in matches[:10])
            raise AmbiguousRunError(f"{text!r} matches {len(matches)} runs:\n{listed}\n"
                                    "give more characters of the id, or the full id")
    raise RunNotFoundError(f"no run matches {text!r} (by id, id prefix of at least 4 characters, or name); "
                           "`git exp ls` lists the runs")


def get_run(id_or_name: str, repo: Repo | str | os.PathLike[str] | None = None,
            experiment: str | None = None) -> RunRecord:
    return resolve(load_runs(repo, experiment), id_or_name)
