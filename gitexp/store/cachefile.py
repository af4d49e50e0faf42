"""The marshal files under `<common git dir>/gitexp/cache/`: read in one piece, written whole or not at all.

Each cache there (the listing's runcache, the parsed histories, the hashes of artifact files) holds
derived data that git can give again, so a file that is missing, damaged or written by another
version reads as nothing (None), and one that cannot be written costs only time: no caller ever
fails because of its cache. A write goes to a temporary file renamed over the old one, so that a
reader never sees half of it, even while several processes write the same cache.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import fcntl
import glob
import marshal
import mmap
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gitexp import threads

MAP_FROM = 1 << 20  # bytes of a file from which load() maps it rather than reading it
SWEEP_FROM = 1 << 20  # bytes of a file from which its writer looks for temporary files left behind
STALE_SECONDS = 600  # untouched this long, a temporary file is a killed writer's


def load(path: Path) -> object:
    """What the marshal file at *path* holds; None when it is absent or unreadable. Waits for this
    process's writes of it (save_behind, later) and for another's left to a child (detach)."""
    if any(path in paths for _, paths in _later):
        _run_later()
    if path in _pending:
        wait()
    if not _in_child:
        wait_detached(path.parent)
    try:
        # loads of the bytes: marshal.load on a file reads piecemeal through Python calls (5x slower).
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size < MAP_FROM:
                return marshal.loads(handle.read())
            # Read where it lies, not copied first (the 31 MiB listing of 100,000 runs: 15 ms less).
            # A writer renames a new file over it: the mapped one stays whole until it is closed.
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return marshal.loads(mapped)
    except (OSError, EOFError, ValueError, TypeError):
        return None


def shared(values: list[Any]) -> list[Any]:
    """*values* with each value that repeats as one object: marshal writes an object met again as a
    reference to it, and loading makes it once (a sweep's experiment, commit, durations and params
    once, not once per run: a quarter less time to load a listing of 100,000 runs). Only a column
    of one type (and None) without float zeros, whose equal values are the same value (not 0.0 and
    -0.0, nor 1, 1.0 and True); any other as it is."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if len(kinds) != 1 or not kinds <= {str, int, float} or (float in kinds and 0.0 in values):
        return values
    memo: dict[Any, Any] = {}
    return list(map(memo.setdefault, values, values))


def save(path: Path, data: Any) -> bool:
    """Write *data* to *path* with marshal, replacing the file at once; False when it could not be
    written (a read-only repository) or holds what marshal cannot store."""
    try:
        content = marshal.dumps(data)
    except ValueError:
        return False
    return _write(path, content)


def _write(path: Path, content: bytes) -> bool:
    # One temporary file per process and thread: two writers never write into the same one.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(content) >= SWEEP_FROM:
            _sweep(path)
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a folder that is not writable holds no such file
            tmp.unlink(missing_ok=True)
        return False
    return True


def _sweep(path: Path) -> None:
    """Remove the temporary files of *path* that a writer killed mid-write left: tens of MiB each
    for the listing's caches. One a live writer is writing was touched moments ago."""
    now = time.time()
    for old in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):  # (gone meanwhile: its writer finished)
            if now - old.stat().st_mtime > STALE_SECONDS:
                old.unlink()


# -- writing behind ---------------------------------------------------------------------------------
#
# Writing the listing's caches after a first listing of 100,000 runs (150 MiB) took 1 to 3 s, most
# of it waiting for the disk, while the table that follows took as long to make. Once
# write_behind() is called, save_behind() hands the bytes to one writer thread, which writes them
# while the caller goes on; the process waits for it at exit (`git exp` in exit_now, through
# finish()). Only `git exp` turns it on: it ends its own process. A library caller may be a
# multiprocessing worker, which ends with os._exit and no exit callbacks: its caches would be lost
# for every worker after it, so there save_behind() writes at once, as save() does.

