"""The working tree: its snapshot (as it is now, as a tree, written through a kept pack), and which
of its files git's index tracks."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable

import pygit2
from pygit2.enums import FileMode

from gitexp.errors import StorageError
from gitexp.git.staging import Staging

# Code snapshots by (repository, base, size limit, status with each file's stat): the runs of
# a sweep start from the same working tree, and hashing it again for each would be waste.
_snapshots: dict[tuple[object, ...], tuple[str, tuple[str, ...]]] = {}


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _signature(info: os.stat_result | None) -> tuple[int, ...] | None:
    return None if info is None else (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


class Snapshots(Staging):
    """Snapshots of the working tree, and what the index tracks."""

    def snapshot(self, base: str | None, max_size: int) -> tuple[str | None, list[str]]:
        """Tree of the working tree as it is now (tracked edits plus untracked, non-ignored files).

        Returns (tree oid, files left out for exceeding *max_size*). For a clean tree the
        result is the base commit's own tree, so a snapshot of clean code costs nothing; an
        unchanged dirty tree (a sweep's next run) costs only the status.
        """
        if self.workdir is None:
            return None, []
        try:
            status = self._r.status(untracked_files="all")
        except pygit2.GitError as exc:
            raise StorageError(f"cannot read the status of {self.workdir}: {exc}") from exc
        top = os.fspath(self.workdir)
        stats = {path: _lstat(f"{top}/{path}") for path in status}
        key = (str(self.commondir), base, max_size, frozenset(
            (path, flags, _signature(stats[path])) for path, flags in status.items()))
        cached = _snapshots.get(key)
        if cached is not None and self.has_object(cached[0]):
            return cached[0], list(cached[1])
        index = pygit2.Index()
        if base:
            index.read_tree(self._r[base].peel(pygit2.Tree))
        skipped: list[str] = []
        written: set[str] = set()
        settled = True
        wt_deleted = pygit2.enums.FileStatus.WT_DELETED | pygit2.enums.FileStatus.INDEX_DELETED
        for path, flags in status.items():
            full, info = self.workdir / path, stats[path]
            if info is None or (flags & wt_deleted and not full.exists()):
                if path in index:
                    index.remove(path)
                continue
            # A file changed within the clock's granularity of this read could change again
            # without its stat changing: such a snapshot is used once, never cached.
            settled = settled and info.st_mtime < time.time() - 0.1
            try:
                if stat.S_ISLNK(info.st_mode):
                    oid, mode = self._r.create_blob(os.fsencode(os.readlink(full))), FileMode.LINK
                elif stat.S_ISREG(info.st_mode):
                    if info.st_size > max_size:
                        skipped.append(path)
                        continue
                    oid = self._r.create_blob_fromworkdir(path)
                    mode = FileMode.BLOB_EXECUTABLE if info.st_mode & stat.S_IXUSR else FileMode.BLOB
                else:
                    continue
            except (OSError, pygit2.GitError):  # removed or rewritten while being read: left out, said so
                skipped.append(path)
                settled = False
                continue
            index.add(pygit2.IndexEntry(path, oid, mode))
            written.add(str(oid))
        tree = str(index.write_tree(self._r))
        self._keep_snapshot(tree, written, status)
        if settled:
            if len(_snapshots) > 64:
                _snapshots.clear()
            _snapshots[key] = (tree, tuple(sorted(skipped)))
        return tree, sorted(skipped)

    def _keep_snapshot(self, tree: str, blobs: set[str], paths: Iterable[str]) -> None:
        """Copy a snapshot's new objects, which libgit2 wrote loose (applying the repository's
        filters), into a kept pack: until the run's first commit is on its ref nothing reaches
        them, and a concurrent `git gc --prune=now` deletes unreachable loose objects."""
        root = self._r[tree].peel(pygit2.Tree)
        dirs = {""}
        for path in paths:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        fresh = set(blobs)
        for folder in dirs:
            try:
                fresh.add(str(root.id if not folder else root[folder].id))
            except KeyError:  # a folder whose files were all deleted
                continue
        try:
            for oid in fresh:
                kind, data = self._r.odb.read(oid)
                self._staged[oid] = (int(kind), data)
            with self._stage_lock:
                self._names[tree] = frozenset(fresh)  # what a commit naming the tree reaches in this pack
        except (KeyError, pygit2.GitError) as exc:
            raise StorageError(f"the code snapshot's object {oid[:12]} vanished as it was written ({exc}); "
                               "is `git gc --prune=now` running? Start the run again") from exc
        self.write_staged(roots={tree})

    def untracked(self, paths: list[str]) -> list[str]:
        """Those of *paths* (relative to the work tree) that git's index does not hold: all of them
        when there is no index yet. A staged file is tracked."""
        try:
            index = pygit2.Index(os.path.join(self.gitdir, "index"))
        except (OSError, pygit2.GitError, ValueError):
            return paths
        return [path for path in paths if path not in index]

    def index_stamp(self) -> tuple[int, ...]:
        """Which version of git's index file is there now (inode, size, modification time): what
        untracked() answers changes only with it. () without an index."""
        try:
            info = os.stat(os.path.join(self.gitdir, "index"))
        except OSError:
            return ()
        return info.st_ino, info.st_size, info.st_mtime_ns
