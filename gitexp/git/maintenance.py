"""The pack folder kept small, and safe beside git's own maintenance.

Every run commit is written as a small pack (gitexp/git/pack.py). Left alone, a sweep makes tens
of thousands of them and git can no longer map them all. After each pack it writes, gitexp
counts the packs it may merge (whole-object packs without a .keep, .promisor, .mtimes or
.bitmap); past SOFT_LIMIT it folds them geometrically, as `git repack --geometric=2` does:
sorted by size, the smallest are merged until each pack is at least twice the size of all
smaller ones together. So there are about log2(total / smallest) of them at any run count, and
each byte is copied a logarithmic number of times. One process merges at a time (a lock in
<git dir>/gitexp/); past HARD_LIMIT a writer waits for the merger, so the bound holds with any
number of writers at any rate.

A pack just written holds objects that no ref reaches yet, which `git repack -a -d` and
`git gc --prune=now` would delete; so it is written with a `.keep` file, which both honour,
naming this host and process, before the pack itself appears, and never on a pack that exists
already (claim()). release() removes it once a ref reaching its objects has moved.
A keep whose process died on this host is removed by the next merge. Creating a file costs 0.05
to 1 ms on common disks and renaming one a few microseconds, so keeps are renamed into place from
a few spare files per process in <git dir>/gitexp/ (`keep.<pid>.<n>`), and back again.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import mmap
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from gitexp.git import pack, spares

SOFT_LIMIT = 32  # mergeable packs before a writer merges (below git's gc.autoPackLimit, 50)
EXIT_LIMIT = 4  # ... from which a process whose runs ended merges them as it exits (merge_at_exit)
HARD_LIMIT = 64  # ... before a writer waits for another process's merge to finish
MAX_MERGE = 1 << 30  # bytes merged at once; larger packs are left to `git gc`
FOLD_BELOW = 512 << 10  # bytes under which mergeable packs are merged whatever their sizes (fold_small)
KEEP_PREFIX = b"gitexp"
_HOST = socket.gethostname()
_unmergeable: set[str] = set()  # packs found to hold deltas (git's own): never looked at again


def keep_content() -> bytes:
    return b"%s %s %d\n" % (KEEP_PREFIX, _HOST.encode(), os.getpid())


_spares: dict[str, list[str]] = {}  # gitexp folder -> this process's spare keep files there
_held: set[str] = set()  # keeps this process put in place and has not lifted
_spares_lock = threading.Lock()
_made = 0  # spare names handed out by this process
_MAX_SPARES = 4


def _after_fork() -> None:
    global _spares_lock, _made
    _spares_lock = threading.Lock()  # a parent's thread may have held it
    _spares.clear()  # the parent's files, naming the parent: it removes them
    _held.clear()
    _at_exit.clear()  # (the parent merges its own; a child that ends runs registers again)
    _made = 0


os.register_at_fork(after_in_child=_after_fork)


def _folder(pack_path: str | Path) -> str:
    """<git dir>/gitexp for a path in <git dir>/objects/pack."""
    return os.path.join(pack.git_dir_of(pack_path), "gitexp")


def claim(pack_path: Path) -> bool:
    """Put a .keep beside *pack_path* before the pack exists, if that pack name is free; False when
    it is taken (pack.write_pack then names the pack otherwise).

    A name is taken by a pack or a keep already there: two processes writing the same objects (the
    same code snapshot, the same artifact) make the same pack. Sharing it would let one process's
    release() lift the keep the other still needs, and writing it again would put a keep on a pack
    that a running `git repack -a -d` already chose to delete while its walk skips the objects of
    kept packs: both lose the objects. The keep is made exclusively (a hard link or O_EXCL), so
    of two processes at most one claims a name.
    """
    base = os.fspath(pack_path)[:-len(".pack")]
    if os.path.exists(f"{base}.pack"):
        return False
    keep = f"{base}.keep"
    with _spares_lock:
        pool = _spares.get(_folder(pack_path))
        spare = pool.pop() if pool else None
    try:
        if spare is not None:
            try:
                os.link(spare, keep)
                os.unlink(spare)
            except FileNotFoundError:  # the spare was removed by a clean-up that took this process for dead
                spare = None
        if spare is None:
            fd = os.open(keep, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            try:
                os.write(fd, keep_content())
            finally:
                os.close(fd)
    except FileExistsError:
        if spare is not None:
            with _spares_lock:
                _spares.setdefault(_folder(pack_path), []).append(spare)
        return False
    if os.path.exists(f"{base}.pack"):  # made and released meanwhile by another process: not ours
        os.unlink(keep)
        return False
    with _spares_lock:
        _held.add(keep)
    return True


def release(keeps: list[str]) -> None:
    """Lift the .keep of packs whose objects a ref now reaches: each becomes a spare, or goes."""
    global _made
    for keep in keeps:
        folder = _folder(keep)
        with _spares_lock:
            _held.discard(keep)
            pool = _spares.setdefault(folder, [])
            spare = None
            if len(pool) < _MAX_SPARES:
                _made += 1
                spare = f"{folder}/keep.{os.getpid()}.{_made}"
        try:
            if spare is None:
                os.unlink(keep)
                continue
            os.rename(keep, spare)
        except FileNotFoundError:  # gone already (a clean-up, or the repository was deleted)
            if os.path.exists(keep):  # or no folder for spares (no run made one yet): lift it plainly
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(keep)
            continue
        with _spares_lock:
            pool.append(spare)


def release_spares() -> None:
    """At exit: remove this process's spare keep files, and the keeps of packs no ref came to reach
    (a commit whose ref update lost to another writer; a run that gave up, whose journal has its data)."""
    with _spares_lock:
        spares = [path for pool in _spares.values() for path in pool] + list(_held)
        _spares.clear()
        _held.clear()
    for path in spares:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


atexit.register(release_spares)


_at_exit: set[str] = set()  # common git dirs whose small packs this process merges as it exits


def merge_at_exit(commondir: Path) -> None:
    """Have this process fold the small packs of *commondir* as it exits (a run of it ended).

    Up to SOFT_LIMIT of them stay between two merges, and every git command that looks up an object
    none of them holds (the user's own commits, loose until git packs them) searches each one: with
    32, `git status` took 30% longer and `git log -20` 40%, against 6% and 18% with 4. A merge per
    pack written would cost every run a tenth of its time; one as the process exits, nothing that
    it waits for."""
    with _spares_lock:
        _at_exit.add(os.fspath(commondir))


def _merge_at_exit() -> None:
    with _spares_lock:
        folders = sorted(_at_exit)
        _at_exit.clear()
    for commondir in folders:
        try:
            if mergeable(Path(commondir)) > EXIT_LIMIT:
                compact(Path(commondir))
            fold_small(Path(commondir))
        except OSError:  # (the repository gone meanwhile, a read-only one: git gc merges them)
            pass


# Registered as this module is imported, before tracking/run.py registers the handler that ends the
# runs still live at exit and writes their notes (atexit calls the last registered first): the merge
# then folds the packs those write too, not the ones before them alone.
atexit.register(_merge_at_exit)


def after_write(commondir: Path) -> None:
    """Called after a pack is written: merge when the folder holds too many mergeable packs."""
    pack_dir = commondir / "objects" / "pack"
    names = set(os.listdir(pack_dir))
    if len(_candidates(names)) <= SOFT_LIMIT:
        return
    compact(commondir, wait=len(_candidates(names)) > HARD_LIMIT)


def mergeable(commondir: Path) -> int:
    """How many packs of *commondir* a merge may fold now (no .keep, whole objects)."""
    return len(_candidates(set(os.listdir(commondir / "objects" / "pack"))))


def _candidates(names: set[str]) -> list[str]:
    """Base names (pack-<sha>) of the packs a merge may fold, from the folder's listing."""
    out = []
    for name in names:
        if name.endswith(".idx") and name.startswith("pack-"):
            base = name[:-4]
            if base in _unmergeable or f"{base}.pack" not in names:
                continue
            if any(f"{base}.{suffix}" in names for suffix in ("keep", "promisor", "mtimes", "bitmap")):
                continue
            out.append(base)
    return out


def compact(commondir: Path, wait: bool = False) -> int:
    """Fold the small mergeable packs geometrically; returns how many packs were removed.

    Another process merging already: returns 0 at once, or with *wait*, after it is done.
    """
    if gc_running(commondir):
        return 0
    with pack_lock(commondir, wait) as held:
        if not held:
            return 0
        pack_dir = commondir / "objects" / "pack"
        _drop_dead_files(pack_dir)
        return _merge_smallest(pack_dir)


def gc_running(commondir: Path) -> bool:
    """Whether a `git gc` holds its lock (gc.pid, which git takes as stale after 12 hours): its
    pack-objects may yet open a pack that a merge or a removal here would take away, and fail
    ("cannot open index for ...pack"). Merges wait for its end; it packs every pack itself."""
    try:
        return time.time() - os.stat(commondir / "gc.pid").st_mtime < 12 * 3600
    except OSError:
        return False


@contextlib.contextmanager
def pack_lock(commondir: Path, wait: bool, name: str = "packs.lock") -> Iterator[bool]:
    """Hold the lock of whatever rewrites or removes packs (merges here, settle.py), or the lock
    <common git dir>/gitexp/*name*: yields False without it when another process holds it and
    *wait* is false."""
    lock_path = commondir / "gitexp" / name
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the flock


def _sizes(pack_dir: Path, bases: list[str]) -> list[tuple[int, str]]:
    out = []
    for base in bases:
        try:
            out.append((os.stat(pack_dir / f"{base}.pack").st_size, base))
        except FileNotFoundError:  # removed meanwhile by git or another merge
            continue
    return sorted(out)


def geometric_split(sizes: list[int], factor: int = 2) -> int:
    """How many of the smallest *sizes* (ascending) to merge so that each remaining pack is at
    least *factor* times the size of all smaller ones together (the merged one included)."""
    split, below = 0, 0
    for i, size in enumerate(sizes):
        if size < factor * below:
            split = i + 1
        below += size
    return split if split >= 2 else 0


def fold_small(commondir: Path, below: int = FOLD_BELOW) -> int:
    """Merge every mergeable pack of fewer than *below* bytes into one, where there are two or more;
    returns how many were merged (0 while another process holds the pack lock).

    Geometric merging leaves a pack of 3 objects beside one of 26, 171 and 721 (each more than
    twice all smaller ones), and every git command that looks up an object none holds searches
    each: with five such packs beside the settled one at 100,000 runs, `git log --oneline
    --decorate -20` took 1.11x the time without runs, 1.08x with one. A process whose runs ended
    folds them as it exits, and so does the background upkeep (refmaint.py), which writes packs
    too: at most FOLD_BELOW bytes a pack copied, a few milliseconds."""
    if gc_running(commondir):
        return 0
    with pack_lock(commondir, wait=False) as held:
        if not held:
            return 0
        pack_dir = commondir / "objects" / "pack"
        small = [base for size, base in _sizes(pack_dir, _candidates(set(os.listdir(pack_dir)))) if size < below]
        return _merge(pack_dir, small)


def _merge_smallest(pack_dir: Path) -> int:
    sizes = _sizes(pack_dir, _candidates(set(os.listdir(pack_dir))))
    split = geometric_split([size for size, _ in sizes])
    chosen, total = [], 0
    for size, base in sizes[:split]:
        if total + size > MAX_MERGE:
            break
        chosen.append(base)
        total += size
    return _merge(pack_dir, chosen)


def _merge(pack_dir: Path, chosen: list[str]) -> int:
    """Merge the packs *chosen* (base names) into one; how many were merged (those that hold deltas, or
    that git removed meanwhile, are left out)."""
    if len(chosen) < 2:
        return 0
    sources, maps, merged = [], [], []
    try:
        for base in chosen:
            opened = _open(pack_dir, base)
            if opened is None:
                continue
            data, spans = opened
            maps.append(data)
            sources.append((data, spans))
            merged.append(base)
        if len(sources) < 2 or pack.merge(pack_dir, sources) is None:
            return 0
    finally:
        for data in maps:
            data.close()
    for base in merged:
        # The index first: without it no reader looks at the pack any more.
        for suffix in ("idx", "pack", "rev"):
            try:
                os.unlink(pack_dir / f"{base}.{suffix}")
            except FileNotFoundError:
                pass
    # A multi-pack index naming a removed pack would send git looking for it: git works without one,
    # and `git multi-pack-index write` (or `git maintenance`) writes it again.
    try:
        os.unlink(pack_dir / "multi-pack-index")
    except FileNotFoundError:
        pass
    return len(merged)


def _open(pack_dir: Path, base: str) -> tuple[mmap.mmap, list[pack.Span]] | None:
    """A pack mapped and its spans, or None when it is gone (git removed it) or holds deltas."""
    try:
        index = (pack_dir / f"{base}.idx").read_bytes()
        with open(pack_dir / f"{base}.pack", "rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (FileNotFoundError, ValueError):
        return None
    spans = pack.whole_spans(data, index)
    if spans is None:
        data.close()
        _unmergeable.add(base)
        return None
    return data, spans


def _drop_dead_files(pack_dir: Path) -> None:
    """Remove the .keep files, spares and temporary files that gitexp processes on this host left
    when they died."""
    folder = _folder(pack_dir / "x")
    spares.drop_dead(pack.git_dir_of(pack_dir / "x"), alive)
    for name in os.listdir(folder):
        if name.startswith("keep.") and not alive(int(name.split(".")[1]) if name.count(".") == 2 else -1):
            try:
                os.unlink(f"{folder}/{name}")
            except FileNotFoundError:
                pass
    for name in os.listdir(pack_dir):
        if name.startswith("gitexp-tmp-"):  # pack.py's temporary files: "..._<pid>"
            pid = name.rpartition("_")[2]
            if not alive(int(pid) if pid.isdigit() else -1):
                (pack_dir / name).unlink(missing_ok=True)
            continue
        if not name.endswith(".keep"):
            continue
        try:
            with open(pack_dir / name, "rb") as handle:
                words = handle.read(256).split()
        except OSError:
            continue
        if len(words) != 3 or words[0] != KEEP_PREFIX or words[1].decode(errors="replace") != _HOST:
            continue  # the user's keep, or another machine's: not ours to judge
        if not alive(int(words[2]) if words[2].isdigit() else -1):
            (pack_dir / name).unlink(missing_ok=True)


def alive(pid: int) -> bool:
    """Whether process *pid* of this host may still be running (unknown counts as alive)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