_lock = threading.Lock()
_jobs: collections.deque[tuple[list[tuple[Path, bytes]], Callable[[], object] | None]] = collections.deque()
_writer: threading.Thread | None = None  # the thread writing _jobs, while there are any
_last: threading.Thread | None = None  # the thread started last: wait() joins it
_pending: dict[Path, int] = {}  # path -> jobs holding it not done yet
_closed = False  # wait() ran at exit: no writer would be waited for any more
_behind = False  # write_behind() was called


def write_behind(on: bool = True) -> None:
    """Have save_behind() write on the writer thread (*on*) or at once (the default)."""
    global _behind
    _behind = on


def save_behind(files: Sequence[tuple[Path, Any]], then: Callable[[], object] | None = None) -> bool:
    """save() each (path, data) of *files* in turn, stopping at the first that cannot be written;
    then call *then*, when every one was. After write_behind(), on gitexp's writer thread: the data
    is turned into bytes now (what the caller changes afterwards is not written), and load() of one
    of these paths waits for them. False, writing nothing, when marshal cannot store some data."""
    global _writer, _last
    try:
        contents = [(path, marshal.dumps(data)) for path, data in files]
    except ValueError:
        return False
    with _lock:
        if _behind and not _closed:
            for path, _ in contents:
                _pending[path] = _pending.get(path, 0) + 1
            _jobs.append((contents, then))
            if _writer is None or not _writer.is_alive():  # (none, or one ended by what it ran)
                _writer = _last = threads.start(_drain, name="gitexp-cache-writer")
            return True
    _run(contents, then)
    return True


def _run(contents: list[tuple[Path, bytes]], then: Callable[[], object] | None) -> None:
    if all(_write(path, content) for path, content in contents) and then is not None:
        then()


def _drain() -> None:
    global _writer
    while True:
        with _lock:
            if not _jobs:
                _writer = None
                return
            contents, then = _jobs[0]
        try:
            _run(contents, then)
        except Exception:  # (a cache that cannot be written costs time, never the caller's work)
            pass
        finally:
            with _lock:
                _jobs.popleft()
                for path, _ in contents:
                    _pending[path] -= 1
                    if not _pending[path]:
                        del _pending[path]


def wait() -> None:
    """Return once every file handed to save_behind() is written (or could not be)."""
    global _writer, _last
    while True:
        with _lock:
            thread, busy = _last, bool(_jobs)
            if busy and (thread is None or not thread.is_alive()):
                # Its writer is gone with jobs left (ended by the interpreter's teardown, or by a
                # *then* that raised SystemExit): joining it again would spin; a new writer takes
                # them on, from the one it was on.
                _writer = _last = thread = threads.start(_drain, name="gitexp-cache-writer")
        if thread is threading.current_thread():
            return  # (a *then* that reads a cache: its own job's files are written)
        if thread is not None:
            # Also once the jobs are done: a writer still in its last steps counts as running, and
            # keeps `git exp` from ending its process at once.
            thread.join()
        if not busy:
            return


def finish() -> None:
    """What `git exp` calls before it ends its process without Python's teardown: wait(), the jobs
    left for later handed to a child process (detach), with no more waiting at exit, and any later
    save_behind() written at once."""
    atexit.unregister(_wait_at_exit)
    _wait_at_exit()


def _wait_at_exit() -> None:
    global _closed
    try:
        wait()
        # (Also where `git exp` ends through Python's exit, as `git exp ls | head` does: only
        # `git exp` leaves jobs for later, and its process is ending.)
        if _later and not _detach():
            _run_later()
    except KeyboardInterrupt:  # Ctrl-C at exit: leave the cache unwritten (its temporary file is swept later)
        pass
    with _lock:
        _closed = True


# -- left to a child at exit ------------------------------------------------------------------------
#
# A first listing of 100,000 runs spent 1.2 s of its 6 s making the caches the next command reads
# (the run cache's 100,000 entries, the kept listing, the run index) out of what it had read. As git
# leaves `gc --auto` to a process of its own, `git exp` hands that work, where it covers DETACH_FROM
# runs or more, to a child process started as it exits: the table is out and the prompt back at
# once. The child holds an exclusive lock on `<cache folder>.writing` until its files are written,
# and load() in any process waits for it: the next command finds them written, not half of them.

