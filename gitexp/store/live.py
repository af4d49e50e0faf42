"""Live values: the records of runs running on this machine, brought up to date from their journal.

A live run commits a checkpoint every exp.checkpointInterval (30 s), but journals what it logs
every exp.flushInterval (1 s): `<common git dir>/gitexp/journal/` holds, since the run's `base`
commit (docs/format.md, "Live runs and the journal"), every value logged. load_runs hands the
records of RUNNING runs whose journal lock is held here to live_runs(), and replaces each with a
record of the run as its journal says it is now: meta, params and tags with the journal's changes,
metric summaries and histories with the journal's values, and meta.duration the time since the
start. Nothing of it is cached or written: the listing cache (runcache) holds what commits hold.

Reading is defensive: the writer may be appending (a torn last line is left for next time), may
die meanwhile, and a journal that cannot be read as expected leaves the committed record as it is.
Only a listing that finds journal locks pays for any of this, and only for the runs they name.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitexp.store import journal
from gitexp.store.runcache import Row, Summaries, make_row
from gitexp.store.state import RunState, Series

if TYPE_CHECKING:
    from gitexp.git.reader import RepoReader

# Found: what a record's summaries hold, (meta, params, metric summaries).
Found = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]

MAX_INFO = 1 << 20  # as journal.orphans reads a lock's info


class LiveValues:
    """What a live record holds beyond its commit: the journal's metric values and the commit they extend."""

    __slots__ = ("base", "series")

    def __init__(self, base: str | None, series: dict[str, Series]) -> None:
        self.base = base  # the commit the journal extends, when it holds metric histories (a resumed run)
        self.series = series  # key -> the values journaled since then


class Held(Summaries):
    """The summaries of one live record, handed to it as the cache's are to the others."""

    def __init__(self, found: Found) -> None:
        super().__init__(Path(os.devnull))
        self._found = found

    def read(self, commit: str) -> Found | None:
        return self._found


def lock_ids(names: list[str]) -> set[str]:
    """The run ids of the journal locks among *names* (a listing of the journal folder)."""
    return {name[:-5] for name in names if name.endswith(".lock") and not name.startswith(journal.SPARE_PREFIX)}


def live_runs(records: Sequence[Any], names: list[str], commondir: Path,
              summaries: Summaries) -> Iterator[tuple[int, Found, Row | None, LiveValues]]:
    """(index, summaries, listing row, LiveValues) of each record among *records* (runs.RunRecord)
    that is RUNNING with its journal lock held on this machine: the run as its journal says it is
    now. *names*: the journal folder's listing; *summaries*: the cache's, for a resumed run's base."""
    ids = lock_ids(names)
    if not ids:
        return
    root = journal.journal_root(commondir)
    host = socket.gethostname()
    now = time.time()
    for index, record in enumerate(records):
        if record.id not in ids or record.status != "RUNNING":
            continue
        try:
            found = _live_values(record, root, names, host, now, summaries)
        except Exception:  # a journal being written, or one this code cannot read: the commit stands
            continue
        if found is not None:
            yield index, found[0], make_row(*found[0]), found[1]


def _live_info(lock: Path, host: str) -> dict[str, Any] | None:
    """The info of a lock whose owner lives on this host, else None.

    The owner is looked up by its pid rather than by taking the lock: a reader holding it even for a
    moment could make a run starting then fail to take it. A pid reused after its run died is caught
    by the recovery load_runs did before (it takes the free lock); a listing that does not recover
    may show such a run as live until one does.
    """
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        info = json.loads(os.pread(fd, MAX_INFO, 0) or b"{}")
    finally:
        os.close(fd)
    if not isinstance(info, dict) or info.get("host", host) != host or type(info.get("pid")) is not int:
        return None  # another machine's run in a shared git directory (its clock is not ours), or one starting
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # another user's process: alive
        pass
    return info


def owner_lives(lock: Path) -> bool:
    """Whether the owner of journal lock *lock* lives on this host (by its pid, never taking the lock)."""
    return _live_info(lock, socket.gethostname()) is not None


def _live_values(record: Any, root: Path, names: list[str], host: str, now: float,
                 summaries: Summaries) -> tuple[Found, LiveValues] | None:
    from gitexp.store.isotime import parse_iso

    info = _live_info(root / f"{record.id}.lock", host)
    if info is None:
        return None
    # A new run's journal starts at its first commit, which holds no metrics; a resumed run's at
    # the commit it resumed with, whose histories come before the journal's.
    if "initial" in info:
        base = None
        base_metrics: dict[str, Any] = {}
    elif isinstance(info.get("base"), str):
        base = info["base"]
        found = summaries.read(base)
        if found is None:
            from gitexp.store import codec as fmt

            found = fmt.read_listing(record.repo, base)
        base_metrics = found[2]
    else:
        return None  # a journal from before `base` was recorded: what it extends is unknown
    meta, params, metrics = record.meta, record.params, record.metrics
    # Copies one level deep are enough: replaying replaces top-level meta fields and merged tags and
    # params with new dicts, and never changes the record's own.
    state = RunState(meta=dict(meta), params=params)
    owner = f"{record.id}.{info.get('pid')}.log"
    prefix = f"{record.id}."
    segments = sorted((n for n in names if n.startswith(prefix) and n.endswith(".log")), key=lambda n: (n != owner, n))
    for name in segments:
        try:
            with open(root / name, encoding="utf-8", errors="replace") as handle:
                lines = handle.readlines()
        except FileNotFoundError:  # the run ended meanwhile
            continue
        journal.apply(state, lines)
    live_metrics = dict(metrics)
    kept: dict[str, Series] = {}
    for key, series in state.metrics.items():
        summary = _combined(base_metrics.get(key), series)
        tip = metrics.get(key)
        if isinstance(tip, dict) and isinstance(tip.get("count"), int) and tip["count"] > summary["count"]:
            continue  # the commit holds more than the journal (its writes failed): the commit is right
        live_metrics[key] = summary
        kept[key] = series
    live_meta = state.meta
    if live_meta.get("status", "RUNNING") == "RUNNING" and isinstance(live_meta.get("start"), str):
        live_meta["duration"] = round(max(0.0, now - parse_iso(live_meta["start"])), 3)
    return (live_meta, state.params, live_metrics), LiveValues(base, kept)


def _combined(base: Any, series: Series) -> dict[str, Any]:
    """The summary of a metric whose values before the journal's are summarised by *base* (or none)."""
    if not (isinstance(base, dict) and isinstance(base.get("count"), int)):
        return series.summary()
    whole = Series(last=base.get("last", float("nan")), last_step=base.get("step", -1),
                   min=base.get("min", float("nan")), max=base.get("max", float("nan")))
    for step, stamp, value in zip(series.steps, series.times, series.values, strict=True):
        whole.add(step, stamp, value)
    return {**whole.summary(), "count": base["count"] + series.count}


def history(live: LiveValues, repo: RepoReader, commit: str, key: str) -> Series:
    """The whole history of *key* in a live record of run commit *commit*: its base's values, then the
    journal's."""
    from gitexp.store.histories import read_history

    series = live.series.get(key)
    if series is None:
        return read_history(repo, commit, key)
    # A read history holds lists, as read_history's do (the journal's replay logged into arrays).
    whole = read_history(repo, live.base, key) if live.base is not None else Series()
    for step, stamp, value in zip(series.steps, series.times, series.values, strict=True):
        whole.add(step, stamp, value)
    return whole
