"""Crash safety: every logged value is appended to a journal in the git directory.

A live run has, in `<common git dir>/gitexp/journal/`, the file `<run-id>.lock`: it holds
JSON info (id, experiment, host, pid, the run's first commit once known as "base", and the
run as it started as "initial", for a run that dies before its first commit is written)
and is flock-ed by the owning
process for as long as it lives, so a free lock means the owner is dead, even after kill -9.
Each writing process appends records to its own segment `<run-id>.<pid>.log` (created on
first write; `git exp run` and the script it runs, attached to the same run, each have one),
and `git exp run` captures the command's output in `<run-id>.output`. Files, not folders:
creating and removing folders costs several times more on common file systems. A record
is one line:

    M<TAB>step<TAB>time<TAB>value<TAB>key    a metric value
    P<TAB>json                               params (merged)
    T<TAB>json                               tags (merged)
    S<TAB>json                               meta fields (status, end, error...)
    E<TAB>json                               the captured environment
    I<TAB>json                               inputs (merged)
    A<TAB>json                               artifacts: {path: [blob oid, mode]} (merged)
    F<TAB>{}                                 the owner wrote all it had, status last, and gave up
                                             committing: its status stands (else CRASHED)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gitexp.git.entry import Entry
from gitexp.store.state import RunState

JOURNAL_DIR = Path("gitexp") / "journal"


class PartialWriteError(OSError):
    """An append that failed part-way and could not be cut back: *remainder* was not written."""

    def __init__(self, cause: OSError, remainder: str) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.remainder = remainder
SPARE_PREFIX = "spare."


def journal_root(commondir: Path) -> Path:
    return commondir / JOURNAL_DIR


def metric_line(key: str, step: int, time_: float, value: float) -> str:
    return f"M\t{step}\t{time_!r}\t{value!r}\t{key}\n"


def record_line(kind: str, payload: Any) -> str:
    return f"{kind}\t{json.dumps(payload, sort_keys=True, default=str)}\n"


def apply(state: RunState, lines: Iterable[str]) -> None:
    """Replay journal lines onto *state*; a torn last line (crash mid-write) is ignored, and so is a
    record of the wrong shape (live.py reads journals while they are written)."""
    for line in lines:
        if not line.endswith("\n"):
            break
        kind, _, rest = line.rstrip("\n").partition("\t")
        try:
            if kind == "M":
                step, time_, value, key = rest.split("\t", 3)
                state.add_metric(key, int(step), float(time_), float(value))
                continue
            payload = json.loads(rest)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        if kind == "P":
            state.params = _deep(state.params, payload)
        elif kind == "T":
            state.set_tags(payload)
        elif kind == "S":
            state.update_meta(payload)
        elif kind == "E":
            state.env = payload
        elif kind == "I":
            state.inputs.update(payload)
        elif kind == "A":
            for path, value in payload.items():
                if isinstance(value, list) and len(value) == 2 and type(value[1]) is int:
                    state.artifacts[path] = Entry(str(value[0]), value[1])


COMPLETE = "F\t{}\n"


def is_complete(lines: list[str]) -> bool:
    """Whether a segment ends with the owner's F record (see the module docstring)."""
    return bool(lines) and lines[-1] == COMPLETE


def initial_info(state: RunState, extra_parents: tuple[str, ...]) -> dict[str, Any]:
    """The lock's copy of a run as it started, so a run that dies before its first commit
    reaches the disk is still recovered (its code snapshot objects are written at start)."""
    return {"meta": state.meta, "params": state.params, "parents": list(extra_parents),
            "files": {path: [entry.oid, entry.mode] for path, entry in state.files.items()}}


def initial_state(info: dict[str, Any]) -> tuple[RunState, tuple[str, ...]]:
    """initial_info read back: the RunState of the run's first commit and its extra parents."""
    files = {str(path): Entry(str(value[0]), int(value[1])) for path, value in info.get("files", {}).items()}
    state = RunState(meta=dict(info["meta"]), params=dict(info.get("params") or {}), files=files)
    return state, tuple(str(p) for p in info.get("parents", []))


