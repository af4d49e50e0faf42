"""Reading git config for a Repo: one consistent snapshot, remembered values, and whether the
files it came from changed since (a Repo reused from the pool re-reads it only then)."""

from __future__ import annotations

import os
import time
from typing import Any

import pygit2

from gitexp.errors import GitexpError
from gitexp.git.handle import Handle

_CONFIG_FILES = ((pygit2.enums.ConfigLevel.GLOBAL, ".gitconfig"), (pygit2.enums.ConfigLevel.XDG, "config"),
                 (pygit2.enums.ConfigLevel.SYSTEM, "gitconfig"))
_user_config_files: list[str] | None = None  # where libgit2 looks for them: set once it starts


def set_config_search_path(directory: str) -> None:
    """Point libgit2's global/XDG/system config lookup at *directory* (used to isolate tests)."""
    global _user_config_files
    for level, _ in _CONFIG_FILES:
        pygit2.settings.search_path[level] = directory
    _user_config_files = None


def _config_files() -> list[str]:
    global _user_config_files
    if _user_config_files is None:
        _user_config_files = [os.path.join(folder, name) for level, name in _CONFIG_FILES
                              for folder in str(pygit2.settings.search_path[level]).split(os.pathsep) if folder]
    return _user_config_files


class ConfigReader(Handle):
    """git config as libgit2 reads it, and the remotes it names."""

    def __init__(self, handle: pygit2.Repository) -> None:
        super().__init__(handle)
        self._config: pygit2.Config | None = None
        self._values: dict[str, Any] = {}  # what was read from _config
        self._config_stamp: tuple[Any, ...] | None = None  # the files _config was read from, as they were

    def config(self, key: str) -> str | None:
        found = self._values.get(key, self._values)
        if found is not self._values:
            return found
        try:
            if self._config is None:
                # One consistent snapshot per Repo: a run reads a dozen keys at start.
                stamp = self._config_files_stamp()
                self._config = self._r.config.snapshot()
                # Included files are not in the stamp: such a config is read afresh by every run.
                includes = any(e.name.startswith(("include.", "includeif.")) for e in self._config)
                self._config_stamp = None if includes else stamp
            found = self._config[key]
        except KeyError:
            found = None
        except pygit2.GitError as exc:
            raise GitexpError(f"cannot read git config {key}: {exc}") from exc
        self._values[key] = found
        return found

    def _config_files_stamp(self) -> tuple[Any, ...] | None:
        """The stat of every file the config is read from, so that a pooled Repo's next run re-reads
        it only when one changed (a snapshot and a dozen lookups cost 0.1 ms a run). None when one
        changed within 2 s: it could change again, unseen, within the clock's granularity."""
        now = time.time_ns()
        stamp: list[tuple[int, int, int, int] | None] = []
        for path in (f"{self.commondir}/config", f"{self.gitdir}/config.worktree", *_config_files()):
            try:
                info = os.stat(path)
            except OSError:
                stamp.append(None)
                continue
            if now - info.st_mtime_ns < 2_000_000_000:
                return None
            stamp.append((info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino))
        return tuple(stamp)

    def config_bool(self, key: str, default: bool) -> bool:
        value = self.config(key)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0", ""):
            return False
        raise GitexpError(f"git config {key} = {value!r} is not a boolean; set it to true or false")

    def config_number(self, key: str, default: float) -> float:
        value = self.config(key)
        if value is None:
            return default
        units = {"k": 2**10, "m": 2**20, "g": 2**30}
        text = value.strip().lower()
        scale = units.get(text[-1:], 1)
        try:
            return float(text[:-1] if scale != 1 else text) * scale
        except ValueError:
            raise GitexpError(f"git config {key} = {value!r} is not a number; fix it with "
                              f"`git config {key} NUMBER`") from None

    def remote_url(self, name: str | None = None) -> str | None:
        # Remembered with the config values it comes from (url.*.insteadOf applied by libgit2).
        key = f"\0remote-url {name or ''}"
        if key not in self._values:
            remotes = {r.name: r.url for r in self._r.remotes}
            self.config("core.bare")  # takes the config snapshot and its stamp, if not taken yet
            self._values[key] = remotes.get(name) if name else \
                remotes.get("origin") or next(iter(remotes.values()), None)
        return self._values[key]

    def remote_names(self) -> list[str]:
        # Only anonymous remotes, which a repository does not list, have no name.
        return [r.name for r in self._r.remotes if r.name is not None]
