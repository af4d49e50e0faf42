"""A run's output: output.log as its commit holds it, and, while `git exp run` writes it on this
machine, as the journal holds it now (`git exp logs`, and the output line of `git exp show`).

Every commit of a run stores as output.log the whole of `<run-id>.output` (docs/format.md), the
file `git exp run` appends the command's output to, so each committed log starts the live file and
the last one is all of it. Reading a run's output is therefore reading one growing text: from the
live file while there is one, else from the run's newest commit, at the offset read so far.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gitexp.store import codec as fmt
from gitexp.store import journal, live
from gitexp.store.runs import RunRecord
from gitexp.text import printable

POLL = 0.25  # seconds between looks at a followed run's output: about what a person notices


@dataclass(frozen=True)
class LogState:
    """What is known of a run's output now: its size in bytes (None: the run has no output.log), and
    whether the run is live on this machine (so that its output may still grow)."""

    size: int | None
    live: bool


def _paths(record: RunRecord) -> tuple[Path, Path]:
    root = journal.journal_root(record.repo.commondir)
    return root / f"{record.id}.output", root / f"{record.id}.lock"


def is_live_here(record: RunRecord) -> bool:
    """Whether the run's owner is alive on this machine: its journal lock is there and names a living
    process of this host (the lock is never taken: a run starting at that moment would fail to)."""
    _, lock = _paths(record)
    return live.owner_lives(lock)


def _committed(record: RunRecord) -> bytes | None:
    """output.log of the run's newest commit (its ref may have moved since *record* was read)."""
    tip = record.repo.ref(record.ref) or record.commit
    return record.repo.read_path(tip, fmt.OUTPUT_LOG)


def _live_from(path: Path, offset: int) -> bytes | None:
    """The bytes of the live file after *offset*; None when there is no live file."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return None


def log_state(record: RunRecord) -> LogState:
    """The size of the run's output as `git exp logs` would print it now, and whether it is live."""
    path, _ = _paths(record)
    live = is_live_here(record)
    try:
        return LogState(path.stat().st_size, live)
    except FileNotFoundError:
        pass
    data = _committed(record) if live else record.read(fmt.OUTPUT_LOG)
    return LogState(None if data is None else len(data), live)


def read_log(record: RunRecord) -> bytes | None:
    """The run's whole output so far (None when it has no output.log and none is being written)."""
    data = b"".join(follow_log(record, follow=False))
    if not data and not _paths(record)[0].exists() and _committed(record) is None:
        return None
    return data


def follow_log(record: RunRecord, follow: bool = True, poll: float = POLL,
               sleep: Callable[[float], object] = time.sleep) -> Iterator[bytes]:
    """The run's output as it grows: all of it so far, then (*follow*) what the run adds, looking
    every *poll* seconds, until the run is no longer live on this machine; then the rest.

    The liveness of the run is looked at before its output is read, so the last read, made after
    the run ended, gets what it wrote last: from the live file while a crashed run's is still
    there, else from its final commit.
    """
    path, _ = _paths(record)
    offset = 0
    while True:
        live = is_live_here(record)
        data = _live_from(path, offset)
        if data is None:  # not written here (any more): the newest commit has all there is
            data = (_committed(record) or b"")[offset:]
        if data:
            offset += len(data)
            yield data
        if not (live and follow):
            return
        sleep(poll)


class LogText:
    """A run's output (bytes, in pieces as they come) made text safe for a terminal.

    The output may be a teammate's, fetched: each control character is shown escaped by printable()
    but for newlines and tabs. A line that redraws itself with carriage returns (a progress bar) is
    shown as a terminal would leave it, the later drawings over the earlier ones; so a line is only
    given out once it is complete (or at end()).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> str:
        text = self._partial + self._decoder.decode(data)
        cut = text.rfind("\n") + 1
        self._partial = text[cut:]
        return "".join(_drawn(line) + "\n" for line in text[:cut].split("\n")[:-1])

    def end(self) -> str:
        """What is left: a last line without a newline."""
        text, self._partial = self._partial + self._decoder.decode(b"", final=True), ""
        return _drawn(text)


def _drawn(line: str) -> str:
    """*line* (no newline) as a terminal shows it: each carriage return starts drawing over it again."""
    if "\r" in line:
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part):]
        line = shown
    return printable(line, keep="\t")
