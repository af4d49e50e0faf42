"""Refs written as git's files backend writes them: a lock file, the reflog line, a rename.

libgit2 checks a ref it writes against every other ref for a name conflict (refs/a beside
refs/a/b), reading them all: at 100,000 packed run refs that is 2-4 ms for each run created and
each checkpoint, where git's own protocol costs a few file operations. That protocol
(git's refs/files-backend.c): take `<ref>.lock` with O_EXCL, read the value under it (the loose
file, else packed-refs), check what the caller expected, write the new id into the lock, append
the reflog line, rename the lock over the loose file. `git pack-refs` takes the same lock before it
removes a loose ref it packed, so neither can lose the other's write.

packed-refs is searched, not read: git writes it sorted (its header says so), so packed_ref()
bisects it through mmap; packed_ref_scan() reads it line by line, the reference the tests hold
the bisection to, and what an unsorted file gets.

Only a repository whose refs are plain files takes this path (Refs decides); this module imports
no pygit2.
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Iterable

from gitexp.errors import StorageError
from gitexp.git import spares
from gitexp.warn import warn

# Waits between tries of a ref write that found the ref locked: 0.6 s in all, six times git's default.
LOCK_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.2)
# A lock of one of gitexp's own refs this old was left by a process killed between taking it and
# renaming it (git and gitexp hold a ref's lock for milliseconds): it is removed, with a warning,
# rather than leave the run unrecoverable and every listing waiting on it.
STALE_LOCK = 60.0
_SORTED_TRAIT = b" sorted "


class RefConflictError(StorageError):
    """A compare-and-swap ref update lost a race; the caller reloads and retries."""


class RefLockedError(RefConflictError):
    """The ref's lock file stayed taken for longer than LOCK_DELAYS allow."""


def packed_ref_scan(data: bytes, name: str) -> str | None:
    """The id packed-refs *data* gives ref *name*, read line by line (the reference for packed_ref)."""
    wanted = name.encode()
    for line in data.split(b"\n"):
        if line[:1] in (b"#", b"^") or len(line) < 42:
            continue
        if line[41:] == wanted and line[40:41] == b" ":
            return line[:40].decode()
    return None


def packed_ref(commondir: str, name: str) -> str | None:
    """The id packed-refs gives ref *name*, or None; bisected when the file says it is sorted."""
    return packed_refs(commondir, [name])[0]


