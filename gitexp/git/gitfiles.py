"""Git's own files read straight, without libgit2: where the repository is, what its refs point
at, what HEAD is, and what its reflogs name.

A warm `git exp ls` needs nothing else from git, and importing pygit2 would cost it 70 ms; the
post-commit hook, which runs on every commit, reads HEAD and what made the commit from here too.
Each reader of the repository's location and refs answers exactly what gitexp.git.repo (libgit2)
answers, or None wherever anything is unusual; the caller then asks libgit2 (or git), so an odd
repository is slower to read, never read differently. This module imports no pygit2, nor any
module that does (gitexp.git.repo and its parts): it is imported where pygit2 must not be.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import Any, NamedTuple

# Beyond plain files-backend refs, libgit2 (or git) may read these differently: extensions (reftable
# refStorage, sha256 objectFormat, worktreeConfig), core.worktree (another working tree to vet for
# ownership), included files (which may say any of it).
_UNUSUAL_CONFIG = (b"extensions", b"reftable", b"refstorage", b"worktree", b"include")
# Patterns are compiled on first use (re caches them): the post-commit hook imports this module and
# uses none of them.
_FORMAT_VERSION = rb"repositoryformatversion\s*=\s*(\S*)"
_PATH_ROOM = 3800  # libgit2 refuses git dirs whose longest file path would pass PATH_MAX (4096)
# Refs that live in each worktree's own git dir, not the common one.
# How young a packed-refs may be and its stat still tell it from the next one (refs_state, settled):
# on a file system that keeps whole seconds (FAT, HFS+, some network ones: every time ends in
# .000000000), and on one whose times carry fractions of a second, which it keeps to a kernel tick
# (a few milliseconds). Each process that made runs packs their refs as it exits: with 2 s for all,
# a `git exp ls` just after kept no run index, and every `git exp show` then read every ref.
RACY_SECONDS = 2.0
FINE_RACY_SECONDS = 0.1
_PER_WORKTREE = ("refs/bisect/", "refs/worktree/", "refs/rewritten/")
RUN_PREFIX, SHELF_REF = "refs/experiments/", "refs/experiments-shelf"  # runs' refs, and the run shelf's (shelf.py)
# What ref names may hold: printable ASCII but ~^:?*[\ ; and, one a line, names with a dot git forbids.
_NAME_CHARS = bytes(c for c in range(0x21, 0x7F) if chr(c) not in "~^:?*[\\")
_BAD_DOTS = r"\.\.|/\.|\.lock(?:/|\n|\Z)|\.(?:\n|\Z)"
_HEX_DIGITS = b"0123456789abcdef"


# A repository as gitexp.git.repo.Repo.discover would open it:
#   gitdir     Repo.gitdir: what pygit2.discover_repository answers
#   commondir  Repo.commondir
#   workdir    the directory whose .git was found: discovery from there finds this repository. Mostly
#              Repo.workdir, but not always (core.bare, a --separate-git-dir): LazyRepo asks the opened
#              Repo for that.
# Not a dataclass (`dataclasses` imports `inspect`, which costs a listing 8 ms), nor the class form of
# NamedTuple, which compiles each field's annotation (a string here) at import: 0.1 ms of every commit's
# post-commit hook.
Location = NamedTuple("Location", [("gitdir", Path), ("commondir", Path), ("workdir", Path)])  # noqa: UP014


def locate(start: str | None = None) -> Location | None:
    """The repository libgit2's discovery finds from *start* (default: the current directory), as
    pygit2.discover_repository(start) does (no ceiling, not across file systems), or None: not
    found, or anything unusual met on the way (libgit2 then decides)."""
    if os.name != "posix":
        return None
    try:
        folder = os.path.realpath(os.getcwd() if start is None else start, strict=True)
    except (OSError, ValueError):
        return None
    device = None
    # libgit2 looks at X/.git, then at X itself, from *start* up to (but not at) / and /.git.
    while os.path.dirname(folder) != folder:
        dotgit = os.path.join(folder, ".git")
        try:
            info = os.lstat(dotgit)
        except FileNotFoundError:
            pass
        except OSError:
            return None
        else:
            if device is not None and info.st_dev != device:
                return None  # a file-system boundary: discovery stops there
            if stat.S_ISDIR(info.st_mode):
                return _location(dotgit, folder, None)
            if stat.S_ISREG(info.st_mode):
                return _linked(dotgit, folder)
            return None  # a symlink (libgit2 would answer its unresolved path), a socket...
        try:
            info = os.stat(folder)
        except OSError:
            return None
        if not stat.S_ISDIR(info.st_mode) or (device is not None and info.st_dev != device):
            return None
        device = info.st_dev
        if os.path.lexists(os.path.join(folder, "HEAD")):
            return None  # the folder itself may be a git dir (bare, or inside .git)
        folder = os.path.dirname(folder)
    return None


def _linked(dotgit: str, folder: str) -> Location | None:
    """The git dir a `.git` file (`gitdir: PATH`: a linked worktree's, a --separate-git-dir) names, checked."""
    try:
        with open(dotgit, "rb") as file:
            text = file.read(_PATH_ROOM).rstrip()
        if not text.startswith(b"gitdir:") or b"\\" in text or len(text) >= _PATH_ROOM - 1:
            return None
        gitdir = os.path.realpath(os.path.join(folder, text[7:].lstrip().decode()), strict=True)
    except (OSError, ValueError):  # ValueError: UnicodeDecodeError, or a NUL in the path
        return None
    try:
        # A linked worktree's git dir names its .git file back, and libgit2 takes the working tree
        # (whose owner it checks) from there; other git dirs (--separate-git-dir) have no such file.
        with open(os.path.join(gitdir, "gitdir"), "rb") as file:
            if file.read(_PATH_ROOM).rstrip() != dotgit.encode():
                return None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return _location(gitdir, folder, dotgit)


def _location(gitdir: str, folder: str, gitlink: str | None) -> Location | None:
    """A Location when *gitdir* is a git dir libgit2 accepts (HEAD, objects and refs, as its
    is_valid_repository_path checks) that this module can read, owned by this user, else None."""
    try:
        commondir = gitdir
        if os.path.lexists(os.path.join(gitdir, "commondir")):
            with open(os.path.join(gitdir, "commondir"), "rb") as file:
                text = file.read(_PATH_ROOM).rstrip().decode()
            if not text or text != text.lstrip():
                return None  # libgit2 and Repo would read the path differently
            commondir = os.path.realpath(os.path.join(gitdir, text), strict=True)
        if max(len(gitdir), len(commondir)) > _PATH_ROOM or not (
                os.path.isfile(os.path.join(gitdir, "HEAD")) and os.path.isdir(os.path.join(commondir, "objects"))
                and os.path.isdir(os.path.join(commondir, "refs"))):
            return None
        # libgit2 refuses a repository owned by another user unless safe.directory allows it: its call.
        # (Repo opens the git dir found, so for a --separate-git-dir its working tree is the git dir's parent.)
        uid = os.geteuid()
        for path in (folder, gitdir, commondir, gitlink, os.path.dirname(gitdir)):
            if path is not None and os.stat(path).st_uid != uid:
                return None
        with open(os.path.join(commondir, "config"), "rb") as file:
            config = file.read().lower()
    except (OSError, ValueError):
        return None
    if any(word in config for word in _UNUSUAL_CONFIG) or \
            any(version not in (b"0", b"1") for version in re.findall(_FORMAT_VERSION, config)):
        return None
    return Location(Path(gitdir), Path(commondir), Path(folder))


def read_refs(commondir: Path, prefix: str, loose: dict[str, str] | None = None) -> dict[str, str] | None:
    """name -> commit id of every direct ref whose name starts with *prefix*, as Repo.refs(prefix)
    answers them (in its order too), from the files backend; None when libgit2 must say. *loose*:
    the loose refs of *prefix*, read just before (refs_state's), not to read them twice.

    Loose refs are read before packed-refs, as git does: a ref that `git pack-refs` moves from its
    loose file into packed-refs meanwhile is then found in one or the other.
    """
    if not prefix.startswith("refs/") or any(p.startswith(prefix) or prefix.startswith(p) for p in _PER_WORKTREE):
        return None
    if loose is None:
        loose = {}
        if not _read_loose(str(commondir), prefix, loose):
            return None
    packed = _read_packed(commondir / "packed-refs", prefix)
    if packed is None or not _valid_names([*loose, *packed]):
        return None
    # libgit2 lists the loose refs by name, then the packed ones no loose ref overrides, by name.
    names = list(packed)
    if names != sorted(names):
        packed = {name: packed[name] for name in sorted(names)}
    if not loose:
        return packed
    out = {name: loose[name] for name in sorted(loose)}
    out.update((name, oid) for name, oid in packed.items() if name not in loose)
    return out


def loose_refs(commondir: Path, prefix: str) -> dict[str, str] | None:
    """name -> commit id of the loose refs starting with *prefix*; None at anything unusual."""
    loose: dict[str, str] = {}
    return loose if _read_loose(str(commondir), prefix, loose) and _valid_names(list(loose)) else None


def refs_state(gitdir: Path, commondir: Path, prefix: str) -> tuple[tuple[object, ...] | None, dict[str, str]] | None:
    """What tells whether the refs starting with *prefix* changed, without reading packed-refs:
    the identity of the packed-refs file (inode, size, modification and change times; zeros without
    one), followed for run refs by the loose value of the run shelf's ref where it has one (None
    for neither), and the loose refs. git rewrites packed-refs into a new file renamed over the old one and
    trusts the same stat to know its copy is current.

    None where read_refs would be None, in a linked worktree, and while packed-refs is not settled():
    a file system keeps times to a few milliseconds (or whole seconds), so a packed-refs written
    again within the same tick, into a recycled inode, with as many bytes, would have the same
    stat. Once a state is older than that, any later rewrite has a later time.
    """
    if gitdir != commondir or not prefix.startswith("refs/") or \
            any(p.startswith(prefix) or prefix.startswith(p) for p in _PER_WORKTREE):
        return None
    loose: dict[str, str] = {}
    # Loose refs first, as read_refs: a `git pack-refs` between the two changes the packed-refs part.
    if not _read_loose(str(commondir), prefix, loose) or not _valid_names(list(loose)):
        return None
    # The run shelf's ref (git/shelf.py) names the runs without a ref of their own: its loose file
    # is part of the identity (packed, packed-refs' stat tells its changes).
    shelf: tuple[str, ...] = ()
    if prefix.startswith(RUN_PREFIX) or RUN_PREFIX.startswith(prefix):
        try:
            with open(commondir / SHELF_REF, "rb") as handle:
                shelf = (handle.read(64).decode("ascii", "replace"),)
        except FileNotFoundError:
            pass
        except OSError:
            return None
    try:
        info = os.stat(commondir / "packed-refs")
    except FileNotFoundError:
        return ((0, 0, 0, 0, *shelf) if shelf else None), loose
    except OSError:
        return None
    if not settled(info):
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, *shelf), loose


