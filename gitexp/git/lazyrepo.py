"""A Repo that opens libgit2 only when something beyond the repository's paths and refs is asked of it.

load_runs hands one to the records it makes when gitfiles could locate the repository: a warm
`git exp ls` then never imports pygit2 (70 ms), while a record's history, env or artifacts, read
through record.repo, open the real gitexp.git.repo.Repo on first use.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from gitexp.git.gitfiles import Location, locate, read_refs

if TYPE_CHECKING:
    from gitexp.git.repo import Repo


class LazyRepo:
    """gitdir, commondir and refs() from git's files; anything else from the Repo opened on first use."""

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

    def refs(self, prefix: str) -> dict[str, str]:
        """Repo.refs(prefix); read from git's files unless they hold anything unusual."""
        found = read_refs(self.commondir, prefix)
        # A linked worktree's refs are the common dir's; a stray one in its own git dir, libgit2 judges.
        if found is not None and (self.gitdir == self.commondir
                                  or not os.path.lexists(self.gitdir / prefix.rpartition("/")[0])):
            return found
        return self.open().refs(prefix)

    def __getattr__(self, name: str) -> Any:
        # Only for names not set above: workdir (core.bare decides it), config, read_path...
        if name.startswith("__") or name in ("location", "_repo", "_lock"):
            raise AttributeError(name)  # copy/pickle probes, and a half-made instance: not the Repo's
        return getattr(self.open(), name)

    def __fspath__(self) -> str:
        # Repo.discover(a LazyRepo), as some callers do with a path or a Repo, opens the same repository.
        return os.fspath(self.location.workdir)

    def __repr__(self) -> str:
        return f"LazyRepo({str(self.gitdir)!r}, {'opened' if self.opened else 'not opened'})"


def real(repo: Repo | LazyRepo) -> Repo:
    """*repo* itself, or the Repo behind a LazyRepo (opened now): for code that needs a Repo as such."""
    return repo.open() if isinstance(repo, LazyRepo) else repo


def open_repository(repo: Repo | LazyRepo | str | os.PathLike[str] | None) -> Repo | LazyRepo:
    """*repo* when it is a repository already, else the one found from that path (None: the current
    directory) as Repo.discover finds it: a LazyRepo where gitfiles can locate it, else a Repo."""
    if isinstance(repo, LazyRepo):
        return repo
    if repo is None or isinstance(repo, str | os.PathLike):
        start = None if repo is None else os.fspath(repo)
        location = locate(start) if start is None or isinstance(start, str) else None
        if location is not None:
            return LazyRepo(location)
    from gitexp.git.repo import Repo

    return repo if isinstance(repo, Repo) else Repo.discover(repo)
