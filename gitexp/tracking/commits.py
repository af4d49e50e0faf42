"""The commits of a live run on its ref: the RUNNING commit, checkpoints and the final commit.

A Run (gitexp/tracking/liverun.py) journals what is logged; this is how that state becomes
commits: when, on top of what, and what a commit that fails leaves to try again.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import NamedTuple

from gitexp.git.repo import RefConflictError, Repo
from gitexp.store import codec as fmt
from gitexp.store import writer as store
from gitexp.store.background import worker
from gitexp.store.state import RunState


class FirstCommit(NamedTuple):
    """A new run's RUNNING commit, staged but not yet on the ref: the background thread writes it at
    the first flush, or the final commit carries it (one pack, one ref update), so a short run costs
    one commit's I/O instead of two."""

    state: RunState  # the run as it started
    commit: str  # its staged commit, which the journal's info names as its base
    objects: dict[str, tuple[int, bytes]]  # its objects, from the starting thread's staging area


class RunCommits:
    """Puts one run's state on its ref. The caller holds the run's lock, so that the state does not
    change while a commit reads it; a failure raises GitexpError or OSError and changes nothing."""

    def __init__(self, repo: Repo, ref: str, output: Path, tip: str | None, first: FirstCommit | None,
                 checkpoint_interval: float) -> None:
        self.repo = repo
        self.ref = ref
        self.output = output  # the captured output of `git exp run`, committed as output.log
        self.tip = tip
        self.first = first
        self.interval = checkpoint_interval
        self.last = time.monotonic()  # when the last commit was made (or tried)

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.interval

    def write_first(self) -> None:
        """Put the RUNNING commit on the ref, if it is not there yet."""
        if self.first is not None:
            self.repo.restage(self.first.objects)
            self.tip = store.put_first(self.repo, self.first.state, self.first.commit)
            self.first = None

    def commit(self, state: RunState) -> None:
        """Commit *state* on the ref, with the RUNNING commit under it if that is not written yet."""
        started = time.monotonic()
        try:
            files = store.output_log_entry(self.repo, self.output)
            first = self.first.commit if self.first is not None else None
            if self.first is not None:
                self.repo.restage(self.first.objects)
            try:
                self.tip = store.commit_state(self.repo, state, self.tip, files=files, first=first)
            except RefConflictError:
                # Someone moved our ref (e.g. `git exp rm`): build on what is there now.
                self.tip = self.repo.ref(self.ref)
                self.tip = store.commit_state(self.repo, state, self.tip, files=files,
                                              first=first if self.tip is None else None)
            self.first = None
            for series in state.metrics.values():  # its chunks are on the ref: memory holds the rest only
                series.release_committed()
        finally:
            # A checkpoint of a huge run costs more: never spend more than 2% of the time on them.
            self.interval = max(self.interval, (time.monotonic() - started) * 50)
            self.last = time.monotonic()


def add_note(repo: Repo, state: RunState) -> None:
    """Queue the ended run's line in refs/notes/experiments (written within notes.NOTE_DELAY, with the
    lines of other runs ending meanwhile); derived data, so a failure only warns."""
    try:
        if repo.config_bool("exp.notes", True):
            from gitexp.store import notes

            notes.queue_run_note(repo, state.meta, fmt.summaries(state))
            worker.add_chore(notes.flush_due)
    except Exception as exc:
        warnings.warn(f"gitexp: run {state.id} is saved, but its note in refs/notes/experiments was not written "
                      f"({exc}); `git exp notes rebuild` writes it", RuntimeWarning, stacklevel=4)
