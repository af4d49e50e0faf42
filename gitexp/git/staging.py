"""Writing objects: staged in memory, they reach the disk as one pack, kept until a ref reaches them.

A run commit's new objects (its trees and blobs, the commit, a notes tree) are encoded in Python
(gitexp/git/pack.py) and written together; objects a caller will refer to later (artifacts, code
snapshots) go into a kept pack each, lifted once a commit that refers to them is on a ref. The
`.keep` bookkeeping is here (which objects each kept pack waits for); the keep files themselves and
the merging of small packs are gitexp/git/maintenance.py's. Commits take their author and committer
from here too, whether written through a pack or by libgit2 (commit()).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping

import pygit2

from gitexp.errors import StorageError
from gitexp.git import maintenance, pack
from gitexp.git.config import ConfigReader
from gitexp.git.handle import BLOB_MODE, TREE_MODE, Entry, TreeSpec
from gitexp.git.objects import ObjectReader
from gitexp.warn import warn

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


class Staging(ConfigReader, ObjectReader):
    """Objects staged for the next pack, the packs written and still kept, and commit identities."""

    def __init__(self, handle: pygit2.Repository) -> None:
        super().__init__(handle)
        # Each thread stages for its own next pack. One Repo serves the training thread and the
        # background thread (notes, checkpoints) at once: a pack written or a staging area discarded
        # by one must never take or drop what the other staged for a tree it has not written yet.
        self._local = threading.local()
        self._stage_lock = threading.Lock()  # guards _names, _keeps and _unwritten, shared by the threads
        self._unwritten: dict[str, tuple[int, bytes]] = {}  # staged by any thread, their pack failed
        # .keep of each pack written and not yet reached by a ref -> those of its roots (commits,
        # and objects a later commit must name) that no commit on a ref has reached yet.
        self._keeps: dict[str, set[str]] = {}
        # What each staged tree or commit names, subtrees and parents included, so that a ref moving
        # to a commit counts as reached exactly what that commit reaches. Kept per object, never
        # pooled: another commit of this Repo (a notes commit, another run's checkpoint) landing
        # first must not lift the keep of a blob that only a still-unwritten tree names.
        self._names: dict[str, frozenset[str]] = {}

    @property
    def _staged(self) -> dict[str, tuple[int, bytes]]:
        """The objects this thread staged for its next pack."""
        try:
            staged: dict[str, tuple[int, bytes]] = self._local.staged
        except AttributeError:
            staged = self._local.staged = {}
        return staged

    @_staged.setter
    def _staged(self, value: dict[str, tuple[int, bytes]]) -> None:
        self._local.staged = value

    @property
    def _fresh(self) -> set[str]:
        """The objects this thread's last write_staged() put in a new pack."""
        return getattr(self._local, "fresh", set())

    @_fresh.setter
    def _fresh(self, value: set[str]) -> None:
        self._local.fresh = value

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

    def stage_blob(self, data: bytes, look_up: bool = True) -> str:
        oid = pack.object_id(pack.BLOB, data)
        # A small object written twice costs a few bytes in a pack (git tolerates duplicates
        # across packs); looking it up costs more, and most run blobs are new anyway.
        if oid not in self._staged and (len(data) < 4096 or not look_up or not self.has_object(oid)):
            self._staged[oid] = (pack.BLOB, data)
        return oid

    def stage_tree(self, spec: TreeSpec) -> str:
        entries: dict[str, tuple[int, str]] = {}
        named: set[str] = set()
        for name, value in spec.items():
            if isinstance(value, Entry):
                entries[name] = (value.mode, value.oid)
            elif isinstance(value, bytes):
                entries[name] = (BLOB_MODE, self.stage_blob(value))
            else:
                subtree = self.stage_tree(value)
                entries[name] = (TREE_MODE, subtree)
                named |= self._names.get(subtree, frozenset())
            named.add(entries[name][1])
        data = pack.encode_tree(entries)
        oid = pack.object_id(pack.TREE, data)
        with self._stage_lock:
            self._staged.setdefault(oid, (pack.TREE, data))  # trees of a run commit are new: see stage_blob
            self._names[oid] = frozenset(named)
        return oid

    def stage_commit(self, tree: str, parents: list[str], message: str, sign: bool = False) -> str:
        """Stage a commit of *tree*; it reaches the disk with the next write_staged().

        *sign* (git config exp.sign) adds a `gpgsig` header made with the user's git signing key.
        """
        author, committer = self._identities()
        stamp = int(time.time())
        when = f" {stamp} {_local_offset(stamp)}"
        data = pack.encode_commit(tree, parents, author + when, committer + when, message)
        if sign:
            from gitexp.git import signing

            data = signing.sign_commit(data, self.config, committer)
        oid = pack.object_id(pack.COMMIT, data)
        with self._stage_lock:
            self._staged[oid] = (pack.COMMIT, data)
            self._names[oid] = frozenset({tree, *parents, *self._names.get(tree, frozenset())})
        return oid

    def commit_staged(self, tree: str, parents: list[str], message: str, sign: bool = False) -> str:
        """Write a commit of *tree* together with every staged object, in one pack."""
        oid = self.stage_commit(tree, parents, message, sign)
        self.write_staged()
        return oid

    def notes_tree(self, notes_commit: str | None, updates: Mapping[str, str | None]) -> str:
        """Stage the notes tree of *notes_commit* with *updates* (annotated id -> blob id; None
        removes); it reaches the disk with the next commit_staged().

        Written flat (git reads any fan-out). Staged rather than written by libgit2: libgit2's
        write of a new object first rescans the pack folder, which in a sweep holds hundreds of
        packs until `gc --auto` folds them.
        """
        root = self._peel(notes_commit, pygit2.Tree) if notes_commit else None
        if root is not None and any(int(e.filemode) == TREE_MODE for e in root):
            flat: dict[str, str | None] = {**self._notes_in(root), **updates}
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
            # The note blobs it names ride in the same pack: the keep of that pack waits for them,
            # and is lifted only once the notes ref reaches them (without this, never: a sweep in
            # one process kept a pack per run, and no merge could fold them).
            self._names[oid] = frozenset(blob for blob in updates.values() if blob is not None)
        return oid

    def take_staged(self) -> dict[str, tuple[int, bytes]]:
        """Take what this thread staged out of its staging area, for restage() in the thread that
        will write it (a run's RUNNING commit, staged as it starts, written by whichever thread
        commits first)."""
        staged, self._staged = self._staged, {}
        return staged

    def restage(self, objects: Mapping[str, tuple[int, bytes]]) -> None:
        """Stage *objects* (from take_staged) for this thread's next pack."""
        self._staged.update(objects)

    def discard_staged(self) -> None:
        """Forget what this thread staged: what it was staged for will not be written."""
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
        staged, self._staged = self._staged, {}
        if self._unwritten:
            with self._stage_lock:
                staged, self._unwritten = {**self._unwritten, **staged}, {}
        self._fresh = set()
        if not staged:
            return
        try:
            written = pack.write_pack(self.commondir / "objects" / "pack", staged, maintenance.claim)
        except (pygit2.GitError, OSError) as exc:
            # Kept for the retry, whichever thread makes it: a run's history blobs are staged once and
            # named by every later commit, which the other thread (checkpoint or end) may write.
            with self._stage_lock:
                self._unwritten.update(staged)
            raise StorageError(f"cannot write objects to {self.commondir / 'objects'}: {exc}") from exc
        if roots is None:  # a commit's pack: kept until a ref reaches that commit
            roots = {oid for oid, (kind, _) in staged.items() if kind == pack.COMMIT}
        with self._stage_lock:
            named = set(roots).union(*(self._names.get(root, frozenset()) for root in roots))
            # Objects this thread staged earlier for a commit not written yet ride along in this pack:
            # each is a root too, reached when that commit is on a ref.
            self._keeps[os.fspath(written.with_suffix(".keep"))] = set(roots) | (set(staged) - named)
        self._fresh = set(staged)
        try:
            maintenance.after_write(self.commondir)
        except OSError as exc:  # the pack is written: a merge that failed only leaves more packs
            warn(f"gitexp: could not merge the small packs in {written.parent} ({exc}); `git gc` merges them")

    def _moved(self, commit: str) -> None:
        """A ref of this Repo moved to *commit*: lift the keep of each pack that commit reaches
        (its own, its first parent's, and those of the objects its tree names)."""
        with self._stage_lock:
            reached = {commit, *self._names.pop(commit, frozenset())}
            for oid in reached:  # what the commit reaches needs no record of its own any more
                self._names.pop(oid, None)
            lifted = []
            for keep, waiting in self._keeps.items():
                waiting -= reached
                if not waiting:
                    lifted.append(keep)
            for keep in lifted:
                del self._keeps[keep]
        maintenance.release(lifted)

    def release_all(self) -> None:
        """Let git repack every pack this Repo wrote, reached by a ref or not (a run that gave up:
        its journal keeps the data)."""
        with self._stage_lock:
            lifted, self._keeps = list(self._keeps), {}
            self._names = {}
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