def _deep(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in new.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = _deep(merged[key], value)
        else:
            merged[key] = value
    return merged


class Journal:
    """One process's segment of a run's journal (and, for the owner, the run's lock)."""

    def __init__(self, root: Path, run_id: str, owner: bool) -> None:
        self.root = root
        self.run_id = run_id
        self.owner = owner
        self.segment = root / f"{run_id}.{os.getpid()}.log"
        self.output = root / f"{run_id}.output"
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self.info: dict[str, Any] = {}
        self._offsets: dict[Path, int] = {self.segment: -1}
        self._size = 0  # of this process's segment, as far as it wrote it

    @classmethod
    def create(cls, commondir: Path, run_id: str, info: dict[str, Any]) -> Journal:
        root = journal_root(commondir)
        journal = cls(root, run_id, owner=True)
        lock = root / f"{run_id}.lock"
        fd = _take_spare(root, lock)
        if fd is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
            try:
                fd = os.open(lock, flags, 0o644)
            except FileNotFoundError:  # the first run of this repository
                root.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, flags, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        journal._lock_fd = fd
        journal.write_info({**info, "host": socket.gethostname(), "pid": os.getpid()})
        return journal

    def write_info(self, info: dict[str, Any]) -> None:
        assert self._lock_fd is not None
        data = json.dumps(info, default=str).encode()
        # Overwrite, then cut: info only grows, so a crash in between leaves the old info whole.
        os.pwrite(self._lock_fd, data, 0)
        os.ftruncate(self._lock_fd, len(data))
        self.info = info

    @classmethod
    def attach(cls, commondir: Path, run_id: str) -> Journal:
        return cls(journal_root(commondir), run_id, owner=False)

    def exists(self) -> bool:
        return (self.root / f"{self.run_id}.lock").exists()

    def is_open(self) -> bool:
        """Whether this process has written to its segment already."""
        return self._fd is not None

    def append(self, text: str) -> None:
        """Append whole records, or nothing: a write that fails part-way (the disk filled up) is cut
        back off, so the caller retries all of *text* without a record written twice or a torn
        line run into the next record. Raises PartialWriteError when even that failed."""
        if self._fd is None:
            self._fd = os.open(self.segment, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = os.fstat(self._fd).st_size
        data = text.encode(errors="surrogateescape")
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            if done:
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    self._size += done
                    raise PartialWriteError(exc, data[done:].decode(errors="surrogateescape")) from exc
            raise
        self._size += done

    def read_others(self) -> list[str]:
        """Complete lines that other processes appended to their segments since the last call."""
        lines: list[str] = []
        for path in segment_paths(self.root, self.run_id):
            start = self._offsets.setdefault(path, 0)
            if start < 0:
                continue
            with open(path, "rb") as handle:
                handle.seek(start)
                data = handle.read()
            end = data.rfind(b"\n") + 1
            if end:
                self._offsets[path] = start + end
                lines.extend(data[:end].decode().splitlines(keepends=True))
        return lines

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None

    def remove(self) -> None:
        """Delete this run's journal files; the lock goes last, so a crash here leaves it recoverable."""
        lock_fd, self._lock_fd = self._lock_fd, None
        remove_files(self.root, self.run_id, lock_fd)
        self.close()


# The lock of a run that ended is emptied and kept, still flock-ed, as this process's spare
# (`spare.<pid>.lock`): its next run renames it instead of creating a file, which costs several
# times more (0.2-0.7 ms here). Readers skip spares; a dead process's spare is removed by the
# next recovery scan, a living one at exit.
_spares: dict[Path, tuple[int, int]] = {}  # journal folder -> (pid, descriptor)
_spares_lock = threading.Lock()


_keeping = True  # off in a forked child: it may end with os._exit, and leave its spare behind


def _spares_after_fork() -> None:
    global _spares_lock, _keeping
    _spares_lock = threading.Lock()  # a parent's thread may have held it; its spares are told apart by pid
    _keeping = False


os.register_at_fork(after_in_child=_spares_after_fork)


def _spare_path(root: Path) -> Path:
    return root / f"{SPARE_PREFIX}{os.getpid()}.lock"


def _take_spare(root: Path, lock: Path) -> int | None:
    with _spares_lock:
        pid, fd = _spares.pop(root, (None, None))
    if fd is None:
        return None
    if pid != os.getpid():
        os.close(fd)  # inherited through fork: the lock is the parent's, and so is the name
        return None
    try:
        os.rename(_spare_path(root), lock)
    except OSError:
        os.close(fd)
        return None
    return fd


def _keep_spare(root: Path, lock: Path, fd: int) -> bool:
    with _spares_lock:
        if root in _spares or not _keeping:
            return False
        try:
            os.ftruncate(fd, 0)
            os.rename(lock, _spare_path(root))
        except OSError:
            return False
        _spares[root] = (os.getpid(), fd)
    return True


def release_spares() -> None:
    """Remove this process's spare locks (at exit)."""
    with _spares_lock:
        spares = list(_spares.items())
        _spares.clear()
    for root, (pid, fd) in spares:
        if pid == os.getpid():
            _spare_path(root).unlink(missing_ok=True)
        os.close(fd)


def segment_paths(root: Path, run_id: str) -> list[Path]:
    """`<run-id>.<pid>.log` files, sorted (a plain listing: glob compiles a pattern per call)."""
    prefix = f"{run_id}."
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return [root / n for n in sorted(n for n in names if n.startswith(prefix) and n.endswith(".log"))]


def remove_files(root: Path, run_id: str, lock_fd: int | None = None) -> None:
    """Delete a run's journal; its lock goes last, or, held by this process (*lock_fd*), becomes
    the process's spare (the descriptor is then kept, else closed)."""
    for path in (*segment_paths(root, run_id), root / f"{run_id}.output"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    lock = root / f"{run_id}.lock"
    if lock_fd is None or not _keep_spare(root, lock, lock_fd):
        lock.unlink(missing_ok=True)
        if lock_fd is not None:
            os.close(lock_fd)


def take_lock(lock: Path) -> int | None:
    """A descriptor holding *lock* if its owner is gone (the caller closes it), else None."""
    try:
        fd = os.open(lock, os.O_RDONLY)  # flock needs no write access, and a reader may have none
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def segments(root: Path, run_id: str, owner_pid: int | None) -> list[Path]:
    """Segments in replay order: the owner's first."""
    paths = segment_paths(root, run_id)
    return sorted(paths, key=lambda p: (p.name != f"{run_id}.{owner_pid}.log", p.name))


def orphans(commondir: Path) -> list[tuple[str, dict[str, Any], int]]:
    """Runs on this host whose owner died: (run id, info, held lock descriptor)."""
    root = journal_root(commondir)
    try:
        locks = [p for p in root.iterdir() if p.suffix == ".lock"]
    except FileNotFoundError:
        return []
    if not os.access(root, os.W_OK):
        return []  # a user who may only read the repository lists the runs as they are; a writer recovers
    found = []
    host = socket.gethostname()
    for lock in locks:
        fd = take_lock(lock)
        if fd is None:
            continue
        if lock.name.startswith(SPARE_PREFIX):  # a dead process's spare: nothing in it
            lock.unlink(missing_ok=True)
            os.close(fd)
            continue
        try:
            info = json.loads(os.pread(fd, 1 << 20, 0) or b"{}")
        except ValueError:
            info = {}
        if not info and time.time() - os.fstat(fd).st_mtime < 60:
            os.close(fd)  # an owner between creating its lock and taking it: not dead, just starting
            continue
        if info.get("host", host) != host:
            os.close(fd)  # another machine's run in a shared git directory: not ours to judge
            continue
        found.append((lock.stem, info, fd))
    return found
