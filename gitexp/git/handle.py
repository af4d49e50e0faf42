"""An opened repository: libgit2's handle and the repository's paths, which every part of
gitexp.git.repo.Repo builds on (see there); the values those parts speak in (object ids, file
modes, tree entries) are entry.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pygit2

from gitexp.errors import StorageError
from gitexp.git.entry import BLOB_MODE, EXEC_MODE, LINK_MODE, TREE_MODE, ZERO, Entry, TreeSpec

__all__ = ["BLOB_MODE", "EXEC_MODE", "LINK_MODE", "TREE_MODE", "ZERO", "Entry", "Handle", "TreeSpec"]


class Handle:
    """libgit2's handle on a repository, with its git dir, common dir and working tree."""

    def __init__(self, handle: pygit2.Repository) -> None:
        self._r = handle
        self.gitdir = Path(handle.path)
        common = self.gitdir / "commondir"
        # Journals and caches belong to the repository, not to one linked worktree.
        self.commondir = (self.gitdir / common.read_text().strip()).resolve() if common.exists() else self.gitdir
        self.workdir = Path(handle.workdir) if handle.workdir else None

    def _peel(self, oid: str, kind: type[Any]) -> Any:
        """The *kind* (pygit2.Tree, pygit2.Commit) that object *oid* is or leads to; a missing or
        unreadable object (a damaged or hostile run, a pack removed as it was read) is a StorageError."""
        try:
            return self._r[oid].peel(kind)
        except (KeyError, ValueError, TypeError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read object {oid[:12]} as a {kind.__name__.lower()} in {self.gitdir}: "
                               f"{exc}") from exc

    def _subtree(self, entry: pygit2.Object) -> pygit2.Tree:
        """The tree a tree entry of mode TREE_MODE names. libgit2 looks objects up untyped; the mode
        says what it is (a damaged tree whose mode lies fails where the caller iterates it)."""
        return cast(pygit2.Tree, self._r[entry.id])

    def has_object(self, oid: str) -> bool:
        # The odb's existence check: `oid in repository` reads (and inflates) the whole object.
        try:
            return bool(self._r.odb.exists(oid))
        except (ValueError, pygit2.GitError):
            return False
