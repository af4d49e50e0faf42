"""How a live run's data reaches the journal and its ref: the buffer of metric values, the pending
journal lines, flushes, checkpoints and the final commit.

Recorder is the base of Run (gitexp/tracking/liverun.py), which adds the logging API on top;
gitexp/tracking/commits.py makes the commits. Journaling comes first: what is in the journal
survives a crash, and `git exp recover` commits it (docs/format.md).
"""

from __future__ import annotations

import collections
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from gitexp import threads
from gitexp.errors import GitexpError
from gitexp.git import maintenance
from gitexp.git.repo import Repo
from gitexp.store import journal
from gitexp.store import writer as store
from gitexp.store.histories import from_columns, read_history
from gitexp.store.state import RunState, Series
from gitexp.tracking import env as env_mod
from gitexp.tracking.commits import FirstCommit, RunCommits, add_note
from gitexp.tracking.settings import RunSettings

# An ending run with more values than this not yet journaled journals them before its final commit,
# which then takes long enough for a kill to land in it.
JOURNAL_FIRST = 10_000


class Recorder:
    """The persistence of one live run; the flusher thread (gitexp/store/background.py) calls tick()."""

    def __init__(self, repo: Repo, state: RunState, owner: bool, journal_: journal.Journal, settings: RunSettings,
                 tip: str | None, first: FirstCommit | None) -> None:
        self.repo = repo
        self.state = state
        self.owner = owner  # False: a process attached to the run of a `git exp run`, which journals only
        self.ended = False
        self._journal = journal_
        self._settings = settings
        self._commits = RunCommits(repo, store.run_ref(state.meta["experiment"], state.id), journal_.output, tip,
                                   first, settings["checkpoint_interval"])
        self._buf: collections.deque[tuple[str, int, float, float]] = collections.deque()  # (key, step, time, value)
        self._lock = threading.Lock()  # guards the state, the pending journal lines and commits
        self._flush_lock = threading.Lock()  # one flush at a time: the flusher thread or end()
        self._pending: list[str] = []
        self._warned: set[str] = set()
        self.flush_interval = float(settings["flush_interval"])
        self.next_flush = time.monotonic() + self.flush_interval

    @property
    def output_log(self) -> Path:
        """The file `git exp run` appends its command's output to; committed as output.log."""
        return self._journal.output

    def tick(self, now: float) -> None:
        """Called by the shared background thread; flushes when this run's interval is due."""
        if now < self.next_flush or self.ended:
            return
        self.next_flush = now + self.flush_interval
        try:
            self._flush(checkpoint=True)
        except Exception as exc:  # the background thread serves every run: never let one kill it
            self._warn_once("flushing", exc)

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(f"gitexp: run {self.state.id}: {what} failed ({exc}); the data is kept in memory "
                          "and will be written on the next attempt", RuntimeWarning, stacklevel=2)

    def flush_journal(self) -> None:
        """Journal what was logged and bring run.state up to date: the values still buffered, and for
        the owner what processes attached to the run journaled. Commits nothing."""
        self._flush(checkpoint=False)

    def history(self, key: str) -> Series | None:
        """Metric *key* as logged so far (None: never logged): the rows committed chunks hold, read
        back, then those in memory."""
        self.flush_journal()
        with self._lock:
            series = self.state.metrics.get(key)
            if series is None:
                return None
            steps, times, values = list(series.steps), list(series.times), list(series.values)
            released, tip = series.released, self._commits.tip
        if released and tip is not None:
            base = read_history(self.repo, tip, key)
            steps, times, values = ([*base.steps[:released], *steps], [*base.times[:released], *times],
                                    [*base.values[:released], *values])
        return from_columns(steps, times, values)

    def _flush(self, checkpoint: bool, to_journal: bool = True) -> None:
        """Move buffered values into the state and the journal; commit a checkpoint when due."""
        with self._flush_lock:
            if checkpoint and self.ended:
                # A tick that began as end() was called: end() wrote the final commit, and the Repo
                # may serve the next run by now.
                return
            self._flush_locked(checkpoint, to_journal)

    def _drain(self) -> None:
        """Move the buffered values into the state and the pending journal text (flush lock held)."""
        buf, lines = self._buf, []
        add = self.state.add_metric
        for _ in range(len(buf)):
            key, step, stamp, value = buf.popleft()
            add(key, step, stamp, value)
            lines.append(journal.metric_line(key, step, stamp, value))
        with self._lock:
            self._pending.extend(lines)

    def _flush_locked(self, checkpoint: bool, to_journal: bool) -> None:
        self._drain()
        with self._lock:
            text, self._pending = "".join(self._pending), []
            if not to_journal:
                self._pending.insert(0, text)
                text = ""
        if text:
            try:
                self._journal.append(text)
            except OSError as exc:
                with self._lock:
                    self._pending.insert(0, getattr(exc, "remainder", text))
                self._warn_once("writing the journal", exc)
        if not self.owner:
            return
        try:
            journal.apply(self.state, self._journal.read_others())
            if self.state.env is None and self._settings["capture_env"] and env_mod.ready():
                self._set_env(env_mod.shared_env(self._settings["env_variables"]))
        except Exception as exc:  # a bad record from a child must not stop the run
            self._warn_once("reading attached processes' journals", exc)
        if not checkpoint:
            return
        if self._commits.due():
            self._commit()  # with the RUNNING commit under it, if that is not written yet
        elif self._commits.first is not None:
            self._write_first()

    def _set_env(self, captured: dict[str, Any]) -> None:
        self.state.env = captured
        with self._lock:
            self._pending.append(journal.record_line("E", captured))

    def checkpoint(self) -> None:
        """Commit everything logged so far now, so other processes (`git exp ls`, a push) see it.

        The background thread does this on its own every exp.checkpointInterval seconds, and
        puts a new run's RUNNING commit on its ref within exp.flushInterval of its start.
        """
        if self.ended:
            return
        if not self.owner:
            self._flush(checkpoint=False)  # the owner commits what attached processes journal
            return
        with self._flush_lock:
            self._flush_locked(checkpoint=False, to_journal=True)
            self._commit()

    def before_read(self, commondir: Path) -> None:
        """A reader in this process is about to list the runs of *commondir*: be on the ref by then."""
        if self._commits.first is not None and self.repo.commondir == commondir:
            self._write_first()

    def _write_first(self) -> None:
        try:
            with self._lock:
                self._commits.write_first()
        except (GitexpError, OSError) as exc:
            self._warn_once("writing the first commit", exc)

    def _commit(self) -> bool:
        try:
            with self._lock:
                self._commits.commit(self.state)
        except (GitexpError, OSError) as exc:
            self._warn_once("committing a checkpoint", exc)
            return False
        return True

    def _finish(self) -> None:
        # The final commit makes the tail of the journal redundant, so a short run does not write it
        # (creating the journal file would cost more than the run). A run that journals already, or
        # has many values waiting, writes them first: its final commit takes long enough to be killed in.
        with self._lock:
            waiting = len(self._pending)
        self._flush(checkpoint=False, to_journal=not self.owner or self._journal.is_open() or waiting > JOURNAL_FIRST)
        if not self.owner:
            self._journal.close()
            return
        for attempt in range(5):
            if self._commit():
                self._journal.remove()
                add_note(self.repo, self.state)
                self.repo.give_back()
                maintenance.merge_at_exit(self.repo.commondir)  # (its packs, released, merged as the process ends)
                return
            time.sleep(0.05 * 2**attempt)
        with self._lock:
            self._pending.append(journal.COMPLETE)  # after all data and the status: it stands
        self._flush(checkpoint=False)
        self._journal.close()
        self.repo.release_all()
        warnings.warn(f"gitexp: run {self.state.id} could not be committed; its journal is kept in "
                      f"{self._journal.root} and `git exp recover` will finish it", RuntimeWarning,
                      stacklevel=3)


# A SIGTERM's handler ends the runs through these locks: it must not wait for them in the thread that holds one.
threads.holds_locks(Recorder._commit, Recorder._drain, Recorder._finish, Recorder._flush, Recorder._flush_locked,
                    Recorder._set_env, Recorder._write_first, Recorder.checkpoint, Recorder.history)
