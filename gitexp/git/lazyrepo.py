"""LazyRepo: a RepoReader (gitexp/git/reader.py) that opens libgit2 only when it must.

load_runs hands one to the records it makes when gitfiles could locate the repository: a warm
`git exp ls` then never imports pygit2 (70 ms), since the paths and refs it needs come from git's
files, while a record's history, env or artifacts, read through record.repo, open the real
gitexp.git.repo.Repo on first use. Code that writes needs that Repo itself: real(reader).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from gitexp.git import shelf
from gitexp.git.gitfiles import Location, locate, read_refs, refs_state

if TYPE_CHECKING:
    from gitexp.git.handle import Entry
    from gitexp.git.reader import RepoReader
    from gitexp.git.repo import Repo


# ((common dir, prefix), refs_state, refs) of the last refs read from files (LazyRepo.refs).
_last_refs: tuple[tuple[str, str], tuple[tuple[object, ...] | None, dict[str, str]], dict[str, str]] | None = None


class LazyRepo:
    """gitdir, commondir and refs() from git's files; every other read from the Repo opened on first use."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.gitdir = location.gitdir
        self.commondir = location.commondir
        self._repo: Repo | None = None
        self._lock = threading.Lock()  # records of one listing may be read from several threads

    def open(self) -> Repo:
        """The real Repo, opened now unless it was already."""
        if self._repo is None:
            with self._lock:
                if self._repo is None:
                    from gitexp.git.repo import Repo

                    # Discovery from the folder whose .git gitfiles found finds that .git first.
                    self._repo = Repo.discover(self.location.workdir)
        return self._repo

    @property
    def opened(self) -> bool:
        return self._repo is not None

    @property
    def workdir(self) -> Path | None:
        # Not the folder gitfiles found the .git in: core.bare and a --separate-git-dir decide it.
        return self.open().workdir

    def refs(self, prefix: str) -> dict[str, str]:
        """Repo.refs(prefix); read from git's files unless they hold anything unusual.

        The refs last read are remembered, with the refs_state taken before reading them: while the
        state is the same, so are the refs, and a command that lists the runs twice (a listing and
        the runs it reads, a handle and its run) reads 100,000 refs once."""
        global _last_refs
        state = refs_state(self.gitdir, self.commondir, prefix)
        key = (str(self.commondir), prefix)
        if state is not None and _last_refs is not None and _last_refs[:2] == (key, state):
            return dict(_last_refs[2])
        found = read_refs(self.commondir, prefix, None if state is None else state[1])
        # A linked worktree's refs are the common dir's; a stray one in its own git dir, libgit2 judges.
        if found is not None and (self.gitdir == self.commondir
                                  or not os.path.lexists(self.gitdir / prefix.rpartition("/")[0])):
            found = shelf.with_shelved(self.commondir, prefix, found)
            # (refs_state tells nothing in a linked worktree: nothing is remembered there.)
            _last_refs = None if state is None else (key, state, dict(found))
            return found
        return self.open().refs(prefix)

    # Every other read is the Repo's: see RepoReader for what each answers.

    def ref(self, name: str) -> str | None:
        return self.open().ref(name)

    def config(self, key: str) -> str | None:
        return self.open().config(key)

    def config_bool(self, key: str, default: bool) -> bool:
        return self.open().config_bool(key, default)

    def config_number(self, key: str, default: float) -> float:
        return self.open().config_number(key, default)

    def has_object(self, oid: str) -> bool:
        return self.open().has_object(oid)

    def read_blob(self, oid: str) -> bytes:
        return self.open().read_blob(oid)

    def read_path(self, commit: str, path: str) -> bytes | None:
        return self.open().read_path(commit, path)

    def read_commit_path(self, commit: str, path: str) -> tuple[bool, bytes | None]:
        return self.open().read_commit_path(commit, path)

    def entry_oid(self, commit: str, path: str) -> str | None:
        return self.open().entry_oid(commit, path)

    def tree_of(self, commit: str) -> str:
        return self.open().tree_of(commit)

    def tree_entries(self, commit: str, path: str = "") -> dict[str, Entry]:
        return self.open().tree_entries(commit, path)

    def tree_files(self, commit: str, path: str = "") -> dict[str, Entry]:
        return self.open().tree_files(commit, path)

    def notes_map(self, notes_commit: str) -> dict[str, str]:
        return self.open().notes_map(notes_commit)

    def diff_trees(self, old: str | None, new: str) -> str:
        return self.open().diff_trees(old, new)

    def diff_stat(self, old: str | None, new: str | None) -> list[tuple[str, str, int, int]]:
        return self.open().diff_stat(old, new)

    def commit_info(self, commit: str) -> tuple[list[str], str, int]:
        return self.open().commit_info(commit)

    def walk(self, start: str, limit: int) -> list[tuple[str, list[str], str, int]]:
        return self.open().walk(start, limit)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.open().is_ancestor(ancestor, descendant)

    def resolve_commit(self, text: str) -> str | None:
        return self.open().resolve_commit(text)

    def is_signed(self, commit: str) -> bool:
        return self.open().is_signed(commit)

    def __fspath__(self) -> str:
        # Repo.discover(a LazyRepo), as some callers do with a path or a Repo, opens the same repository.
        return os.fspath(self.location.workdir)

    def __repr__(self) -> str:
        return f"LazyRepo({str(self.gitdir)!r}, {'opened' if self.opened else 'not opened'})"


def libgit2_open(repo: RepoReader) -> bool:
    """Whether reads through *repo* go to a libgit2 repository open already: a Repo, or a LazyRepo
    that opened one."""
    return not isinstance(repo, LazyRepo) or repo.opened


def real(repo: RepoReader) -> Repo:
    """The Repo behind *repo*: itself when it is one, else the one a LazyRepo opens (now, unless it
    has already): for code that writes, or needs a Repo as such."""
    if isinstance(repo, LazyRepo):
        return repo.open()
    from gitexp.git.repo import Repo  # loaded already: *repo* is one

    if not isinstance(repo, Repo):
        raise TypeError(f"not a repository gitexp opened: {repo!r}")
    return repo


def open_repository(repo: RepoReader | str | os.PathLike[str] | None) -> RepoReader:
    """*repo* when it is a repository already, else the one found from that path (None: the current
    directory) as Repo.discover finds it: a LazyRepo where gitfiles can locate it, else a Repo."""
    if isinstance(repo, LazyRepo) or not (repo is None or isinstance(repo, str | os.PathLike)):
        return repo  # a LazyRepo (itself a PathLike) or a Repo
    start = None if repo is None else os.fspath(repo)
    location = locate(start) if start is None or isinstance(start, str) else None
    if location is not None:
        return LazyRepo(location)
    from gitexp.git.repo import Repo

    return Repo.discover(repo)
