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
from gitexp.store.state import FINAL_STATUSES, RunState


class FirstCommit(NamedTuple):
    """A new run's RUNNING commit, staged but not yet on the ref: the background thread writes it at
    the first flush. A run that ends before then is one commit, its final one, in the RUNNING
    commit's place: nobody could have seen it running, and its commit, tree and blobs would be
    a third of the bytes of a short run (issue 14: disk per run)."""

    state: RunState  # the run as it started
    commit: str  # its staged commit, which the journal's info names as its base
    shared: dict[str, tuple[int, bytes]]  # objects any commit of the run may name (code snapshot)
    own: dict[str, tuple[int, bytes]]  # the RUNNING commit's own: the commit, its tree and blobs
    extra_parents: tuple[str, ...]  # the run it was forked from, a parent of whichever commit is first

    def stage(self, repo: Repo) -> None:
        """Stage it, with what it names, for the next pack this thread writes."""
        repo.restage(self.shared)
        repo.restage(self.own)


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
            self.first.stage(self.repo)
            self.tip = store.put_first(self.repo, self.first.state, self.first.commit)
            self.first = None

    def commit(self, state: RunState) -> None:
        """Commit *state* on the ref: on the RUNNING commit, which goes under a checkpoint if it is
        not written yet, and which a final commit replaces then."""
        started = time.monotonic()
        try:
            files = store.output_log_entry(self.repo, self.output)
            first: str | None = None
            extra_parents: tuple[str, ...] = ()
            if self.first is not None:
                extra_parents = self.first.extra_parents
                if state.meta.get("status") in FINAL_STATUSES:
                    self.repo.restage(self.first.shared)
                else:
                    self.first.stage(self.repo)
                    first = self.first.commit
            try:
                self.tip = store.commit_state(self.repo, state, self.tip, extra_parents, files, first)
            except RefConflictError:
                # Someone moved our ref (e.g. `git exp rm`): build on what is there now.
                self.tip = self.repo.ref(self.ref)
                self.tip = store.commit_state(self.repo, state, self.tip, extra_parents, files,
                                              first if self.tip is None else None)
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
