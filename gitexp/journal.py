"""Crash safety: every logged value is appended to a journal in the git directory.

A live run owns `<gitdir>/gitexp/journal/<run-id>/`, holding `run.json` (what run it is and
which commit the journal extends), `owner.lock` (flock-ed by the owning process for as long
as it lives, so a free lock means the owner is dead, even after kill -9), and one segment
`<pid>.log` per writing process (`git exp run` writes its own; the script it runs, attached
to the same run, writes another). Each segment line is one record:

    M<TAB>step<TAB>time<TAB>value<TAB>key    a metric value
    P<TAB>json                               params (merged)
    T<TAB>json                               tags (merged)
    S<TAB>json                               meta fields (status, end, error...)
    E<TAB>json                               the captured environment
    I<TAB>json                               inputs (merged)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gitexp.state import RunState

JOURNAL_DIR = Path("gitexp") / "journal"


def journal_root(commondir: Path) -> Path:
    return commondir / JOURNAL_DIR


def metric_line(key: str, step: int, time_: float, value: float) -> str:
    return f"M\t{step}\t{time_!r}\t{value!r}\t{key}\n"


def record_line(kind: str, payload: Any) -> str:
    return f"{kind}\t{json.dumps(payload, sort_keys=True, default=str)}\n"


def apply(state: RunState, lines: Iterable[str]) -> None:
    """Replay journal lines onto *state*; a torn last line (crash mid-write) is ignored."""
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


def _deep(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in new.items():
        if isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = _deep(merged[key], value)
        else:
            merged[key] = value
    return merged


class Journal:
    """One process's segment of a run's journal."""

    def __init__(self, directory: Path, owner: bool) -> None:
        self.directory = directory
        self.owner = owner
        self._lock_fd: int | None = None
        self.segment = directory / f"{os.getpid()}.log"
        self._fd = os.open(self.segment, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._offsets: dict[Path, int] = {self.segment: -1}

    @classmethod
    def create(cls, commondir: Path, run_id: str, info: dict[str, Any]) -> Journal:
        directory = journal_root(commondir) / run_id
        directory.mkdir(parents=True)
        lock_fd = os.open(directory / "owner.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        payload = {**info, "host": socket.gethostname(), "pid": os.getpid()}
        tmp = directory / "run.json.tmp"
        tmp.write_text(json.dumps(payload))
        tmp.replace(directory / "run.json")
        journal = cls(directory, owner=True)
        journal._lock_fd = lock_fd
        return journal

    @classmethod
    def attach(cls, commondir: Path, run_id: str) -> Journal:
        return cls(journal_root(commondir) / run_id, owner=False)

    def append(self, text: str) -> None:
        data = text.encode()
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def read_others(self) -> list[str]:
        """Complete lines that other processes appended to their segments since the last call."""
        lines: list[str] = []
        for path in sorted(self.directory.glob("*.log")):
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
        self._lock_fd = None

    def remove(self) -> None:
        self.close()
        self.remove_directory(self.directory)

    @staticmethod
    def remove_directory(directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)


def owner_is_dead(directory: Path) -> int | None:
    """A file descriptor holding the owner lock if its owner is gone, else None.

    The caller closes the descriptor when done; holding it keeps two recoverers apart.
    """
    try:
        fd = os.open(directory / "owner.lock", os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def read_info(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / "run.json").read_text())
    except (OSError, ValueError):
        return None


def segments(directory: Path, owner_pid: int | None) -> list[Path]:
    """Segments in replay order: the owner's first (it holds the run's initial meta)."""
    paths = sorted(directory.glob("*.log"))
    return sorted(paths, key=lambda p: (p.stem != str(owner_pid), p.name))


def orphans(commondir: Path) -> list[tuple[Path, dict[str, Any], int]]:
    """Journals on this host whose owner died: (directory, run.json, held lock fd)."""
    root = journal_root(commondir)
    if not root.is_dir():
        return []
    found = []
    host = socket.gethostname()
    for directory in root.iterdir():
        info = read_info(directory)
        if info is None:
            # A journal is written lock-first, so a stale one without run.json is debris.
            fd = owner_is_dead(directory)
            if fd is not None and time.time() - directory.stat().st_mtime > 60:
                shutil.rmtree(directory, ignore_errors=True)
            if fd is not None:
                os.close(fd)
            continue
        if info.get("host") != host:
            continue
        fd = owner_is_dead(directory)
        if fd is not None:
            found.append((directory, info, fd))
    return found