def packed_refs(commondir: str, names: list[str]) -> list[str | None]:
    """packed_ref of each of *names*, with the file opened and mapped once."""
    try:
        fd = os.open(os.path.join(commondir, "packed-refs"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return [None] * len(names)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return [None] * len(names)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
            header_end = data.find(b"\n") + 1 if data[:1] == b"#" else 0
            if header_end and _SORTED_TRAIT not in data[:header_end] + b" ":
                whole = data[:]
                return [packed_ref_scan(whole, name) for name in names]
            return [_bisect(data, header_end, size, name.encode()) for name in names]
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {commondir}/packed-refs to look up {', '.join(names)}: {exc}") from exc
    finally:
        os.close(fd)


def _bisect(data: mmap.mmap, low: int, high: int, wanted: bytes) -> str | None:
    """Bisect the sorted records between byte offsets *low* and *high* (each a record's start): a
    record is an "<id> <name>" line and the "^<peeled id>" lines that follow it (git's
    packed-backend.c find_reference_location)."""
    while low < high:
        # back to the start of the record holding the middle byte (a ^ line belongs to the one before)
        start = max(low, data.rfind(b"\n", low, (low + high) // 2) + 1)
        while start > low and data[start] == 0x5E:
            start = max(low, data.rfind(b"\n", low, start - 1) + 1)
        eol = data.find(b"\n", start, high)
        eol = high if eol < 0 else eol
        found = data[start + 41:eol]
        if found == wanted:
            return data[start:start + 40].decode()
        if found < wanted:
            low = eol + 1
            while low < high and data[low] == 0x5E:  # past the record's ^ lines
                eol = data.find(b"\n", low, high)
                low = high if eol < 0 else eol + 1
        else:
            high = start
    return None


def _lock(commondir: str, path: str, stale: bool) -> int:
    """Take `<path>.lock`, waiting out another writer for up to sum(LOCK_DELAYS) seconds; with
    *stale*, a lock found older than STALE_LOCK is removed first."""
    delays = iter(LOCK_DELAYS)
    made = 0
    while True:
        try:
            return spares.open_new(commondir, path + ".lock")
        except FileNotFoundError:
            # `git pack-refs` removes the folders it empties, ours included: made again, a few times.
            made += 1
            if made > len(LOCK_DELAYS):
                raise
            make_folders(os.path.dirname(path))
        except FileExistsError:
            if stale and _drop_stale(path + ".lock"):
                stale = False
                continue
            delay = next(delays, None)
            if delay is None:
                raise RefLockedError(
                    f"ref {path} stayed locked by another process for {sum(LOCK_DELAYS):.1f} s ({path}.lock); "
                    f"if no git command is running, delete that file") from None
            time.sleep(delay)


def make_folders(path: str) -> None:
    """os.makedirs(*path*, exist_ok=True), where a folder on the way may vanish meanwhile: `git pack-refs
    --prune` and git's ref deletions remove the folders they empty, ours included. Between makedirs
    finding `refs/experiments/sweep` and making `lr` in it, one did, and a run's checkpoint failed.
    The caller, which opens a file in *path* next, retries that as well: the folder may go again."""
    for _ in LOCK_DELAYS:
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    os.makedirs(path, exist_ok=True)


def _drop_stale(lock: str) -> bool:
    """Remove *lock* when it is older than STALE_LOCK; whether it is gone."""
    try:
        age = time.time() - os.stat(lock).st_mtime
    except FileNotFoundError:
        return True  # released meanwhile
    except OSError:
        return False
    if age < STALE_LOCK:
        return False
    try:
        os.unlink(lock)
    except FileNotFoundError:
        return True
    warn(f"gitexp: removed {lock}, a lock {age:.0f} s old: a process was killed while it wrote that ref")
    return True


def _loose_value(path: str) -> str | bool | None:
    """The id in the loose ref file *path*; None without the file; False when it is not a plain id (a
    symbolic ref, or damaged): libgit2 must judge it."""
    try:
        with open(path, "rb") as file:
            data = file.read(256)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return False
    value = data.strip()
    if len(value) != 40 or value.translate(None, b"0123456789abcdef"):
        return False
    return value.decode()


def write_ref(commondir: str, name: str, new: str, expected: str | None, reflog_line: str | None,
              own: bool = False) -> bool:
    """Point *name* at *new* if it is at *expected* now (None: it must not exist), under its lock;
    append *reflog_line* (a full line with its newline) to its reflog file first, when given.
    *own*: a ref only gitexp writes, whose lock may be removed when stale (STALE_LOCK).

    Returns False, having changed nothing, when the ref is something this writer must not judge (a
    symbolic ref, a damaged file, a name that is a folder): the caller asks libgit2 instead.
    Raises RefConflictError when the ref is not at *expected*, or stays locked.
    """
    path = os.path.join(commondir, name)
    try:
        fd = _lock(commondir, path, own)
    except NotADirectoryError:
        return False  # a ref named like one of our folders: a name conflict libgit2 words well
    locked = path + ".lock"
    done = False
    try:
        loose = _loose_value(path)
        if loose is False:
            return False
        if isinstance(loose, str):
            current: str | None = loose
        else:  # the ref, and each folder above it: a packed ref there is a name conflict libgit2 words
            current, *folders = packed_refs(commondir, [name, *conflicting_prefixes(name)])
            if current is None and any(folder is not None for folder in folders):
                return False
        if current != expected:
            raise RefConflictError(f"ref {name} exists already" if expected is None else
                                   f"ref {name} moved to {(current or 'nothing')[:12]} (expected {expected[:12]})")
        os.write(fd, f"{new}\n".encode())
        os.close(fd)
        fd = -1
        if reflog_line is not None:
            _append(os.path.join(commondir, "logs", name), reflog_line)
        os.rename(locked, path)
        done = True
        return True
    except OSError as exc:
        raise StorageError(f"cannot write ref {name} in {commondir}: {exc}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            try:
                os.unlink(locked)
            except FileNotFoundError:
                pass


def _append(log: str, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, line.encode("utf-8", errors="surrogateescape"))
    finally:
        os.close(fd)


def reflog_line(old: str | None, new: str, committer: str, message: str, now: float | None = None) -> str:
    """A reflog line as git writes it: `<old> <new> <Name <email>> <time> <+zone>\\t<message>\\n`."""
    moment = time.time() if now is None else now
    offset = time.localtime(moment).tm_gmtoff // 60
    zone = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    text = " ".join(message.split()) if any(c in message for c in "\n\r") else message
    return f"{old or '0' * 40} {new} {committer} {int(moment)} {zone}\t{text}\n"


def conflicting_prefixes(name: str) -> Iterable[str]:
    """The refs that would make a name conflict with *name* as files: each folder above it."""
    parts = name.split("/")
    return ("/".join(parts[:k]) for k in range(2, len(parts)))
