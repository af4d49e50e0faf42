"""Inputs: the dataset versions a run used, recorded in inputs.yaml (hashed, not copied unless asked).

A file's hash is the sha256 of its content. A folder's is the sha256 of its manifest: one
line `<sha256 of the file>  <path relative to the folder>\\n` per file (symlinks followed,
as `find -L` does), sorted by the path's bytes; that is what
`(cd DIR && find -L . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum` prints
for names without newlines or backslashes. File hashes are remembered by stat data
(gitexp/store/hashcache.py), so an unchanged dataset is not read again by the next run.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

from gitexp.errors import ArtifactError, GitexpError
from gitexp.git import lfs
from gitexp.git.repo import Repo
from gitexp.store import names
from gitexp.store.hashcache import HashCache


class InputRun(Protocol):
    """What log_input needs of a live run (gitexp.tracking.liverun.Run, which calls it)."""

    repo: Repo
    ended: bool

    @property
    def id(self) -> str: ...

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> list[str]: ...

    def add_inputs(self, entries: dict[str, Any]) -> None: ...


def hash_file(path: Path, cache: HashCache) -> tuple[str, int]:
    info = os.stat(path)
    cached = cache.get(info)
    if cached is not None:
        return cached, info.st_size
    started = time.time()
    fd = os.open(path, os.O_RDONLY)
    try:
        digest, size = lfs.hash_stream(fd)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    cache.put(after, digest, started)
    return digest, size


def files_under(folder: Path) -> list[tuple[str, Path]]:
    """(relative path, path) of every file under *folder*, following symlinks, each real folder once."""
    found: list[tuple[str, Path]] = []
    seen: set[Path] = set()

    def walk(current: Path, prefix: str) -> None:
        real = current.resolve()
        if real in seen:
            return  # a symlink loop, or a folder linked twice
        seen.add(real)
        with os.scandir(current) as listing:
            for entry in listing:
                if entry.is_dir():
                    walk(Path(entry.path), f"{prefix}{entry.name}/")
                elif entry.is_file():
                    found.append((prefix + entry.name, Path(entry.path)))

    walk(folder, "")
    found.sort(key=lambda item: os.fsencode(item[0]))
    return found


def describe_path(path: Path, cache: HashCache) -> dict[str, Any]:
    if path.is_file():
        digest, size = hash_file(path, cache)
        return {"kind": "file", "sha256": digest, "size": size}
    manifest = hashlib.sha256()
    total = 0
    files = files_under(path)
    for rel, file in files:
        digest, size = hash_file(file, cache)
        manifest.update(f"{digest}  ".encode() + os.fsencode(rel) + b"\n")
        total += size
    return {"kind": "directory", "sha256": manifest.hexdigest(), "size": total, "files": len(files)}


def is_hf_dataset(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "datasets" and (
        hasattr(obj, "_fingerprint") or callable(getattr(obj, "items", None)))


def describe_dataset(obj: Any) -> dict[str, Any]:
    """What identifies a Hugging Face `datasets` Dataset (or DatasetDict) version."""
    if not hasattr(obj, "_fingerprint"):  # a DatasetDict: one entry per split
        splits = {str(k): describe_dataset(v) for k, v in obj.items()}
        joined = ",".join(f"{k}={v.get('fingerprint')}" for k, v in sorted(splits.items()))
        return {"kind": "hf-dataset-dict", "fingerprint": hashlib.sha256(joined.encode()).hexdigest()[:16],
                "splits": splits}
    info = getattr(obj, "info", None)
    out: dict[str, Any] = {"kind": "hf-dataset", "fingerprint": obj._fingerprint}
    for key, value in (("num_rows", getattr(obj, "num_rows", None)), ("split", getattr(obj, "split", None)),
                       ("name", getattr(info, "dataset_name", None)), ("config", getattr(info, "config_name", None)),
                       ("version", getattr(info, "version", None))):
        if value is not None:
            out[key] = value if isinstance(value, int) else str(value)
    files = [f.get("filename") for f in getattr(obj, "cache_files", None) or [] if isinstance(f, dict)]
    if files:
        out["cache_files"] = [f for f in files if f]
    return out


def log_input(run: InputRun, obj: Any, name: str | None, source: str | None, copy: bool) -> dict[str, Any] | None:
    """Record *obj* (a file or folder path, or a Hugging Face dataset) as an input of *run*."""
    if run.ended:
        raise GitexpError(f"run {run.id} has ended; the input was not logged")
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        if not path.exists():
            raise ArtifactError(f"cannot log input {os.fspath(obj)!r}: no such file or folder")
        name = names.check_key(name or path.resolve().name, "input")
        cache = HashCache(run.repo.commondir)
        try:
            entry = describe_path(path, cache)
        except OSError as exc:
            warnings.warn(f"gitexp: run {run.id}: could not hash input {name!r} ({exc}); it was not logged",
                          RuntimeWarning, stacklevel=3)
            return None
        finally:
            cache.save()
        entry["source"] = source or str(path.resolve())
        if copy:
            logged = run.log_artifact(path, f"inputs/{name}")
            if logged:
                entry["artifact"] = f"inputs/{name}"
    elif is_hf_dataset(obj):
        entry = describe_dataset(obj)
        name = names.check_key(name or entry.get("name") or "dataset", "input")
        if source or entry.get("name"):
            entry["source"] = source or entry["name"]
        if copy:
            raise ArtifactError("copy=True needs a file or folder; save the dataset (dataset.save_to_disk(DIR)) "
                                "and log that folder")
    else:
        raise ArtifactError(f"log_input takes a file or folder path or a Hugging Face datasets object, not "
                            f"{type(obj).__name__}")
    run.add_inputs({name: entry})
    return entry
