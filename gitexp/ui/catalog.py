"""The runs the UI shows: load_runs' records, kept for a moment and shared by the requests of that moment.

Every answer of the server starts from one snapshot of the repository's runs, read by the library's
own load_runs with its listing cache and live values, as `git exp ls` reads them. A snapshot is
reused for SNAPSHOT_TTL seconds: a page asking for the table, the curves and the compare view at once
reads the runs once, and a live run's new values still reach the page within about a second. Past
that, while no run is live on this machine and the run refs are the ones it was read from (the stat
of packed-refs and the loose refs, as `git exp ls` tells them: gitfiles.refs_state), it is reused
too: at 100,000 runs, reading them again (and the table's columns, kept per snapshot) took a page's
every refresh 2 s.

The UI is read-only: load_runs runs without recovering crashed runs (which would write commits),
and nothing here writes to the repository. load_runs and the history reader keep their caches under
the git directory (gitexp/cache/), as `git exp ls` does; those are no part of the repository's refs
or objects and deleting them is always safe.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from gitexp.errors import RunNotFoundError
from gitexp.git.gitfiles import refs_state
from gitexp.git.lazyrepo import open_repository
from gitexp.store import search
from gitexp.store.names import REF_PREFIX
from gitexp.store.runs import RunRecord, live_here, load_runs
from gitexp.views.table import run_short_ids

SNAPSHOT_TTL = 1.0  # seconds a snapshot of the runs answers requests
_serials = itertools.count()


class Snapshot:
    """The runs at one moment, newest first, with what every request asks of them."""

    def __init__(self, records: list[RunRecord], state: object | None = None) -> None:
        self.records = records
        self.state = state  # Catalog._state() as the records were read (taken before them)
        self.serial = next(_serials)  # names this snapshot in caches (an id() is reused once it is freed)
        self.taken = time.monotonic()
        self.by_id = {r.id: r for r in records}
        self._handles: dict[str, str] | None = None
        self._lock = threading.Lock()

    @property
    def handles(self) -> dict[str, str]:
        """Run id -> the short id `git exp ls` shows (computed once per snapshot: 10,000 runs cost 30 ms)."""
        with self._lock:
            if self._handles is None:
                self._handles = run_short_ids(self.records)
            return self._handles

    def experiments(self) -> list[str]:
        return sorted({r.experiment for r in self.records})

    def select(self, experiment: str | None = None, where: str | None = None,
               sort: str | None = None) -> list[RunRecord]:
        """The runs of *experiment* (all when None) matching *where*, sorted by *sort* (as --where and
        --sort read them; QueryError when either does not parse)."""
        records: Sequence[RunRecord] = self.records
        if experiment:
            records = [r for r in records if r.experiment == experiment]
        if where and where.strip():
            records = search.filter_runs(records, where)
        if sort and sort.strip():
            records = search.sort_runs(records, sort)
        return list(records)

    def run(self, run_id: str) -> RunRecord:
        """The run with id *run_id* exactly: a page's address names one run for good, never by a prefix."""
        record = self.by_id.get(run_id)
        if record is None:
            raise RunNotFoundError(f"no run has the id {run_id!r} in this repository; it may have been removed, "
                                   "or not fetched here yet (`git exp pull`)")
        return record

    def runs(self, ids: Sequence[str]) -> list[RunRecord]:
        """The runs named by *ids*, in that order; unknown ids are left out (removed meanwhile)."""
        return [self.by_id[i] for i in dict.fromkeys(ids) if i in self.by_id]


class Catalog:
    """The repository the UI serves, and its latest snapshot of runs."""

    def __init__(self, repo: str | os.PathLike[str] | None = None, ttl: float = SNAPSHOT_TTL) -> None:
        self.repo = open_repository(repo)
        self.ttl = ttl
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        with self._lock:
            current = self._snapshot
            if current is None or time.monotonic() - current.taken > self.ttl:
                state = self._state()
                if current is None or state is None or state != current.state:
                    current = self._snapshot = Snapshot(list(load_runs(self.repo, recover=False)), state)
                else:
                    current.taken = time.monotonic()
            return current

    def _state(self) -> object | None:
        """What tells that the runs are as a snapshot read them; None when only reading them tells:
        a run live here (its journal changes), or refs whose state cannot be told from their files."""
        if live_here(self.repo):
            return None
        return refs_state(self.repo.gitdir, self.repo.commondir, REF_PREFIX)


def plain(value: Any) -> Any:
    """*value* as JSON can hold it: NaN and infinities (which JSON lacks) become the text Python prints."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def is_live(record: RunRecord) -> bool:
    """Whether *record* is a run live on this machine now (its journal's owner lives): its values
    reach the page from the journal, every second, not only at its checkpoints."""
    from gitexp.ops.logs import is_live_here

    return record.status == "RUNNING" and is_live_here(record)
