"""Moving refs: created, compare-and-swapped, renamed with their reflog, deleted; read with HEAD.

A ref moved to a commit gitexp just wrote lifts the keep of the packs that commit reaches
(Staging._moved). Where refs are plain files, refs are created and moved by refwrite.py, as git's
files backend does it (libgit2 reads every packed ref to write one); else by libgit2, pointed at
the commit without libgit2 looking it up (_trusting).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

from gitexp.errors import StorageError
from gitexp.git import reflogs, refwrite, settle, shelf, spares
from gitexp.git.handle import ZERO
from gitexp.git.refwrite import LOCK_DELAYS as _LOCK_DELAYS
from gitexp.git.refwrite import RefConflictError, RefLockedError
from gitexp.git.staging import Staging


@dataclass(frozen=True)
class HeadState:
    commit: str | None  # None: a branch without commits yet
    branch: str | None  # None: HEAD detached at *commit*


LOCK_WAIT = sum(_LOCK_DELAYS)
_OWN_REFS = ("refs/experiments/", "refs/experiments-", "refs/notes/experiments")  # only gitexp writes these
__all__ = ["LOCK_WAIT", "HeadState", "RefConflictError", "RefLockedError", "Refs"]


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


class Refs(Staging):
    """The repository's refs, their reflogs and HEAD."""

    def refs(self, prefix: str) -> dict[str, str]:
        """name -> target oid of every direct ref starting with *prefix*."""
        out = {}
        for ref in self._r.references.iterator():
            name = ref.name
            if name.startswith(prefix):
                target = ref.target
                if isinstance(target, pygit2.Oid):
                    out[name] = str(target)
        return shelf.with_shelved(Path(self.commondir), prefix, out)

    def ref(self, name: str) -> str | None:
        """The commit *name* points at: its ref's, else, for a run, the shelf's (None for neither)."""
        found = self.own_ref(name)
        if found is None and shelf.is_run_ref(name):
            return shelf.read(Path(self.commondir)).get(name)
        return found

    def own_ref(self, name: str) -> str | None:
        """The commit *name*'s own ref points at, never the shelf's (None without one)."""
        try:
            return str(self._r.references[name].target)
        except KeyError:
            return None
        except (pygit2.GitError, ValueError) as exc:
            raise StorageError(f"cannot read ref {name}: {exc}") from exc

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

    def reflog(self, name: str) -> list[tuple[str, str, str]]:
        """(old, new, message) entries, oldest first: the archived ones (reflogs.py), then the file's."""
        return [reflogs.parse(line) for line in reflogs.read(self.commondir, name)]

    def archive_reflogs(self, prefix: str, min_age: float = reflogs.MIN_AGE) -> int:
        """Move the settled reflogs of refs under *prefix* into the archive (reflogs.archive)."""
        def tip_of(ref: str) -> str | None:
            try:
                target = self._r.references[ref].target
            except (KeyError, pygit2.GitError, ValueError):
                return None
            return str(target) if isinstance(target, pygit2.Oid) else None

        def reaches(tip: str, commit: str) -> bool:
            try:
                return bool(self._r.descendant_of(pygit2.Oid(hex=tip), pygit2.Oid(hex=commit)))
            except (pygit2.GitError, ValueError, KeyError):
                return False

        return reflogs.archive(self.commondir, prefix, tip_of, reaches, min_age)

    def lift_settled_packs(self) -> int:
        """Hand the settled run objects back to `git gc`, which then prunes what no ref reaches
        (settle.lift); returns the number of packs lifted."""
        return settle.lift(self.commondir)

    def _ensure_reflog(self, name: str) -> bool:
        """Make sure *name* has a log file; True when this made it. Called with reflogs.writing() held."""
        # git keeps reflogs only for branches by default; an existing log file makes both git
        # and libgit2 append to it for any ref, without touching the user's config.
        log = f"{self.commondir}/logs/{name}"
        made = 0
        while True:
            try:
                fd = spares.open_new(os.fspath(self.commondir), log)
            except FileExistsError:
                return False
            except FileNotFoundError:  # the experiment's first run, or its folder removed by git meanwhile
                made += 1
                if made > len(refwrite.LOCK_DELAYS):
                    raise
                refwrite.make_folders(os.path.dirname(log))
                continue
            os.close(fd)
            return True

    def _plain_refs(self) -> bool:
        """Whether refs are git's files backend (no reftable), which refwrite.py writes."""
        plain: bool | None = getattr(self, "_plain", None)
        if plain is None:
            storage = (self.config("extensions.refstorage") or "files").lower()
            plain = self._plain = storage == "files" and not os.path.isdir(os.path.join(self.commondir, "reftable"))
        return plain

    def _write_plain(self, name: str, new: str, expected: str | None, message: str) -> bool:
        """refwrite.write_ref with this repository's committer in the reflog line; False where
        libgit2 must write the ref (no files backend, or a ref refwrite leaves to it)."""
        if not self._plain_refs():
            return False
        line = refwrite.reflog_line(expected, new, self._identities()[1], message)
        return refwrite.write_ref(str(self.commondir), name, new, expected, line, own=name.startswith(_OWN_REFS))

    def create_ref(self, name: str, oid: str, message: str) -> None:
        """Create *name*; fails with RefConflictError if it exists already."""
        with reflogs.writing(self.commondir):
            made = self._ensure_reflog(name)
            try:
                if not self._write_plain(name, oid, None, message):
                    with _trusting(oid in self._fresh):
                        self._while_locked(name, lambda: self._r.create_reference_direct(
                            name, pygit2.Oid(hex=oid), False, message=message))
                self._moved(oid)
            except pygit2.AlreadyExistsError as exc:
                raise RefConflictError(f"ref {name} exists already") from exc
            except (pygit2.GitError, OSError) as exc:
                raise StorageError(f"cannot create ref {name}: {exc}") from exc
        if made:
            reflogs.count_new_ref(self.commondir)

    def _while_locked(self, name: str, write: Callable[[], object]) -> None:
        """Run libgit2's *write* of ref *name*, waiting out a lock another process holds briefly.

        `git pack-refs` (run by `git gc`) locks every loose ref it packs, and removes the folders it
        empties, ours included: libgit2 then fails at once with "failed to lock file" or "No such
        file or directory", where git itself would wait (core.filesRefLockTimeout, 100 ms). Both
        pass within milliseconds, so the write is retried for up to LOCK_WAIT seconds.
        """
        delays = iter(_LOCK_DELAYS)
        while True:
            try:
                write()
                return
            except (pygit2.GitError, OSError) as exc:  # pygit2 raises OSError for libgit2's OS errors
                text = str(exc)
                delay = next(delays, None)
                if "lock" not in text or delay is None:
                    raise
                if "No such file or directory" in text:
                    refwrite.make_folders(os.path.dirname(os.path.join(self.commondir, name)))
                time.sleep(delay)

    def update_ref(self, name: str, new: str, old: str, message: str) -> None:
        """Move *name* from *old* to *new* atomically, or raise RefConflictError. A run the shelf
        holds at *old* gets its own ref again at *new* (shelf.py)."""
        try:
            self._update_own_ref(name, new, old, message)
        except RefConflictError:
            if not self._unshelve(name, new, old, message):
                raise
            self._take_back([name])

    def update_refs(self, moves: list[tuple[str, str, str]], message: str) -> list[str]:
        """update_ref of each (name, new, old) of *moves*, those of them on the shelf taken off it by
        one link; the names moved (one another writer moved meanwhile is left as it is)."""
        done, back = [], []
        for name, new, old in moves:
            try:
                self._update_own_ref(name, new, old, message)
            except RefConflictError:
                try:
                    if not self._unshelve(name, new, old, message):
                        continue
                except RefConflictError:
                    continue
                back.append(name)
            done.append(name)
        self._take_back(back)
        return done

    def _unshelve(self, name: str, new: str, old: str, message: str) -> bool:
        """Give the run *name*, which the shelf holds at *old* and no ref names, its own ref at *new*;
        False where the shelf does not hold it so. The caller then takes it off the shelf
        (_take_back). Its reflog goes on from *old*, as for any move (`git exp verify` reads a
        step from the shelved commit)."""
        commondir = Path(self.commondir)
        if not shelf.is_run_ref(name) or self.own_ref(name) is not None or shelf.read(commondir).get(name) != old:
            return False
        written = False
        if self._plain_refs():
            with reflogs.writing(self.commondir):
                self._ensure_reflog(name)
                line = refwrite.reflog_line(old, new, self._identities()[1], message)
                written = refwrite.write_ref(str(self.commondir), name, new, None, line, own=True)
        if not written:
            self._create_ref_atomically(name, new, message)
        self._moved(new)
        return True

    @contextlib.contextmanager
    def shelf_batch(self) -> Iterator[None]:
        """Take the runs that the writes of the block move off the shelf in one link as it ends,
        not one link each (`git exp rm` of 1,000 shelved runs)."""
        if getattr(self, "_held_back", None) is not None:
            yield  # (within another batch: that one takes them back)
            return
        self._held_back: list[str] | None = []
        try:
            yield
        finally:
            names, self._held_back = self._held_back or [], None
            self._take_back(names)

    def _take_back(self, names: list[str]) -> None:
        """Take those of *names* the shelf holds off it, once their own refs were written or deleted:
        a shelved value must never show again from under a ref deleted later."""
        held = getattr(self, "_held_back", None)
        if held is not None:
            held.extend(names)
            return
        commondir = Path(self.commondir)
        if not names:
            return
        # Read under the lock: an upkeep pass that read these refs before they were deleted may be
        # shelving them now (refmaint.shelve_settled reads the refs under it too).
        with shelf.locked(commondir):
            if any(name in shelf.read(commondir) for name in names):
                shelf.add_link(commondir, {}, take_back=names)

    def _update_own_ref(self, name: str, new: str, old: str, message: str) -> None:
        with reflogs.writing(self.commondir):
            self._ensure_reflog(name)  # an archived run's log starts a file again
            if self._write_plain(name, new, old, message):
                self._moved(new)
                return
        try:
            ref = self._r.references[name]
        except KeyError:
            raise RefConflictError(f"ref {name} vanished (expected it at {old[:12]})") from None
        if str(ref.target) != old:
            raise RefConflictError(f"ref {name} moved to {str(ref.target)[:12]} (expected {old[:12]})")
        try:
            with reflogs.writing(self.commondir):
                self._ensure_reflog(name)  # an archived run's log starts a file again
                with _trusting(new in self._fresh):
                    self._while_locked(name, lambda: ref.set_target(pygit2.Oid(hex=new), message))
            self._moved(new)
        except pygit2.GitError as exc:
            if "does not match" in str(exc):
                raise RefConflictError(f"ref {name} changed while updating it: {exc}") from exc
            raise StorageError(f"cannot update ref {name}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"cannot update ref {name}: {exc}") from exc

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

        with reflogs.writing(self.commondir):
            self._ensure_reflog(name)
            if self._write_plain(name, new, None, message):
                self._moved(new)
                return
            proc = subprocess.run(["git", "--git-dir", str(self.gitdir), "update-ref", "-m", message, name, new,
                                   ZERO], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode == 0:
            self._moved(new)
        else:
            error = proc.stderr.strip()
            if "exists" in error or "lock" in error:
                raise RefConflictError(f"ref {name} was created or is being updated by another process: {error}")
            raise StorageError(f"cannot create ref {name} with `git update-ref`: {error or proc.returncode}")

    def delete_ref(self, name: str, old: str) -> None:
        try:
            ref = self._r.references[name]
        except KeyError:
            shelved = shelf.read(Path(self.commondir)).get(name) if shelf.is_run_ref(name) else None
            if shelved is not None and shelved != old:
                raise RefConflictError(f"run {name} is shelved at {shelved[:12]}; not deleting it") from None
            if shelved is not None:
                self._take_back([name])
            return
        if str(ref.target) != old:
            raise RefConflictError(f"ref {name} moved to {str(ref.target)[:12]}; not deleting it")
        try:
            with reflogs.writing(self.commondir):
                reflogs.forget(self.commondir, name)
                ref.delete()
        except pygit2.GitError as exc:
            raise StorageError(f"cannot delete ref {name}: {exc}") from exc
        if shelf.is_run_ref(name):
            self._take_back([name])

    def rename_ref(self, old: str, new: str, expected: str, message: str) -> None:
        """Move ref *old* (at *expected*) to the name *new*, taking its reflog along.

        libgit2's rename writes a reflog entry without a message; moving the log file and
        creating the new ref with *message* keeps the history and says why it moved. An archived
        log (reflogs.py) becomes the new ref's file again, whole.
        """
        if self.ref(old) != expected:
            raise RefConflictError(f"ref {old} is not at {expected[:12]}; not moving it")
        if self.ref(new) is not None:
            raise RefConflictError(f"ref {new} exists already")
        old_log, new_log = self.commondir / "logs" / old, self.commondir / "logs" / new
        new_log.parent.mkdir(parents=True, exist_ok=True)
        with reflogs.writing(self.commondir):
            history = reflogs.read(self.commondir, old)
            new_log.write_text("".join(f"{line}\n" for line in history), encoding="utf-8", errors="surrogateescape")
            reflogs.forget(self.commondir, old)
            with contextlib.suppress(FileNotFoundError):
                old_log.unlink()
        self.create_ref(new, expected, message)
        try:
            if self.own_ref(old) is not None:
                self._r.references[old].delete()
        except (KeyError, pygit2.GitError) as exc:
            raise StorageError(f"moved {old} to {new} but could not delete {old}: {exc}") from exc
        if shelf.is_run_ref(old):
            self._take_back([old])
