"""New files of a run made from empty files made ahead, off the path of the run.

A new file costs a file system an inode: 0.1 to 0.7 ms on the ext4 gitexp's benchmarks run on
(more as a session goes on), against about 10 µs to rename or hard-link one. Each run makes four:
its pack, the pack's index, its ref (a lock renamed into place) and its reflog; they were a
third of the time to make a run there. So a process that makes new files in a repository
keeps a few empty ones ready in <git dir>/gitexp/spares/, made by a thread of its own while
the caller does other work, and open_new() moves one into place rather than make one:

- renamed where a file there may be replaced (pack.py's temporary files, unique to the process);
- hard-linked where the name must be new (a lock, a new reflog), which fails, as O_EXCL does,
  when the name is taken. Its time is set to now first: a lock is judged stale by its age.

Each process takes only its own spares (named <pid>.<n>, kept in a list that a forked child
empties), removes them at exit, and maintenance._drop_dead_files removes those of one that died.
Where hard links or renames cannot be made (another file system, none of them) the files are
made as before.
"""

from __future__ import annotations

import atexit
import errno
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable

from gitexp import threads

FOLDER = os.path.join("gitexp", "spares")
FIRST, MOST = 4, 32  # spares kept ready in a folder at first, and at most
_FLAGS = os.O_WRONLY | os.O_CLOEXEC

_pools: dict[str, list[str]] = {}  # spares folder -> spares ready (list.pop and list.append: no lock to hold)
_asked: set[str] = set()  # folders whose first new file was made plainly: spares from the second on
_wanted_size: dict[str, int] = {}  # folder -> spares kept ready there (FIRST, doubled when run dry)
_filling: set[str] = set()  # folders a filler thread is making spares in
_off: set[str] = set()  # folders where spares cannot be made or moved
_numbers = itertools.count(1)
_CANNOT_MOVE = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
_closed = False
_wanted: queue.SimpleQueue[str] = queue.SimpleQueue()  # folders the filler is asked to make spares in
_filler: threading.Thread | None = None


def open_new(commondir: str, path: str, replace: bool = False) -> int:
    """os.open(*path*, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666): a new empty file, opened
    for writing; with *replace*, one that takes the place of any file at *path* (where O_TRUNC
    would empty it). Raises what that call raises (FileExistsError, FileNotFoundError for a
    missing folder)."""
    folder = os.path.join(commondir, FOLDER)
    spare = _take(folder)
    if spare is not None:
        try:
            os.utime(spare)
            if replace:
                os.replace(spare, path)
            else:
                os.link(spare, path)
        except FileExistsError:
            _pools[folder].append(spare)  # still a spare
            raise
        except FileNotFoundError:
            if not os.path.exists(spare):  # removed by a clean-up that took this process for dead
                return open_new(commondir, path, replace)
            _pools[folder].append(spare)
            raise  # *path*'s folder is missing: the caller makes it
        except OSError as exc:
            if exc.errno in _CANNOT_MOVE:  # another file system, or no hard links on this one
                _off.add(folder)  # (files made plainly from now on)
                _unlink(spare)
            else:  # (a folder in the way, no permission: the plain call below says so)
                _pools[folder].append(spare)
        else:
            if not replace:
                _unlink(spare)
            return os.open(path, _FLAGS)
    return os.open(path, _FLAGS | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL), 0o666)


def _take(folder: str) -> str | None:
    """A spare of this process in *folder*, or None; the filler asked for more where few are left."""
    global _filler
    pool = _pools.get(folder)
    spare = None
    if pool is None:
        if folder not in _asked:
            _asked.add(folder)  # (a command that makes one file never pays for spares)
            return None
        pool = _pools[folder] = []
    else:
        try:
            spare = pool.pop()
        except IndexError:
            # Run dry: this process makes files faster than the filler makes a few ahead (a sweep,
            # about 4 a run). Twice as many kept ready from now on: 14% of a sweep's files were
            # made plainly with 8, 8% with 32; a process of one run does not make 32 for nothing.
            _wanted_size[folder] = min(MOST, 2 * _wanted_size.get(folder, FIRST))
    if len(pool) < _wanted_size.get(folder, FIRST) // 2 and folder not in _filling and folder not in _off \
            and not _closed:
        _filling.add(folder)
        # One thread for the process's life, woken through a SimpleQueue (safe in a signal
        # handler): starting a thread each time cost 0.3 ms, as much as the files it made saved.
        _wanted.put(folder)
        if _filler is None:
            _filler = threads.start(_fill, _wanted, name="gitexp-spares")
    return spare


def _fill(wanted: queue.SimpleQueue[str]) -> None:
    while True:
        folder = wanted.get()
        pool = _pools.get(folder)
        try:
            os.makedirs(folder, exist_ok=True)
            while pool is not None and len(pool) < _wanted_size.get(folder, FIRST) and not _closed and \
                    folder not in _off:
                spare = f"{folder}/{os.getpid()}.{next(_numbers)}"
                os.close(os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
                if _closed:  # (exit meanwhile: its clean-up may have been and gone)
                    _unlink(spare)
                    break
                pool.append(spare)
        except OSError:  # (the repository removed, a read-only one: files made plainly)
            _off.add(folder)
        finally:
            _filling.discard(folder)


def wait_idle(timeout: float = 10.0) -> None:
    """Return once the filler makes no spares (before a repository is removed), or after *timeout* s."""
    deadline = time.monotonic() + timeout
    while _filling and time.monotonic() < deadline:
        time.sleep(0.001)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def drop_dead(commondir: str, alive: Callable[[int], bool]) -> None:
    """Remove the spares of the processes that are not *alive* (killed before their exit)."""
    folder = os.path.join(commondir, FOLDER)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        pid = name.partition(".")[0]
        if not alive(int(pid) if pid.isdigit() else -1):
            _unlink(os.path.join(folder, name))


def remove_all() -> None:
    """Remove this process's spares (at exit)."""
    global _closed
    _closed = True
    for pool in list(_pools.values()):
        while pool:
            _unlink(pool.pop())


def _after_fork() -> None:
    global _wanted, _filler
    # The parent's spares are the parent's to take: the same file taken by both would be two files.
    _pools.clear()
    _wanted_size.clear()
    _asked.clear()
    _filling.clear()
    _wanted, _filler = queue.SimpleQueue(), None  # (the filler thread is not in the child)


os.register_at_fork(after_in_child=_after_fork)
atexit.register(remove_all)
threads.holds_locks(_take)  # (threading's own lock, to start a filler)