DETACH_FROM = 10_000  # runs a job covers from which `git exp` leaves it to a child (forking costs ~30 ms)
WAIT_SECONDS = 120.0  # longest load() waits for a child's files (one that hangs: read without them)
_later: list[tuple[Callable[[], object], frozenset[Path]]] = []  # (job, the files it writes), in order
_in_child = False  # this process is the child doing _later's jobs: it holds the locks it would wait for


def later(job: Callable[[], object], paths: Sequence[Path], weight: int) -> None:
    """Run *job*, which writes the cache files *paths* (through save_behind), now; or, after
    write_behind() where *weight* (the runs it covers) is DETACH_FROM or more, later: in a child
    process as `git exp` exits, or in this one before a load() of one of *paths*. A job so left runs
    with what its objects hold then: hand it objects that nothing changes meanwhile."""
    if not _behind or _closed or _in_child or weight < DETACH_FROM or not hasattr(os, "fork"):
        job()
        return
    _later.append((job, frozenset(paths)))


def _run_later() -> None:
    while _later:
        job, _ = _later.pop(0)
        try:
            job()
        except Exception:  # (a cache that cannot be written costs time, never the caller's work)
            pass


def _writing_lock(folder: Path) -> Path:
    return folder.with_name(folder.name + ".writing")


def wait_detached(folder: Path, timeout: float = WAIT_SECONDS) -> None:
    """Return once no child left with jobs (detach) writes the cache files in *folder*, or after *timeout* s."""
    try:
        fd = os.open(_writing_lock(folder), os.O_RDONLY)
    except OSError:
        return  # (no child ever wrote there: the usual case, one failed open)
    try:
        _lock_within(fd, fcntl.LOCK_SH, timeout)
    finally:
        os.close(fd)


def _lock_within(fd: int, kind: int, timeout: float) -> bool:
    """Take the flock *kind* on *fd*, waiting up to *timeout* s; whether it was taken."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)  # (polled, so a hung writer cannot hold every reader for ever)
            pause = min(pause * 2, 0.05)
        except OSError:
            return False


def _detach() -> bool:
    """Run _later's jobs in a child process of their own, with no tie to this one's terminal or
    pipes, holding the writing locks of their folders until they are done; False, running nothing,
    where it cannot be started (the caller runs them)."""
    global _in_child, _behind
    locks: list[int] = []
    try:
        for folder in sorted({path.parent for _, paths in _later for path in paths}):
            folder.parent.mkdir(parents=True, exist_ok=True)
            locks.append(os.open(_writing_lock(folder), os.O_RDWR | os.O_CREAT, 0o644))
            if not _lock_within(locks[-1], fcntl.LOCK_EX, 0):
                # Another child writes there: this process writes its own files itself, rather than
                # wait at exit (each file is replaced whole, whichever writer comes last).
                raise OSError("the cache's writing lock is held")
        sys.stdout.flush()
        sys.stderr.flush()
        _in_child = True  # (for _after_fork, in both: the parent only ends from here)
        child = os.fork()
    except (OSError, ValueError):
        _in_child = False
        for fd in locks:
            os.close(fd)
        return False
    if child:
        _in_child = False
        for fd in locks:
            os.close(fd)  # (the child's copies hold the locks now)
        return True
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _behind = False  # (its save_behind() writes at once)
        _run_later()
    finally:
        os._exit(0)


def _after_fork() -> None:
    # The writer thread is not in the child, and the lock may have been held when it forked.
    global _lock, _writer, _last
    _lock = threading.Lock()
    _jobs.clear()
    _pending.clear()
    _writer = _last = None
    if not _in_child:  # (a fork of the caller's own, not detach's: the jobs are the parent's to do)
        _later.clear()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_wait_at_exit)
