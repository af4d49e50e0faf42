"""Artifacts: files under artifacts/ in a run's tree; large ones as Git LFS pointers.

Run methods (log_artifact...) call the log_* functions here, passing the run itself (an
ArtifactRun); gitexp/store/ingest.py stores the content, gitexp/ops/restore.py writes it back out.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from gitexp.errors import ArtifactError, CorruptArtifactError, GitexpError
from gitexp.git import lfs
from gitexp.git.reader import RepoReader
from gitexp.git.repo import BLOB_MODE, EXEC_MODE, Entry, Repo
from gitexp.store import codec as fmt
from gitexp.store.ingest import Ingest, collect

if TYPE_CHECKING:
    from gitexp.store.state import RunState

FIGURE_FORMATS = ("png", "svg", "pdf")
MODEL_FORMATS = ("pickle",)


@dataclass(frozen=True)
class Artifact:
    """One file of a run's artifacts/ folder."""

    path: str  # relative to artifacts/, '/'-separated
    size: int
    sha256: str
    lfs: bool  # stored in Git LFS (the tree holds a pointer)
    blob: str  # the git blob: the content itself, or the pointer
    present: bool  # the content is in this repository (always true for plain blobs)
    mode: int = BLOB_MODE
    problem: str | None = None  # why it cannot be restored (a malformed pointer...)

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "size": self.size, "sha256": self.sha256, "lfs": self.lfs,
               "present": self.present}
        if self.problem:
            out["problem"] = self.problem
        return out


def check_name(name: object, what: str = "artifact name") -> str:
    """A relative '/'-separated path that stays inside the artifacts folder wherever it is restored."""
    if not isinstance(name, str) or not name:
        raise ArtifactError(f"invalid {what} {name!r}: it must be a non-empty string such as 'model.pt'")
    reason = None
    parts = name.split("/")
    if name.startswith("/"):
        reason = "it is absolute"
    elif any(ord(c) < 32 or c == "\x7f" for c in name):
        reason = "it contains a control character"
    elif "\\" in name:
        reason = "it contains '\\', a path separator on Windows"
    elif ".." in parts:
        reason = "it has a '..' component, which would leave the artifacts folder"
    elif "" in parts or "." in parts:
        reason = "it has an empty or '.' component"
    elif any(p.lower() == ".git" for p in parts):
        reason = "it has a '.git' component, which git refuses in trees"
    elif len(name.encode()) > 4096:
        reason = "it is longer than 4096 bytes"
    if reason:
        raise ArtifactError(f"invalid {what} {name!r}: {reason}; artifact names are relative paths inside the "
                            "run's artifacts/ folder, like 'model.pt' or 'plots/loss.png'")
    return name


def check_conflicts(existing: dict[str, Any], new: Iterable[str]) -> None:
    """Refuse a file where a folder of artifacts is, or a folder where an artifact file is."""
    new = list(new)
    folders = {str(p) for path in (*existing, *new) for p in PurePosixPath(path).parents if str(p) != "."}
    files = set(existing) | set(new)
    for path in new:
        if path in folders:
            raise ArtifactError(f"artifact name {path!r} is already a folder of artifacts in this run; "
                                "log the file under another name")
        for parent in PurePosixPath(path).parents:
            if str(parent) in files:
                raise ArtifactError(f"artifact name {path!r} needs {str(parent)!r} to be a folder, but it is "
                                    "an artifact file of this run; log it under another name")


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


# -- what the Run methods do ----------------------------------------------------------------------


class ArtifactRun(Protocol):
    """What the log_* functions need of a live run (gitexp.tracking.liverun.Run is one)."""

    repo: Repo
    state: RunState  # read only: its artifacts, to refuse a name that conflicts with them
    ended: bool

    @property
    def id(self) -> str: ...

    def add_artifacts(self, entries: dict[str, Entry]) -> None:
        """Record the stored *entries* (name -> blob) in the run, journaled before it returns."""


def _usable(run: ArtifactRun) -> Ingest:
    if run.ended:
        raise GitexpError(f"run {run.id} has ended; no artifact was logged. Start a new run, or log inside "
                          "the `with gitexp.start_run(...)` block")
    return Ingest(run.repo)


def _io_failed(run: ArtifactRun, what: str, exc: OSError) -> None:
    # A full disk must not kill hours of training: say what was lost and keep going.
    warnings.warn(f"gitexp: run {run.id}: could not store {what} ({exc}); it was not logged",
                  RuntimeWarning, stacklevel=4)


def log_artifact(run: ArtifactRun, path: str | os.PathLike[str], name: str | None = None) -> list[str]:
    """Log the file (or folder) *path* as artifacts/<name>; returns the artifact paths logged."""
    src = Path(path)
    if src.is_dir():
        return log_artifacts(run, src, name if name is not None else src.resolve().name)
    name = check_name(name if name is not None else src.name)
    ingest = _usable(run)
    check_conflicts(run.state.artifacts, [name])
    try:
        os.close(os.open(src, os.O_RDONLY))
    except OSError as exc:
        raise ArtifactError(f"cannot log {os.fspath(path)!r} as artifact {name!r}: {exc.strerror}") from None
    try:
        entry, _, _ = ingest.file(src)
    except OSError as exc:
        _io_failed(run, f"artifact {name!r} from {src}", exc)
        return []
    run.add_artifacts({name: entry})
    return [name]


