"""Storing artifact content: small files as git blobs, large ones once in the LFS store.

A file smaller than `git config exp.lfsThreshold` (default 1 MiB) becomes an ordinary blob;
a larger one (or a small one that itself looks like a pointer) is streamed into the LFS store,
hashed once on the way, and its tree entry is the pointer.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from gitexp.errors import ArtifactError
from gitexp.git import lfs
from gitexp.git.repo import BLOB_MODE, EXEC_MODE, Entry, Repo
from gitexp.store.hashcache import HashCache

DEFAULT_THRESHOLD = 1 << 20


def threshold(repo: Repo) -> int:
    return int(repo.config_number("exp.lfsThreshold", DEFAULT_THRESHOLD))


class Ingest:
    """Stores artifact content for one repository: blobs in git, large files in the LFS store."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.threshold = threshold(repo)
        self.store = lfs.Store(repo)
        self.cache = HashCache(repo.commondir)

    def _blob(self, data: bytes, mode: int) -> tuple[Entry, str]:
        return Entry(self.repo.write_blob(data), mode), hashlib.sha256(data).hexdigest()

    def _pointer(self, pointer: lfs.Pointer, mode: int) -> tuple[Entry, str]:
        return Entry(self.repo.write_blob(pointer.encode()), mode), pointer.oid

    def file(self, src: Path) -> tuple[Entry, str, int]:
        """(tree entry, sha256, size) of the file *src*, its content stored."""
        info = os.stat(src)
        mode = EXEC_MODE if info.st_mode & stat.S_IXUSR else BLOB_MODE
        if info.st_size < self.threshold:
            with open(src, "rb") as handle:
                data = handle.read(self.threshold)
            if len(data) < self.threshold and not lfs.is_candidate(data):
                return (*self._blob(data, mode), len(data))
            info = os.stat(src)  # it grew meanwhile: the cache must be asked about what is there now
        cached = self.cache.get(info)
        if cached and self.store.has(lfs.Pointer(cached, info.st_size)):
            pointer = lfs.Pointer(cached, info.st_size)
        else:
            started = time.time()
            pointer, _ = self.store.add_file(src)
            self.cache.put(os.stat(src), pointer.oid, started)
            self.cache.save()
        return (*self._pointer(pointer, mode), pointer.size)

    def data(self, data: bytes) -> tuple[Entry, str, int]:
        if len(data) < self.threshold and not lfs.is_candidate(data):
            return (*self._blob(data, BLOB_MODE), len(data))
        return self.writer(lambda handle: handle.write(data))

    def writer(self, write: Callable[[Any], Any]) -> tuple[Entry, str, int]:
        """Content produced by *write(handle)*, streamed to a file in the store, never all in memory."""
        fd, tmp = self.store.new_tmp()
        try:
            with os.fdopen(fd, "wb") as raw:
                handle = _HashingWriter(raw)
                write(handle)
            digest = (handle.digest.hexdigest(), handle.size)
            if handle.size < self.threshold:
                data = tmp.read_bytes()
                if not lfs.is_candidate(data):
                    return (*self._blob(data, BLOB_MODE), len(data))
            pointer, _ = self.store.add_tmp(tmp, digest)
            return (*self._pointer(pointer, BLOB_MODE), pointer.size)
        finally:
            tmp.unlink(missing_ok=True)


class _HashingWriter:
    """A file-like sink that hashes what passes through it (pickle only needs write)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.raw.write(view)
        self.size += len(view)
        return len(view)


def collect(directory: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every file under *directory*; symlinks must stay inside it."""
    root = directory.resolve()
    found: list[tuple[str, Path]] = []

    def walk(folder: Path, prefix: str, seen: frozenset[Path]) -> None:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            path, name = Path(entry.path), prefix + entry.name
            real = path.resolve() if entry.is_symlink() else None
            if real is not None and not (real == root or real.is_relative_to(root)):
                raise ArtifactError(f"{path} is a symlink to {real}, outside {directory}; refusing to log it. "
                                    "Log that file explicitly with log_artifact(path, name) if you mean to")
            if entry.is_dir():
                target = real or path.resolve()
                if target not in seen:  # a symlink loop is walked once
                    walk(path, name + "/", seen | {target})
            elif entry.is_file():
                found.append((name, path))
            elif real is None or real.exists():
                warnings.warn(f"gitexp: {path} is not a regular file; not logged", RuntimeWarning, stacklevel=4)
            else:
                raise ArtifactError(f"{path} is a broken symlink (to {real}); remove it or log another folder")

    walk(directory, "", frozenset({root}))
    return found
