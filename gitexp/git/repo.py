"""The one module that talks to libgit2: every pygit2 error becomes a GitexpError here."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileMode

from gitexp.errors import GitexpError, NotARepositoryError, StorageError
from gitexp.git import maintenance, pack
from gitexp.warn import warn

ZERO = "0" * 40
TREE_MODE = int(FileMode.TREE)
BLOB_MODE = int(FileMode.BLOB)
EXEC_MODE = int(FileMode.BLOB_EXECUTABLE)
LINK_MODE = int(FileMode.LINK)

# A tree to build: name -> blob bytes, a nested mapping (subtree), or an existing object
# given as Entry (used to reuse the code snapshot tree and unchanged metric blobs for free).
TreeSpec = Mapping[str, "bytes | TreeSpec | Entry"]


@dataclass(frozen=True)
class Entry:
    oid: str
    mode: int = BLOB_MODE


@dataclass(frozen=True)
class HeadState:
    commit: str | None  # None: a branch without commits yet
    branch: str | None  # None: HEAD detached at *commit*


# Code snapshots by (repository, base, size limit, status with each file's stat): the runs of
# a sweep start from the same working tree, and hashing it again for each would be waste.
_snapshots: dict[tuple[object, ...], tuple[str, tuple[str, ...]]] = {}
_patches: dict[tuple[str | None, str], str] = {}
# Repos given back by ended runs, by git dir: libgit2 objects are used by one thread at a
# time, so a Repo is pooled only when no live run holds it.
_pool: dict[str, Repo] = {}
_pool_lock = threading.Lock()


def _pool_after_fork() -> None:
    global _pool_lock
    _pool_lock = threading.Lock()  # a parent's thread may have held it
    _pool.clear()


os.register_at_fork(after_in_child=_pool_after_fork)


@contextlib.contextmanager
def _trusting(trusted: bool) -> Iterator[None]:
    """Let libgit2 point a ref at an object without looking it up, when gitexp has just written it
    into a pack of its own: libgit2 does not know that pack yet, and finding it rescans the pack
    folder (about 0.3 ms, a tenth of a short run). The check is libgit2's default, so it is put
    back at once."""
    if not trusted:
        yield
        return
    pygit2.settings.enable_strict_object_creation(False)
    try:
        yield
    finally:
        pygit2.settings.enable_strict_object_creation(True)


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


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _signature(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


class RefConflictError(StorageError):
    """A compare-and-swap ref update lost a race; the caller reloads and retries."""


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


_offsets: dict[tuple[int, tuple[str, str]], str] = {}  # (quarter hour, zone) -> UTC offset, "+0100"


def _local_offset(when: int) -> str:
    # Time zones change offset only on the quarter hour (in UTC too: every offset in use is a
    # multiple of 15 minutes), so one localtime() call covers a quarter hour of commits. The
    # zone's names are in the key: time.tzset() may switch zones within a process.
    bucket = (when // 900, time.tzname)
    found = _offsets.get(bucket)
    if found is None:
        minutes = time.localtime(when).tm_gmtoff // 60
        sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
        found = _offsets[bucket] = f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
        if len(_offsets) > 64:
            _offsets.clear()
    return found


def _clean_ident(text: str) -> str:
    """A name or email as git writes it in a commit header: without the characters that would end
    the field (git drops them too)."""
    return "".join(ch for ch in text if ch not in "<>\n\r\0").strip()


class Repo:
    def __init__(self, handle: pygit2.Repository) -> None:
        self._r = handle
        self.gitdir = Path(handle.path)
        common = self.gitdir / "commondir"
        # Journals and caches belong to the repository, not to one linked worktree.
        self.commondir = (self.gitdir / common.read_text().strip()).resolve() if common.exists() else self.gitdir
        self.workdir = Path(handle.workdir) if handle.workdir else None
        self._staged: dict[str, tuple[int, bytes]] = {}
        # Staging may happen in one thread (artifacts) while another writes a pack.
        self._stage_lock = threading.Lock()
        self._fresh: set[str] = set()  # objects the last write_staged() put in a new pack
        # .keep of each pack written and not yet reached by a ref -> the objects in it that a later
        # commit must name (empty: a commit's own pack); objects named by trees staged since.
        self._keeps: dict[str, frozenset[str]] = {}
        self._referenced: set[str] = set()
        self._config: pygit2.Config | None = None
        self._values: dict[str, Any] = {}  # what was read from _config
        self._config_stamp: tuple[Any, ...] | None = None  # the files _config was read from, as they were
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
        if not self._staged:
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
            raise NotARepositoryError(
                f"not a git repository: {start}; gitexp stores runs in git, so run this inside a "
                "repository (or `git init` one first, or pass repo=PATH)"
            )
        try:
            return cls(pygit2.Repository(found))
        except pygit2.GitError as exc:
            raise NotARepositoryError(f"cannot open the git repository at {found}: {exc}") from exc

    # -- config ------------------------------------------------------------------------------

    def config(self, key: str) -> str | None:
        found = self._values.get(key, self._values)
        if found is not self._values:
            return found  # type: ignore[no-any-return]
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
        now, stamp = time.time_ns(), []
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

    # -- objects -----------------------------------------------------------------------------

    # Objects written for a caller to refer to later (artifacts, code snapshots) go into a kept pack
    # each, lifted once a commit that refers to them is on a ref (see gitexp/git/maintenance.py).

    def write_blob(self, data: bytes) -> str:
        oid = self.stage_blob(data, look_up=False)
        self.write_staged(roots={oid})
        return oid

    def ensure_blob(self, data: bytes) -> str:
        """The blob of *data*, written now unless the repository has it already."""
        oid = pack.object_id(pack.BLOB, data)
        if not self.has_object(oid):
            self.write_blob(data)
        return oid

    def write_tree(self, spec: TreeSpec) -> str:
        oid = self.stage_tree(spec)
        self.write_staged(roots={oid})
        return oid

    # -- batched writes: a run commit's new objects reach the disk as one pack -----------------

    def stage_blob(self, data: bytes, look_up: bool = True) -> str:
        oid = pack.object_id(pack.BLOB, data)
        # A small object written twice costs a few bytes in a pack (git tolerates duplicates
        # across packs); looking it up costs more, and most run blobs are new anyway.
        if oid not in self._staged and (len(data) < 4096 or not look_up or not self.has_object(oid)):
            with self._stage_lock:
                self._staged[oid] = (pack.BLOB, data)
        return oid

    def stage_tree(self, spec: TreeSpec) -> str:
        entries: dict[str, tuple[int, str]] = {}
        for name, value in spec.items():
            if isinstance(value, Entry):
                entries[name] = (value.mode, value.oid)
                self._referenced.add(value.oid)
            elif isinstance(value, bytes):
                entries[name] = (BLOB_MODE, self.stage_blob(value))
            else:
                entries[name] = (TREE_MODE, self.stage_tree(value))
        data = pack.encode_tree(entries)
        oid = pack.object_id(pack.TREE, data)
        with self._stage_lock:
            self._staged.setdefault(oid, (pack.TREE, data))  # trees of a run commit are new: see stage_blob
        return oid

    def stage_commit(self, tree: str, parents: list[str], message: str, sign: bool = False) -> str:
        """Stage a commit of *tree*; it reaches the disk with the next write_staged().

        *sign* (git config exp.sign) adds a `gpgsig` header made with the user's git signing key.
        """
        author, committer = self._identities()
        stamp = int(time.time())
        when = f" {stamp} {_local_offset(stamp)}"
        data = pack.encode_commit(tree, parents, author + when, committer + when, message)
        self._referenced.update(parents)
        if sign:
            from gitexp.git import signing

            data = signing.sign_commit(data, self.config, committer)
        oid = pack.object_id(pack.COMMIT, data)
        with self._stage_lock:
            self._staged[oid] = (pack.COMMIT, data)
        return oid

    def commit_staged(self, tree: str, parents: list[str], message: str, sign: bool = False) -> str:
        """Write a commit of *tree* together with every staged object, in one pack."""
        oid = self.stage_commit(tree, parents, message, sign)
        self.write_staged()
        return oid

    def discard_staged(self) -> None:
        """Forget the staged objects: what they were staged for will not be written."""
        with self._stage_lock:
            self._staged = {}

    def write_staged(self, roots: set[str] | None = None) -> None:
        """Write the staged objects as one pack, kept until a ref of this Repo that reaches them
        moves (gitexp/git/maintenance.py). Always a pack, even for one object: a loose object that no
        ref reaches yet is deleted by a concurrent `git gc --prune=now`; a kept pack is not.

        *roots*: the objects a caller will refer to from a later commit (write_blob, write_tree);
        their pack stays kept until a commit whose tree names them is on a ref. By default, the
        commits staged: kept until a ref reaches them (directly, or as a parent). A pack no ref
        comes to reach (a commit whose ref update lost) stays kept until the process exits.
        """
        with self._stage_lock:
            staged, self._staged = self._staged, {}
        self._fresh = set()
        if not staged:
            return
        try:
            written = pack.write_pack(self.commondir / "objects" / "pack", staged, maintenance.hold)
        except (pygit2.GitError, OSError) as exc:
            with self._stage_lock:
                self._staged.update(staged)  # keep them for the retry
            raise StorageError(f"cannot write objects to {self.commondir / 'objects'}: {exc}") from exc
        if roots is None:  # a commit's pack: kept until a ref reaches that commit
            roots = {oid for oid, (kind, _) in staged.items() if kind == pack.COMMIT}
        with self._stage_lock:
            self._keeps[os.fspath(written.with_suffix(".keep"))] = frozenset(roots)
        self._fresh = set(staged)
        try:
            maintenance.after_write(self.commondir)
        except OSError as exc:  # the pack is written: a merge that failed only leaves more packs
            warn(f"gitexp: could not merge the small packs in {written.parent} ({exc}); `git gc` merges them")

    def _moved(self, commit: str) -> None:
        """A ref of this Repo moved to *commit*: lift the keep of each pack that commit reaches
        (its own, its first parent's, and those of the objects its tree names)."""
        with self._stage_lock:
            self._referenced.add(commit)
            lifted = [keep for keep, roots in self._keeps.items() if roots <= self._referenced]
            for keep in lifted:
                del self._keeps[keep]
            self._referenced = set()
        maintenance.release(lifted)

    def release_all(self) -> None:
        """Let git repack every pack this Repo wrote, reached by a ref or not (a run that gave up:
        its journal keeps the data)."""
        with self._stage_lock:
            lifted, self._keeps = list(self._keeps), {}
        maintenance.release(lifted)

    def _people(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """(name, email) of author and committer as git would pick them; never fails a training
        run for lack of one."""
        name = self.config("user.name") or os.environ.get("USER") or "gitexp"
        email = self.config("user.email") or f"{name}@{os.uname().nodename}"
        env = os.environ
        return ((_clean_ident(env.get("GIT_AUTHOR_NAME", name)) or "gitexp",
                 _clean_ident(env.get("GIT_AUTHOR_EMAIL", email))),
                (_clean_ident(env.get("GIT_COMMITTER_NAME", name)) or "gitexp",
                 _clean_ident(env.get("GIT_COMMITTER_EMAIL", email))))

    def _identities(self) -> tuple[str, str]:
        """Author and committer as a commit header writes them, less the time: 'Name <email>'."""
        author, committer = (f"{n} <{e}>" for n, e in self._people())
        return author, committer

    def signature(self) -> tuple[pygit2.Signature, pygit2.Signature]:
        """Author and committer for libgit2's own commit writing."""
        (a_name, a_email), (c_name, c_email) = self._people()
        return pygit2.Signature(a_name, a_email), pygit2.Signature(c_name, c_email)

    def commit(self, tree: str, parents: list[str], message: str) -> str:
        author, committer = self.signature()
        try:
            oid = self._r.create_commit(None, author, committer, message, pygit2.Oid(hex=tree),
                                        [pygit2.Oid(hex=p) for p in parents])
        except (pygit2.GitError, OSError) as exc:
            raise StorageError(f"cannot write a commit in {self.gitdir}: {exc}") from exc
        return str(oid)

    def read_path(self, commit: str, path: str) -> bytes | None:
        """Bytes of the blob at *path* in *commit*'s tree, or None when absent."""
        tree = self._peel(commit, pygit2.Tree)
        try:
            obj = tree[path]
        except KeyError:
            return None
        if obj.type != pygit2.enums.ObjectType.BLOB:
            return None
        return obj.data

    def tree_entries(self, commit: str, path: str = "") -> dict[str, Entry]:
        tree = self._peel(commit, pygit2.Tree)
        if path:
            try:
                tree = self._r[tree[path].id]
            except KeyError:
                return {}
            if not isinstance(tree, pygit2.Tree):
                return {}
        return {e.name: Entry(str(e.id), int(e.filemode)) for e in tree}

    def commit_info(self, commit: str) -> tuple[list[str], str, int]:
        c = self._peel(commit, pygit2.Commit)
        return [str(p) for p in c.parent_ids], c.message, c.commit_time

    def tree_of(self, commit: str) -> str:
        return str(self._peel(commit, pygit2.Tree).id)

    def _peel(self, oid: str, kind: type[Any]) -> Any:
        """The *kind* (pygit2.Tree, pygit2.Commit) that object *oid* is or leads to; a missing or
        unreadable object (a damaged or hostile run, a pack removed as it was read) is a StorageError."""
        try:
            return self._r[oid].peel(kind)
        except (KeyError, ValueError, TypeError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read object {oid[:12]} as a {kind.__name__.lower()} in {self.gitdir}: "
                               f"{exc}") from exc

    def has_object(self, oid: str) -> bool:
        # The odb's existence check: `oid in repository` reads (and inflates) the whole object.
        try:
            return bool(self._r.odb.exists(oid))
        except (ValueError, pygit2.GitError):
            return False

    # -- refs --------------------------------------------------------------------------------

    def refs(self, prefix: str) -> dict[str, str]:
        """name -> target oid of every direct ref starting with *prefix*."""
        out = {}
        for ref in self._r.references.iterator():
            name = ref.name
            if name.startswith(prefix):
                target = ref.target
                if isinstance(target, pygit2.Oid):
                    out[name] = str(target)
        return out

    def ref(self, name: str) -> str | None:
        try:
            return str(self._r.references[name].target)
        except KeyError:
            return None
        except (pygit2.GitError, ValueError) as exc:
            raise StorageError(f"cannot read ref {name}: {exc}") from exc

    def _ensure_reflog(self, name: str) -> None:
        # git keeps reflogs only for branches by default; an existing log file makes both git
        # and libgit2 append to it for any ref, without touching the user's config.
        log = f"{self.commondir}/logs/{name}"
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # the experiment's first run
            os.makedirs(os.path.dirname(log), exist_ok=True)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        os.close(fd)

    def create_ref(self, name: str, oid: str, message: str) -> None:
        """Create *name*; fails with RefConflictError if it exists already."""
        self._ensure_reflog(name)
        try:
            with _trusting(oid in self._fresh):
                self._r.create_reference_direct(name, pygit2.Oid(hex=oid), False, message=message)
            self._moved(oid)
        except pygit2.AlreadyExistsError as exc:
            raise RefConflictError(f"ref {name} exists already") from exc
        except (pygit2.GitError, OSError) as exc:
            raise StorageError(f"cannot create ref {name}: {exc}") from exc

    def update_ref(self, name: str, new: str, old: str, message: str) -> None:
        """Move *name* from *old* to *new* atomically, or raise RefConflictError."""
        try:
            ref = self._r.references[name]
        except KeyError:
            raise RefConflictError(f"ref {name} vanished (expected it at {old[:12]})") from None
        if str(ref.target) != old:
            raise RefConflictError(f"ref {name} moved to {str(ref.target)[:12]} (expected {old[:12]})")
        self._ensure_reflog(name)
        try:
            with _trusting(new in self._fresh):
                ref.set_target(pygit2.Oid(hex=new), message)
            self._moved(new)
        except pygit2.GitError as exc:
            if "does not match" in str(exc):
                raise RefConflictError(f"ref {name} changed while updating it: {exc}") from exc
            raise StorageError(f"cannot update ref {name}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot update ref {name}: {exc}") from exc

    def delete_ref(self, name: str, old: str) -> None:
        try:
            ref = self._r.references[name]
        except KeyError:
            return
        if str(ref.target) != old:
            raise RefConflictError(f"ref {name} moved to {str(ref.target)[:12]}; not deleting it")
        try:
            ref.delete()
        except pygit2.GitError as exc:
            raise StorageError(f"cannot delete ref {name}: {exc}") from exc

    def rename_ref(self, old: str, new: str, expected: str, message: str) -> None:
        """Move ref *old* (at *expected*) to the name *new*, taking its reflog along.

        libgit2's rename writes a reflog entry without a message; moving the log file and
        creating the new ref with *message* keeps the history and says why it moved.
        """
        if self.ref(old) != expected:
            raise RefConflictError(f"ref {old} is not at {expected[:12]}; not moving it")
        if self.ref(new) is not None:
            raise RefConflictError(f"ref {new} exists already")
        old_log, new_log = self.commondir / "logs" / old, self.commondir / "logs" / new
        new_log.parent.mkdir(parents=True, exist_ok=True)
        if old_log.exists():
            os.replace(old_log, new_log)
        else:
            new_log.touch()
        self.create_ref(new, expected, message)
        try:
            self._r.references[old].delete()
        except (KeyError, pygit2.GitError) as exc:
            raise StorageError(f"moved {old} to {new} but could not delete {old}: {exc}") from exc

    def reflog(self, name: str) -> list[tuple[str, str, str]]:
        """(old, new, message) entries, oldest first."""
        try:
            entries = list(self._r.references[name].log())
        except (KeyError, pygit2.GitError):
            return []
        return [(str(e.oid_old), str(e.oid_new), e.message or "") for e in reversed(entries)]

    def head(self) -> HeadState:
        # One read of HEAD and one of its branch (head_is_unborn, head and head_is_detached read
        # HEAD each): every run starts with this.
        try:
            ref = self._r.references["HEAD"]
            if ref.type != pygit2.enums.ReferenceType.SYMBOLIC:
                return HeadState(str(ref.target), None)
            try:
                branch = ref.resolve()
            except pygit2.NotFoundError:  # a branch without commits yet
                return HeadState(None, str(ref.target).removeprefix("refs/heads/"))
            return HeadState(str(branch.target), branch.shorthand)
        except (pygit2.GitError, KeyError) as exc:
            raise StorageError(f"cannot read HEAD in {self.gitdir}: {exc}") from exc

    def remote_url(self, name: str | None = None) -> str | None:
        # Remembered with the config values it comes from (url.*.insteadOf applied by libgit2).
        key = f"\0remote-url {name or ''}"
        if key not in self._values:
            remotes = {r.name: r.url for r in self._r.remotes}
            self.config("core.bare")  # takes the config snapshot and its stamp, if not taken yet
            self._values[key] = remotes.get(name) if name else \
                remotes.get("origin") or next(iter(remotes.values()), None)
        return self._values[key]  # type: ignore[no-any-return]

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
            (path, flags, stats[path] and _signature(stats[path])) for path, flags in status.items()))
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
                    oid, mode = self._r.create_blob(os.fsencode(os.readlink(full))), LINK_MODE
                elif stat.S_ISREG(info.st_mode):
                    if info.st_size > max_size:
                        skipped.append(path)
                        continue
                    oid = self._r.create_blob_fromworkdir(path)
                    mode = EXEC_MODE if info.st_mode & stat.S_IXUSR else BLOB_MODE
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
        root = self._r[tree]
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
                with self._stage_lock:
                    self._staged[oid] = (int(kind), data)
        except (KeyError, pygit2.GitError) as exc:
            raise StorageError(f"the code snapshot's object {oid[:12]} vanished as it was written ({exc}); "
                               "is `git gc --prune=now` running? Start the run again") from exc
        self.write_staged(roots={tree})

    def diff_trees(self, old: str | None, new: str) -> str:
        """A unified patch from tree *old* (None: empty) to tree *new*."""
        cached = _patches.get((old, new))  # trees never change, so neither does their diff
        if cached is None:
            old_tree = self._r[old] if old else None
            new_tree = self._r[new]
            diff = new_tree.diff_to_tree(swap=True) if old_tree is None else old_tree.diff_to_tree(new_tree)
            if len(_patches) > 64:
                _patches.clear()
            cached = _patches[(old, new)] = diff.patch or ""
        return cached

    def diff_stat(self, old: str | None, new: str | None) -> list[tuple[str, str, int, int]]:
        """(status letter A/D/M/R..., path, lines added, lines deleted) per file from tree *old* to *new*
        (None: the empty tree); binary files count 0 lines."""
        if old == new:
            return []
        try:
            if old is None or new is None:
                tree = self._r[old or new]
                diff = tree.diff_to_tree(swap=old is None)
            else:
                diff = self._r[old].diff_to_tree(self._r[new])
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot diff trees {str(old)[:12]} and {str(new)[:12]}: {exc}") from exc
        out = []
        for patch in diff:
            delta = patch.delta
            _, added, deleted = patch.line_stats
            out.append((delta.status_char(), delta.new_file.path or delta.old_file.path, added, deleted))
        return out

    def untracked(self, paths: list[str]) -> list[str]:
        """Those of *paths* (relative to the work tree) that git's index does not hold: all of them
        when there is no index yet. A staged file is tracked."""
        try:
            index = pygit2.Index(os.path.join(self.gitdir, "index"))
        except (OSError, pygit2.GitError, ValueError):
            return paths
        return [path for path in paths if path not in index]

    # -- trees, blobs and history --------------------------------------------------------------

    def tree_files(self, commit: str, path: str = "") -> dict[str, Entry]:
        """Every non-tree entry under *path* of a commit's (or tree's) tree, by relative path."""
        try:
            tree = self._r[commit].peel(pygit2.Tree)
            if path:
                tree = self._r[tree[path].id]
        except KeyError:
            return {}
        except (ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read tree {path or '/'} of {commit[:12]}: {exc}") from exc
        if not isinstance(tree, pygit2.Tree):
            return {}
        out: dict[str, Entry] = {}
        stack: list[tuple[str, pygit2.Tree]] = [("", tree)]
        while stack:
            prefix, node = stack.pop()
            for entry in node:
                if int(entry.filemode) == TREE_MODE:
                    stack.append((f"{prefix}{entry.name}/", self._r[entry.id]))
                else:
                    out[f"{prefix}{entry.name}"] = Entry(str(entry.id), int(entry.filemode))
        return out

    def read_blob(self, oid: str) -> bytes:
        try:
            return self._r[oid].peel(pygit2.Blob).data
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read blob {oid[:12]} in {self.gitdir}: {exc}") from exc

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when *ancestor* is *descendant* or one of its ancestors."""
        if ancestor == descendant:
            return True
        try:
            return self._r.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot compare commits {ancestor[:12]} and {descendant[:12]}: {exc}") from exc

    def remote_names(self) -> list[str]:
        return [r.name for r in self._r.remotes]

    # -- notes trees, history, compare-and-swap refs, signatures ----------------------------------

    def entry_oid(self, commit: str, path: str) -> str | None:
        """Id of whatever is at *path* in *commit*'s tree (a blob or a subtree), or None."""
        try:
            return str(self._r[commit].peel(pygit2.Tree)[path].id)
        except KeyError:
            return None
        except (ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read {path} in commit {commit[:12]}: {exc}") from exc

    def notes_map(self, notes_commit: str) -> dict[str, str]:
        """annotated object id -> note blob id of a notes commit, whatever its fan-out
        (git splits the ids into directories, e.g. ab/cdef..., once there are many notes)."""
        out: dict[str, str] = {}
        stack: list[tuple[str, pygit2.Tree]] = [("", self._peel(notes_commit, pygit2.Tree))]
        while stack:
            prefix, tree = stack.pop()
            for entry in tree:
                name = prefix + entry.name
                if int(entry.filemode) == TREE_MODE:
                    if len(name) < 40:
                        stack.append((name, self._r[entry.id]))
                elif len(name) == 40:
                    out[name] = str(entry.id)
        return out

    def notes_tree(self, notes_commit: str | None, updates: Mapping[str, str | None]) -> str:
        """Stage the notes tree of *notes_commit* with *updates* (annotated id -> blob id; None
        removes); it reaches the disk with the next commit_staged().

        Written flat (git reads any fan-out). Staged rather than written by libgit2: libgit2's
        write of a new object first rescans the pack folder, which in a sweep holds hundreds of
        packs until `gc --auto` folds them.
        """
        root = self._peel(notes_commit, pygit2.Tree) if notes_commit else None
        if root is not None and any(int(e.filemode) == TREE_MODE for e in root):
            flat: dict[str, str | None] = {**self.notes_map(notes_commit), **updates}  # type: ignore[arg-type]
            return self.stage_tree({k: Entry(v) for k, v in sorted(flat.items()) if v})
        entries = {e.name: (int(e.filemode), str(e.id)) for e in root} if root is not None else {}
        for annotated, blob in updates.items():
            if blob is None:
                entries.pop(annotated, None)
            else:
                entries[annotated] = (BLOB_MODE, blob)
        data = pack.encode_tree(entries)
        oid = pack.object_id(pack.TREE, data)
        with self._stage_lock:
            self._staged.setdefault(oid, (pack.TREE, data))
        return oid

    def cas_ref(self, name: str, new: str, old: str | None, message: str) -> None:
        """Create *name* (old None) or move it from *old*; losing to a concurrent writer, including
        finding the ref locked by one, raises RefConflictError so the caller reloads and retries."""
        try:
            if old is None:
                self._create_ref_atomically(name, new, message)
            else:
                self.update_ref(name, new, old, message)
        except RefConflictError:
            raise
        except StorageError as exc:
            if "lock" in str(exc).lower():
                raise RefConflictError(f"ref {name} is being updated by another process: {exc}") from exc
            raise

    def _create_ref_atomically(self, name: str, new: str, message: str) -> None:
        """Create *name* unless it exists, deciding under the ref's lock. libgit2 checks that a ref
        does not exist before it takes the lock, so two processes creating the same ref at once
        could both succeed, the second overwriting the first (a lost notes commit); git's
        update-ref with the zero id as the old value checks under the lock."""
        import subprocess

        self._ensure_reflog(name)
        proc = subprocess.run(["git", "--git-dir", str(self.gitdir), "update-ref", "-m", message, name, new, ZERO],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode == 0:
            self._moved(new)
        else:
            error = proc.stderr.strip()
            if "exists" in error or "lock" in error:
                raise RefConflictError(f"ref {name} was created or is being updated by another process: {error}")
            raise StorageError(f"cannot create ref {name} with `git update-ref`: {error or proc.returncode}")

    def walk(self, start: str, limit: int) -> list[tuple[str, list[str], str, int]]:
        """(id, parents, message, commit time) of up to *limit* commits reachable from *start*,
        newest first, as `git log` lists them."""
        out = []
        try:
            order = pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME  # children first, as git log
            for commit in self._r.walk(pygit2.Oid(hex=start), order):
                if len(out) >= limit:
                    break
                out.append((str(commit.id), [str(p) for p in commit.parent_ids], commit.message,
                            commit.commit_time))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot walk the history of {start[:12]}: {exc}") from exc
        return out

    def resolve_commit(self, text: str) -> str | None:
        """The commit a revision (HEAD, a branch, an abbreviated id) names, or None."""
        try:
            return str(self._r.revparse_single(text).peel(pygit2.Commit).id)
        except (KeyError, ValueError, pygit2.GitError):
            return None

    def is_signed(self, commit: str) -> bool:
        try:
            signature, _ = self._r[commit].peel(pygit2.Commit).gpg_signature
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageError(f"cannot read commit {commit[:12]}: {exc}") from exc
        return signature is not None