def log_artifacts(run: ArtifactRun, directory: str | os.PathLike[str], prefix: str | None = None) -> list[str]:
    """Log every file under *directory*, keeping its structure, under artifacts/<prefix>/."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ArtifactError(f"cannot log artifacts from {os.fspath(directory)!r}: it is not a folder")
    base = f"{check_name(prefix.strip('/'), 'artifact prefix')}/" if prefix and prefix.strip("/") else ""
    files = [(check_name(base + rel), path) for rel, path in collect(folder)]
    ingest = _usable(run)
    check_conflicts(run.state.artifacts, [n for n, _ in files])
    entries: dict[str, Entry] = {}
    for name, path in files:
        try:
            entries[name] = ingest.file(path)[0]
        except OSError as exc:
            _io_failed(run, f"artifact {name!r} from {path}", exc)
    if entries:
        run.add_artifacts(entries)
    return list(entries)


def _log_data(run: ArtifactRun, name: str, produce: Callable[[], bytes]) -> str | None:
    name = check_name(name)
    ingest = _usable(run)
    check_conflicts(run.state.artifacts, [name])
    data = produce()
    try:
        entry = ingest.data(data)[0]
    except OSError as exc:
        _io_failed(run, f"artifact {name!r}", exc)
        return None
    run.add_artifacts({name: entry})
    return name


def log_text(run: ArtifactRun, text: str, name: str) -> str | None:
    if not isinstance(text, str):
        raise ArtifactError(f"log_text needs a str, not {type(text).__name__}; use log_artifact for files")
    return _log_data(run, name, text.encode)


def log_dict(run: ArtifactRun, obj: Any, name: str) -> str | None:
    suffix = PurePosixPath(str(name)).suffix.lower()
    if suffix in (".yaml", ".yml"):
        from gitexp.store.state import normalize

        return _log_data(run, name, lambda: fmt.dump_yaml(normalize(obj)))
    if suffix == ".json":
        return _log_data(run, name, lambda: json.dumps(obj, indent=2, default=str).encode() + b"\n")
    raise ArtifactError(f"log_dict cannot tell the format of {name!r}: end the name with .yaml, .yml or .json")


def log_figure(run: ArtifactRun, figure: Any, name: str) -> str | None:
    suffix = PurePosixPath(str(name)).suffix.lower().lstrip(".")
    if suffix not in FIGURE_FORMATS:
        raise ArtifactError(f"log_figure cannot save {name!r}: end the name with .png, .svg or .pdf")
    if not callable(getattr(figure, "savefig", None)):
        raise ArtifactError(f"log_figure needs a matplotlib Figure, not {type(figure).__name__}")

    def render() -> bytes:
        buffer = io.BytesIO()
        # No creation date in SVG/PDF: the same figure gives the same bytes, stored once.
        metadata = {"Date": None} if suffix == "svg" else {"CreationDate": None} if suffix == "pdf" else {}
        figure.savefig(buffer, format=suffix, metadata=metadata)
        return buffer.getvalue()

    return _log_data(run, name, render)


def log_model(run: ArtifactRun, obj: Any, name: str, format: str = "pickle") -> list[str]:
    """Save *obj* as artifacts/<name>/model.pkl with artifacts/<name>/model.yaml describing it."""
    if format not in MODEL_FORMATS:
        raise ArtifactError(f"unknown model format {format!r}; gitexp saves models as: {', '.join(MODEL_FORMATS)}")
    folder = check_name(str(name).strip("/"))
    ingest = _usable(run)
    names = [f"{folder}/model.pkl", f"{folder}/model.yaml"]
    check_conflicts(run.state.artifacts, names)
    try:
        entry, sha256, size = ingest.writer(lambda handle: pickle.dump(obj, handle, protocol=pickle.DEFAULT_PROTOCOL))
    except OSError as exc:
        _io_failed(run, f"model {name!r}", exc)
        return []
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"cannot pickle model {name!r} ({type(obj).__name__}): {exc}") from exc
    kind = type(obj)
    info = {"format": "pickle", "pickle_protocol": pickle.DEFAULT_PROTOCOL, "file": "model.pkl",
            "class": f"{kind.__module__}.{kind.__qualname__}", "python": sys.version.split()[0],
            "sha256": sha256, "size": size}
    meta_entry = ingest.data(fmt.dump_yaml(info))[0]
    run.add_artifacts({names[0]: entry, names[1]: meta_entry})
    return names


# -- reading ------------------------------------------------------------------------------------


def list_artifacts(repo: RepoReader, commit: str) -> list[Artifact]:
    """Every artifact of the run commit *commit*, sorted by path; tree data is treated as untrusted."""
    store = lfs.Store(repo)
    out = []
    for path, entry in sorted(repo.tree_files(commit, fmt.ARTIFACTS_DIR).items()):
        where = f"{fmt.ARTIFACTS_DIR}/{path}"
        try:  # the rule restoring applies: a name it refuses is a problem of the run (`git exp verify`)
            check_name(path, "artifact path in the run")
        except ArtifactError as exc:
            out.append(Artifact(path, 0, "", False, entry.oid, False, entry.mode, str(exc)))
            continue
        if entry.mode not in (BLOB_MODE, EXEC_MODE):
            out.append(Artifact(path, 0, "", False, entry.oid, False, entry.mode,
                                f"{where} is not a regular file (mode {entry.mode:o}); refusing it"))
            continue
        data = repo.read_blob(entry.oid)
        if not lfs.is_candidate(data):
            out.append(Artifact(path, len(data), hashlib.sha256(data).hexdigest(), False, entry.oid, True,
                                entry.mode))
            continue
        try:
            pointer = lfs.parse_pointer(data, where)
        except CorruptArtifactError as exc:
            out.append(Artifact(path, 0, "", True, entry.oid, False, entry.mode, str(exc)))
            continue
        out.append(Artifact(path, pointer.size, pointer.oid, True, entry.oid, store.has(pointer), entry.mode))
    return out