def settled(info: os.stat_result) -> bool:
    """Whether a file of this stat is old enough for its stat to tell it from the next file written in
    its place: older than the file system's times can confuse (RACY_SECONDS, FINE_RACY_SECONDS)."""
    racy = FINE_RACY_SECONDS if info.st_mtime_ns % 1_000_000_000 else RACY_SECONDS
    return info.st_mtime <= time.time() - racy


def only_loose_changed(then: Any, now: tuple[tuple[object, ...] | None, dict[str, str]] | None) -> bool:
    """Whether the refs under the refs_state *now* are those under *then* (one kept in a cache file:
    checked) with the loose refs of *now* over them: the same packed-refs file (or none either
    time), and no loose ref of then gone. A sweep's new runs are loose refs beside 100,000 packed
    ones, which then need not be read. A loose ref gone while packed-refs stayed was deleted, or
    its file removed by hand with a packed value beneath it that only packed-refs tells."""
    return now is not None and type(then) is tuple and len(then) == 2 and then[0] == now[0] and \
        type(then[1]) is dict and then[1].keys() <= now[1].keys()


def _read_loose(root: str, prefix: str, out: dict[str, str]) -> bool:
    """The loose refs starting with *prefix* into *out*; False at anything libgit2 must judge."""
    folders = [prefix.rpartition("/")[0]]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(f"{root}/{folder}"))
        except FileNotFoundError:
            continue  # none, or removed while read (its refs deleted or packed meanwhile)
        except OSError:
            return False
        for entry in entries:
            name = f"{folder}/{entry.name}"
            if not (name.startswith(prefix) or prefix.startswith(name + "/")):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(name)
                    continue
                if name.endswith(".lock"):
                    continue  # a ref being written: until it is renamed, the ref is what it was
                if not entry.is_file(follow_symlinks=False) or not name.startswith(prefix):
                    return False
                fd = os.open(entry.path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # deleted, or packed, since the folder was listed
            except OSError:
                return False
            try:
                data = os.read(fd, 64)
            except OSError:
                return False
            finally:
                os.close(fd)
            if len(data) < 40 or data[40:] not in (b"", b"\n") or data[:40].translate(None, _HEX_DIGITS):
                return False  # a symbolic ref ("ref: ..."), or damaged
            out[name] = data[:40].decode()
    return True


def _read_packed(path: Path, prefix: str) -> dict[str, str] | None:
    """The refs of packed-refs starting with *prefix*, {} without the file; None unless the whole
    file is what `git pack-refs` writes."""
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    if text.startswith("#"):
        if not text.startswith("# pack-refs with:") or "\n" not in text:
            return None
        text = text[text.index("\n") + 1:]
    # git writes the refs sorted by name, so those of *prefix* are one block of lines: split at once
    # when they are all plain "<id> <name>" lines (no ^peeled tag among them), else line by line.
    head = " " + prefix
    begin = text.find(head) - 40
    end = text.find("\n", text.rfind(head)) + 1
    if text[end:end + 1] == "^":
        end = text.find("\n", end) + 1  # the last ref's ^peeled line goes with it
    if begin < 0 or end <= 0 or (begin and text[begin - 1] != "\n"):
        begin = end = 0
    block = text[begin:end]
    found = (block and _split_block(block, prefix)) or _split_lines(block, prefix)
    rest = _split_lines(text[:begin] + text[end:], prefix)
    if found is None or rest is None:
        return None
    for name, oid in rest.items():
        if found.setdefault(name, oid) != oid:
            return None  # listed twice
    return found


def _split_block(block: str, prefix: str) -> dict[str, str] | None:
    """The "<id> <name>" lines of *block* when each names a ref of *prefix*, split at C speed; else None."""
    words = block[:-1].replace("\n", " ").split(" ")  # id, name, id, name...
    ids, names = words[::2], words[1::2]
    if len(ids) != len(names) or not _hex(ids):
        return None
    out = dict(zip(names, ids, strict=True))
    joined = "\n".join(names)
    if len(out) != len(names) or not joined.startswith(prefix) or joined.count("\n" + prefix) != len(names) - 1:
        return None
    return out


def _split_lines(text: str, prefix: str) -> dict[str, str] | None:
    """The refs of *prefix* in *text*, lines of packed-refs, checked one by one."""
    if text[-1:] not in ("", "\n"):
        return None  # no newline at the end
    out: dict[str, str] = {}
    ids = []  # of every line, ^peeled lines of annotated tags included
    peelable = False  # a ^peeled line follows the line of its tag's ref
    for line in text[:-1].split("\n") if text else ():
        if line[:1] == "^" and peelable and len(line) == 41:
            ids.append(line[1:])
            peelable = False
            continue
        oid = line[:40]
        if line[40:41] != " " or len(line) < 42:
            return None
        ids.append(oid)
        peelable = True
        if line.startswith(prefix, 41) and out.setdefault(line[41:], oid) != oid:
            return None  # listed twice
    return out if _hex(ids) else None


def _hex(ids: list[str]) -> bool:
    """Whether each of *ids* is 40 lowercase hex digits."""
    joined = "".join(ids)
    return len(joined) == 40 * len(ids) and not joined.encode().translate(None, _HEX_DIGITS)


def _valid_names(names: list[str]) -> bool:
    """Whether every name keeps git's ref-name rules (`git help check-ref-format`) and is ASCII (a
    Mac's file system may give a name back composed otherwise than git wrote it)."""
    text = "\n".join(names)
    if not text.isascii() or text.encode().translate(None, _NAME_CHARS) != b"\n" * (len(names) - 1 if names else 0):
        return False
    if "//" in text or "/\n" in text or text.endswith("/") or ("@" in text and "@{" in text):
        return False
    return "." not in text or re.search(_BAD_DOTS, text) is None


# -- HEAD and its reflog, for the post-commit hook --------------------------------------------------

def worktree_gitdir(workdir: str) -> str | None:
    """The git directory of the working tree at *workdir* ($GIT_DIR when set; a linked worktree's
    own, which its `.git` file names), or None."""
    gitdir = os.environ.get("GIT_DIR") or os.path.join(workdir, ".git")
    try:
        if os.path.isfile(gitdir):  # a linked worktree: .git names its git directory
            with open(gitdir) as handle:
                gitdir = os.path.join(workdir, handle.read().strip().removeprefix("gitdir: "))
    except OSError:
        return None
    return gitdir if os.path.isdir(gitdir) else None


def head_commit(gitdir: str) -> str | None:
    """The commit HEAD of *gitdir* is at: detached, or through the branch it names (a loose ref of
    the common dir, else packed-refs). None when anything is not the plain layout."""
    try:
        with open(os.path.join(gitdir, "HEAD")) as handle:
            head = handle.read().strip()
        common = gitdir
        if os.path.isfile(os.path.join(gitdir, "commondir")):
            with open(os.path.join(gitdir, "commondir")) as handle:
                common = os.path.join(gitdir, handle.read().strip())
        if head.startswith("ref: refs/"):
            ref = head[5:]
            try:
                with open(os.path.join(common, ref)) as handle:
                    head = handle.read().strip()
            except FileNotFoundError:
                packed = _read_packed(Path(common, "packed-refs"), ref)
                head = (packed or {}).get(ref, "")
    except (OSError, ValueError):  # ValueError: not UTF-8
        return None
    if len(head) not in (40, 64) or any(c not in "0123456789abcdef" for c in head):
        return None
    return head


# What made a commit, from the HEAD reflog's message ("rebase (pick): ...", "commit (amend): ...").
_REWRITE_ACTIONS = (("commit (amend)", "an amend"), ("commit (merge)", "a merge"), ("merge", "a merge"),
                    ("cherry-pick", "a cherry-pick"), ("am", "git am"))
# The same, from the state files git keeps while it works, where the reflog says nothing.
_REWRITE_STATE = (("rebase-merge", "a rebase"), ("rebase-apply", "a rebase or git am"),
                  ("CHERRY_PICK_HEAD", "a cherry-pick"), ("MERGE_HEAD", "a merge"))


def rewrite_kind(gitdir: str, commit: str) -> str | None:
    """Which history rewrite made *commit* ("a rebase", "an amend", "a cherry-pick", "a merge",
    "git am"), or None for an ordinary commit. Reads the last line of HEAD's reflog (whose message
    says what moved HEAD), else git's in-progress state files; a few file reads, no process."""
    try:
        with open(os.path.join(gitdir, "logs", "HEAD"), "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4096))
            last = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode(errors="replace")
    except OSError:
        last = ""
    who, _, message = last.partition("\t")
    fields = who.split(" ")
    if len(fields) > 1 and fields[1] == commit:
        action = message.split(":", 1)[0]
        if "rebase" in action:  # rebase (pick), rebase -i (squash), pull --rebase ...
            return "a rebase"
        for prefix, what in _REWRITE_ACTIONS:
            if action == prefix or action.startswith(prefix + " "):
                return what
        return None
    for name, what in _REWRITE_STATE:  # no reflog entry for this commit (core.logAllRefUpdates off)
        if os.path.exists(os.path.join(gitdir, name)):
            return what
    return None


# -- reflogs, for gc --------------------------------------------------------------------------------

def reflog_commits(commondir: Path, skip: tuple[str, ...] = ()) -> set[str]:
    """Every commit the reflogs name: of each ref whose name does not start with one of *skip*, and
    of HEAD in every worktree, archived run reflogs (reflogs.py) included. A log that cannot be read
    is passed over; a torn line gives the ids it holds."""
    from gitexp.git import reflogs  # a file reader like this module: no pygit2

    out: set[str] = set()
    for ref, lines in reflogs.archived(commondir).items():
        if not ref.startswith(skip):
            for line in lines:
                out.update(word for word in reflogs.parse(line)[:2] if word.strip("0"))
    logs = commondir / "logs"
    files = [(path.relative_to(logs).as_posix(), path) for path in logs.rglob("*") if path.is_file()]
    files += [("HEAD", path) for path in commondir.glob("worktrees/*/logs/HEAD")]
    for ref, path in files:
        if ref.startswith(skip):
            continue
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            out.update(word for word in line.split()[:2] if len(word) == 40 and word.strip("0"))
    return out
