"""Repo: a git repository as gitexp uses it, opened through libgit2 (pygit2).

Repo is one class put together from parts, each a class in its own module of this layer, built on
the parts it uses; every pygit2 error becomes a GitexpError in them:

    Handle        handle.py    the opened libgit2 handle and the paths; object ids, modes, Entry
    ConfigReader  config.py    git config: one snapshot, read again only when its files change
    ObjectReader  objects.py   blobs, trees, notes trees, commits, diffs between trees, history
    Staging       staging.py   objects written as one pack, kept until a ref reaches them
    Refs          refs.py      refs created and moved by compare-and-swap, reflogs, HEAD
    Snapshots     snapshot.py  the working tree's snapshot, and what the index tracks

This module opens repositories (discover) and pools them for reuse (borrow, give_back). The names
other modules import from here stay importable from here (`from gitexp.git.repo import Repo, Entry,
BLOB_MODE, ...`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pygit2

from gitexp.errors import NotARepositoryError
from gitexp.git.config import set_config_search_path
from gitexp.git.handle import BLOB_MODE, EXEC_MODE, LINK_MODE, TREE_MODE, ZERO, Entry, TreeSpec
from gitexp.git.refs import HeadState, RefConflictError, RefLockedError, Refs
from gitexp.git.snapshot import Snapshots

__all__ = ["BLOB_MODE", "EXEC_MODE", "LINK_MODE", "TREE_MODE", "ZERO", "Entry", "HeadState", "RefConflictError",
           "RefLockedError", "Repo", "TreeSpec", "set_config_search_path"]

# Repos given back by ended runs, by git dir: libgit2 objects are used by one thread at a
# time, so a Repo is pooled only when no live run holds it.
_pool: dict[str, Repo] = {}
_pool_lock = threading.Lock()


def _pool_after_fork() -> None:
    global _pool_lock
    _pool_lock = threading.Lock()  # a parent's thread may have held it
    _pool.clear()


os.register_at_fork(after_in_child=_pool_after_fork)


def _identity(gitdir: Path) -> tuple[int, int, int]:
    """Which directory *gitdir* is, and whether git changed its top level since (its ctime moves
    with every lock file git takes there): a repository deleted and created again is another one
    even where the file system hands out the same inode, and a Repo is reused only by runs that
    follow each other with no git command in between."""
    try:
        info = gitdir.stat()
    except OSError:
        return (-1, -1, -1)
    return info.st_dev, info.st_ino, info.st_ctime_ns


class Repo(Refs, Snapshots):
    """A repository: its config, objects, refs and working tree (see the parts above)."""

    def __init__(self, handle: pygit2.Repository) -> None:
        super().__init__(handle)
        self._identity = _identity(self.gitdir)

    @classmethod
    def borrow(cls, path: str | os.PathLike[str] | None = None) -> Repo:
        """discover(), reusing a Repo that was given back: opening one and reading its HEAD and
        config costs about 0.7 ms, which a sweep of short runs would pay for every run."""
        start = os.fspath(path) if path is not None else os.getcwd()
        try:
            found = pygit2.discover_repository(start)
        except pygit2.GitError:
            found = None
        with _pool_lock:
            repo = _pool.pop(found, None) if found else None
        if repo is None or repo._identity != _identity(repo.gitdir):
            return cls.discover(path)
        if repo._config_stamp is None or repo._config_stamp != repo._config_files_stamp():
            repo._config, repo._values = None, {}  # the config changed since: read it afresh
        return repo

    def give_back(self) -> None:
        """Offer this Repo to the next borrow(); the caller must not use it any more."""
        if not self._staged and not self._unwritten:
            with _pool_lock:
                _pool[str(self._r.path)] = self

    @classmethod
    def discover(cls, path: str | os.PathLike[str] | None = None) -> Repo:
        start = os.fspath(path) if path is not None else os.getcwd()
        try:
            found = pygit2.discover_repository(start)
        except pygit2.GitError as exc:
            raise NotARepositoryError(f"cannot search for a git repository from {start}: {exc}") from exc
        if found is None:
            raise NotARepositoryError.nowhere(start)
        try:
            return cls(pygit2.Repository(found))
        except pygit2.GitError as exc:
            raise NotARepositoryError(f"cannot open the git repository at {found}: {exc}") from exc
