"""Reading runs: load_runs, get_run, and resolving a run from an id prefix, a handle or a name.

It is longer than gitexp's usual 400 lines because RunRecord's lazy reads, load_runs' use of
the listing cache and journals, and resolution all work on the same records and their private
cache of summaries; resolution (the end of the module) is the part to move out if it grows.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import warnings
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from gitexp.errors import AmbiguousRunError, CorruptRunError, DamagedRunError, RunNotFoundError
from gitexp.git.gitfiles import refs_state
from gitexp.git.lazyrepo import libgit2_open, open_repository, real
from gitexp.store import names, runindex
from gitexp.store.runcache import (
    Cache,
    Row,
    Summaries,
    known_names,
    names_and_origins,
    origin,
    row_base_commit,
    row_duration,
    row_name,
    row_origin,
    row_start,
    row_status,
)
from gitexp.text import printable

if TYPE_CHECKING:
    from gitexp.git.reader import RepoReader
    from gitexp.store.histories import Columns
    from gitexp.store.live import LiveValues
    from gitexp.store.state import Series

# gitexp.store.codec and gitexp.store.writer (and with them yaml, 20 ms to import) are imported where they
# are used: a warm `git exp ls` needs neither; nor pygit2 (gitexp.git.repo, 70 ms), when the
# repository's files are plain enough for gitfiles to read (a LazyRepo).

MISSING: Any = None
_SUMMARY = ("meta", "params", "metrics")
# The run ids of the last load_runs, when it listed every run: what its records were read
# against, so that their short ids (table.run_short_ids) need not list 10,000 refs again.
_last_ids: tuple[weakref.ReferenceType[RepoReader], list[str]] | None = None


class RunRecord:
    """What gitexp knows of one run, as of its ref's current commit."""

    # A plain class rather than a dataclass: `dataclasses` imports `inspect`, 8 ms of a 0.25 s
    # `git exp ls`. It behaves as the dataclass did: these fields, compared by value except repo.
    id: str
    experiment: str
    commit: str
    meta: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    repo: RepoReader  # a Repo, or a LazyRepo that opens one only when a read needs libgit2
    _env: dict[str, Any] | None
    # A record of load_runs has meta, params and metrics unset until one is first used: then
    # __getattr__ reads all three from _summaries (the cache's). Until then _row holds what
    # listings read (a runcache.Row), so listing 10,000 runs reads none of them.
    _summaries: Summaries | None
    _row: Row | None
    # A run live on this machine: the values its journal holds beyond its commit (gitexp/store/live.py).
    _live: LiveValues | None
    __slots__ = (
        "_env",
        "_live",
        "_row",
        "_summaries",
        "commit",
        "experiment",
        "id",
        "meta",
        "metrics",
        "params",
        "repo",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __init__(self, id: str, experiment: str, commit: str, meta: dict[str, Any], params: dict[str, Any],
                 metrics: dict[str, dict[str, Any]], repo: RepoReader) -> None:
        self.id, self.experiment, self.commit, self.repo = id, experiment, commit, repo
        self.meta, self.params, self.metrics = meta, params, metrics
        self._env = self._summaries = self._row = self._live = None

    def _compared(self) -> tuple[Any, ...]:
        return self.id, self.experiment, self.commit, self.meta, self.params, self.metrics

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._compared() == other._compared()

    def __repr__(self) -> str:
        return (f"RunRecord(id={self.id!r}, experiment={self.experiment!r}, commit={self.commit!r}, "
                f"meta={self.meta!r}, params={self.params!r}, metrics={self.metrics!r})")

    def __getattr__(self, name: str) -> Any:
        # Called only for an attribute not set: meta, params or metrics of a record not read yet.
        summaries = self._summaries if name in _SUMMARY else None
        if summaries is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        found = summaries.read(self.commit)
        if found is None:  # not in the cache file after all (another process rewrote it)
            from gitexp.store import codec as fmt

            found = fmt.read_listing(self.repo, self.commit)
        self.meta, self.params, self.metrics = found
        self._summaries = None
        return object.__getattribute__(self, name)

    @property
    def listing_row(self) -> Row | None:
        """The listing row of the cache (a runcache.Row, read through runcache.row_name...) while meta,
        params and metrics are not read yet (after that, they say what is true: a caller may have
        changed them); else None."""
        if self._summaries is None:
            return None
        if self._row is None:  # (not read yet: the cache reads every row when the first is asked for)
            self._row = self._summaries.row(self.commit)
        return self._row

    @property
    def ref(self) -> str:
        from gitexp.store.writer import run_ref

        return run_ref(self.experiment, self.id)

    @property
    def name(self) -> str:
        row = self.listing_row
        return (self.meta.get("name") or "") if row is None else row_name(row)

    @property
    def status(self) -> str:
        row = self.listing_row
        return self.meta.get("status", "RUNNING") if row is None else row_status(row)

    @property
    def origin(self) -> tuple[str, str] | None:
        """(meta key, run id) of the run this one was forked from (forked_from) or reruns (rerun_of), or None."""
        row = self.listing_row
        return origin(self.meta) if row is None else row_origin(row)

    @property
    def tags(self) -> dict[str, str]:
        return self.meta.get("tags") or {}

    @property
    def start(self) -> str | None:
        row = self.listing_row
        return self.meta.get("start") if row is None else row_start(row)

    @property
    def duration(self) -> float | None:
        row = self.listing_row
        return self.meta.get("duration") if row is None else row_duration(row)

    @property
    def base_commit(self) -> str | None:
        row = self.listing_row
        return (self.meta.get("git") or {}).get("commit") if row is None else row_base_commit(row)

    @property
    def env(self) -> dict[str, Any]:
        """The run's env.yaml ({} when it has none; with a warning, when it cannot be used)."""
        if self._env is None:
            from gitexp.store import codec as fmt

            data = self.repo.read_path(self.commit, fmt.ENV)
            try:
                self._env = fmt.load_env(data, f"{fmt.ENV} of run {self.id}")
            except CorruptRunError as exc:  # the rest of the run is sound: shown, and `verify` reports this
                warnings.warn(f"gitexp: ignoring the environment of run {self.id}: {exc}", RuntimeWarning,
                              stacklevel=2)
                self._env = {}
        return self._env

    @property
    def artifacts(self) -> list[Any]:
        """The run's artifacts (gitexp.store.artifacts.Artifact: path, size, sha256, lfs, present), by path."""
        from gitexp.store.artifacts import list_artifacts

        return list_artifacts(self.repo, self.commit)

    def history(self, key: str) -> Series:
        """The full history of metric *key* (steps, times, values), read on demand."""
        if key not in self.metrics:
            raise RunNotFoundError(f"run {self.id} has no metric {key!r}; it has: "
                                   f"{', '.join(sorted(self.metrics)) or 'no metrics'}")
        if self._live is not None:
            from gitexp.store.live import history

            return history(self._live, self.repo, self.commit, key)
        from gitexp.store.histories import read_history

        return read_history(self.repo, self.commit, key)

    def columns(self, key: str) -> Columns:
        """history(key) as arrays, without a Python object per value: for drawing long histories."""
        from gitexp.store.histories import Columns, read_columns
        from gitexp.store.state import Series

        if self._live is not None or key not in self.metrics:
            return Columns.of(self.history(key))  # a live run's journal, or the error history() gives
        return read_columns(self.repo, self.commit, key) or Columns.of(Series())

    def read(self, path: str) -> bytes | None:
        """Raw bytes of a file of the run commit's tree (output.log, code.patch...)."""
        return self.repo.read_path(self.commit, path)

    def to_dict(self, env: bool = False) -> dict[str, Any]:
        out = {"id": self.id, "experiment": self.experiment, "commit": self.commit, "meta": self.meta,
               "params": self.params, "metrics": self.metrics}
        if env:
            out["env"] = self.env
        return out


def _unread(run_id: str, experiment: str, commit: str, repo: RepoReader, summaries: Summaries,
            row: Row | None) -> RunRecord:
    """A RunRecord whose meta, params and metrics are read from *summaries* when first used."""
    record = object.__new__(RunRecord)
    record.id, record.experiment, record.commit, record.repo = run_id, experiment, commit, repo
    record._env, record._summaries, record._row = None, summaries, row
    record._live = None
    return record


class RunList(list[RunRecord]):
    """load_runs' records, plus the runs it skipped as damaged (run id -> DamagedRunError), so that
    resolve() can say what is wrong with a damaged run named on the command line."""

    __slots__ = ("damaged",)

    def __init__(self, records: list[RunRecord], damaged: dict[str, DamagedRunError]) -> None:
        super().__init__(records)
        self.damaged = damaged


def listing_rows(records: Sequence[RunRecord]) -> list[Row | None]:
    """[r.listing_row for r in records], at a fraction of the cost."""
    rows = [r._row if r._summaries is not None else None for r in records]
    # Rows not read yet (a run too unusual for one too): those of one load_runs read at once.
    unread: dict[int, tuple[Summaries, list[int]]] = {}
    for k in [k for k, row in enumerate(rows) if row is None]:
        summaries = records[k]._summaries
        if summaries is not None:
            unread.setdefault(id(summaries), (summaries, []))[1].append(k)
    for summaries, positions in unread.values():
        for k, row in zip(positions, summaries.rows_of([records[k].commit for k in positions]), strict=True):
            rows[k] = records[k]._row = row
    return rows


def split_ref(ref: str, namespace: str = names.REF_PREFIX) -> tuple[str, str]:
    experiment, _, run_id = ref[len(namespace):].rpartition("/")
    return experiment, run_id


def _journal_names(repo: RepoReader) -> list[str]:
    """The names in the journal folder (docs/format.md: <run-id>.lock...); none when no run ever started here."""
    try:
        return os.listdir(repo.commondir / "gitexp" / "journal")
    except OSError:
        return []


def _has_locks(names: list[str]) -> bool:
    return any(name.endswith(".lock") and not name.startswith("spare.") for name in names)


def _recover(repo: RepoReader, names: list[str]) -> None:
    """store.recover, importing store (and yaml) only when the journal holds a dead run."""
    # Cheaper still: with no lock file (docs/format.md: <run-id>.lock) no run can need it.
    if not _has_locks(names):
        return
    from gitexp.store import journal

    found = journal.orphans(repo.commondir)
    for _, _, fd in found:
        os.close(fd)  # store.recover takes the locks again
    if found:
        from gitexp.store import writer as store

        store.recover(real(repo))


def load_runs(repo: RepoReader | str | os.PathLike[str] | None = None, experiment: str | None = None,
              recover: bool = True, namespace: str = names.REF_PREFIX, only: str | Collection[str] | None = None,
              limit: int | None = None, live: bool = True, refs: Mapping[str, str] | None = None) -> RunList:
    """Every run (of *experiment*, or all), newest first.

    Runs whose process died on this machine are finished as CRASHED first (*recover*);
    *namespace* is refs/experiments-trash/ to list removed runs. A damaged run (its ref not at a
    commit, its files unreadable or of the wrong types) is left out with a warning naming it.
    *only*: the run of this full id (or of these) alone; *limit*: the newest *limit* runs alone. Up to
    READ_ALONE runs are read from git without loading the listing cache (at 100,000 runs, loading
    it takes as long as reading 2,000 runs from git). Without *live*, a run live on this machine is
    as its ref has it, not as its journal says it is now. *refs*: the run refs (ref -> commit) to read
    among, when the caller has just read them: the 100,000 refs are not read again for ten.
    """
    global _last_ids
    repo = open_repository(repo)
    journal_names = _before_reading(repo, recover)
    prefix = namespace + (f"{names.check_experiment(experiment)}/" if experiment else "")
    wanted = None if only is None else {only} if isinstance(only, str) else set(only)
    records: list[RunRecord] = []
    damaged: dict[str, DamagedRunError] = {}
    # The cyclic GC would walk the many new objects (ref names, the cache's rows, the records) again
    # every few hundred made, none of them in a cycle, and the more objects the caller holds (a
    # listing before this one), the longer each walk: off, loading takes a third to half less time.
    collecting = gc.isenabled()
    gc.disable()
    prefetch: _Prefetch | None = None
    try:
        given = refs is not None
        if refs is None and namespace == names.REF_PREFIX:  # (100,000 refs unread, where the index tells)
            if wanted is not None and len(wanted) <= FEW_INDEXED:
                refs = runindex.refs_of(repo, wanted)  # (get_run, `git exp log RUN`)
                given = refs is not None
            elif limit is not None and wanted is None:
                refs = runindex.newest(repo, experiment, limit)  # (`git exp ls -n 20`)
                given = refs is not None
            elif wanted is None and not experiment:
                refs = runindex.every_ref(repo)  # every run's: as repo.refs() gives them, in another order
                if refs is None:
                    state = refs_state(repo.gitdir, repo.commondir, prefix)
                    refs = repo.refs(prefix)
                    runindex.confirm(repo, state, refs)  # (refs packed or shelved since: the same runs)
        refs = repo.refs(prefix) if refs is None else {r: c for r, c in refs.items() if r.startswith(prefix)}
        skip = len(namespace)
        ids, listed = [], []
        for ref, commit in refs.items():
            exp, _, run_id = ref[skip:].rpartition("/")
            ids.append(run_id)
            if (not experiment or exp == experiment) and (wanted is None or run_id in wanted):
                listed.append((run_id, exp, ref, commit))
        # Newest first, as they are returned; made in that order (and the cache written in it), the
        # records and their rows lie in memory in the order a listing reads them.
        listed.sort(key=itemgetter(0), reverse=True)
        few = (wanted is not None and len(wanted) <= READ_ALONE) or (limit is not None and limit <= READ_ALONE)
        cache = Cache(repo.commondir, load=not few)
        cached, summaries = cache.commits, cache.summaries
        first_miss = True
        for k, (run_id, exp, ref, commit) in enumerate(listed):
            if limit is not None and len(records) >= limit:
                break
            row = None  # (read from the cache when first asked for)
            if commit not in cached:
                if first_miss:  # (a warm listing finds every run cached and never looks ahead)
                    first_miss = False
                    rest = listed[k:] if limit is None else listed[k:k + limit - len(records)]
                    unread = list(dict.fromkeys(c for *_, c in rest if c not in cached))
                    # git reads them too where libgit2 is not open yet: a few new runs, read
                    # without importing pygit2 and opening the repository (0.1 s).
                    batch = len(unread) >= BATCH_FROM or not libgit2_open(repo)
                    prefetch = _Prefetch(repo, unread) if batch else None
                try:
                    read, found = prefetch.read(commit) if prefetch is not None else (None, None)
                    plain = found is not None  # (parsed from summary.json: JSON's types alone)
                    if found is None:  # (read here, or damaged: codec reads the YAML and says what is wrong)
                        from gitexp.store import codec as fmt

                        found = fmt.read_listing(repo, commit, read)
                    meta, params, metrics = found
                except CorruptRunError as exc:
                    error = damaged[run_id] = DamagedRunError(run_id, ref, commit, str(exc))
                    warnings.warn(f"gitexp: leaving out run {run_id} ({ref}), which is damaged: {exc}; {error.hint}",
                                  RuntimeWarning, stacklevel=2)
                    continue
                stored, row = cache.add(commit, meta, params, metrics, plain)
                if not stored:
                    records.append(RunRecord(run_id, exp, commit, meta, params, metrics, repo))
                    continue
            records.append(_unread(run_id, exp, commit, repo, summaries, row))
    finally:
        if prefetch is not None:
            prefetch.close()
        if collecting:
            gc.enable()
    # Entries of commits that no run points at any more go, when every run was listed.
    if not few and cache.dirty:  # (an unloaded cache written back would lose the file's entries)
        every = prefix == names.REF_PREFIX and limit is None and wanted is None
        cache.save([commit for *_, commit in listed], prune=every)
    if live and _has_locks(journal_names):  # after save: the cache holds what commits hold, never live values
        _overlay_live(records, journal_names, repo, summaries)
    _last_ids = (weakref.ref(repo), ids) if prefix == names.REF_PREFIX and not given else None
    return RunList(records, damaged)


def _before_reading(repo: RepoReader, recover: bool) -> list[str]:
    """What load_runs does before it reads the refs; the names in the journal folder."""
    # The runs this process started may not be on their refs yet (their first commit waits for
    # the background flush): have them written first. Without gitexp.store.background, it started none.
    background = sys.modules.get("gitexp.store.background")
    if background is not None:
        background.worker.before_read(repo.commondir)
    # One listing of the journal folder tells both whether a run may need recovering and which
    # runs are live (their records are brought up to date from their journal).
    journal_names = _journal_names(repo)
    if recover:
        _recover(repo, journal_names)
    return journal_names


def before_listing(repo: RepoReader) -> set[str]:
    """Take load_runs' first steps (this process's runs flushed, dead runs recovered); the ids of the
    runs live on this machine, whose records load_runs takes from their journals, not their refs."""
    names = _before_reading(repo, recover=True)
    if not _has_locks(names):
        return set()
    from gitexp.store import live

    return live.lock_ids(names)


def live_here(repo: RepoReader) -> bool:
    """Whether a run may be live on this machine (or dead, not recovered yet): its journal's lock is there."""
    return _has_locks(_journal_names(repo))


READ_ALONE = 1000  # runs that load_runs(limit=...) reads from git rather than through the listing cache
BATCH_FROM = 200  # runs not cached yet from which git reads them in one process (git/catfile.py), libgit2 open or not


class _Prefetch:
    """The summary.json of many run commits, read ahead by git in the order given
    (catfile.listing_files) and parsed PARSE_AHEAD at a time (summary.from_reads) while load_runs
    makes the records of the ones before."""

    def __init__(self, repo: RepoReader, commits: list[str]) -> None:
        from gitexp.git import catfile
        from gitexp.store.summary import SUMMARY

        self._answers = catfile.listing_files(repo.gitdir, commits, SUMMARY)
        self._ahead = iter(commits)
        self._many = len(commits) >= FAST_PARSE_FROM
        self._parsed: dict[str, tuple[bytes | None, tuple[dict, dict, dict] | None]] = {}  # read, not asked for yet
        self._done: set[str] = set()

    def read(self, commit: str) -> tuple[bytes | None, tuple[dict, dict, dict] | None]:
        """(what git read of *commit*, see listing_files, or None: read it the usual way; its meta,
        params and metric summaries, where that is sound, else None)."""
        if commit in self._done:
            return None, None
        self._done.add(commit)
        while commit not in self._parsed:
            from gitexp.store.summary import from_reads

            batch = list(itertools.islice(self._ahead, PARSE_AHEAD))
            if not batch:
                return None, None
            reads = [next(self._answers, None) for _ in batch]
            self._parsed.update(zip(batch, zip(reads, from_reads(reads, self._many), strict=True), strict=True))
        return self._parsed.pop(commit)

    def close(self) -> None:
        self._answers.close()


PARSE_AHEAD = 32  # summaries parsed as one JSON text (summary.from_reads)
# Summaries read at once from which msgspec's parser is worth its import: it saves 7.5 µs a
# summary (from 12.5), its import costs 14 ms (summary.from_reads).
FAST_PARSE_FROM = 2000


def _overlay_live(records: list[RunRecord], journal_names: list[str], repo: RepoReader, summaries: Summaries) -> None:
    """Replace the records of runs live on this machine by what their journal says now (gitexp/store/live.py)."""
    from gitexp.store import live

    for index, found, row, values in live.live_runs(records, journal_names, repo.commondir, summaries):
        old = records[index]
        record = _unread(old.id, old.experiment, old.commit, repo, live.Held(found), row)
        record._live = values
        records[index] = record


def run_ids(repo: RepoReader) -> list[str]:
    """The id of every run: as the last load_runs listed them, when that was of all runs of *repo*."""
    if _last_ids is not None and _last_ids[0]() is repo:
        return _last_ids[1]
    refs = runindex.refs_now(repo)  # (where the index tells, packed-refs is not read again)
    return [split_ref(ref)[1] for ref in (repo.refs(names.REF_PREFIX) if refs is None else refs)]


FEW_INDEXED = 100  # runs past which their refs and handles are not looked up in the run index one by one


def run_handles(records: Sequence[RunRecord]) -> dict[str, str]:
    """Run id -> handle (names.handles) of *records*, unique among every run of their repository, not
    only these, so that any command accepts what a listing of a few runs shows."""
    if 0 < len(records) <= FEW_INDEXED:
        indexed = runindex.handles(records[0].repo, [r.id for r in records])
        if indexed is not None:
            return indexed
    every = run_ids(records[0].repo) if records else []
    if len(records) * 100 < len(every):  # a few runs among many (show, diff, logs): only theirs worked out
        return names.handles_of([r.id for r in records], every)
    return names.handles([*every, *(r.id for r in records)])


def run_title(record: RunRecord, handle: str) -> str:
    """"3fa9c21 cnn/lr-0.1": how messages name a run (its handle first, to be copied), not yet printable()."""
    return f"{handle} {record.experiment}/{record.name}" if record.name else f"{handle} {record.experiment}"


def ref_titles(repo: RepoReader, refs: Iterable[str]) -> dict[str, str]:
    """ref -> run_title of the run at each of *refs* (refs/experiments/<experiment>/<run-id>), for
    messages that name runs; a ref that is no run here stays as it is."""
    wanted = list(refs)
    if not wanted:
        return {}
    records = {r.ref: r for r in load_runs(repo, recover=False)}
    handles = run_handles(list(records.values()))
    return {ref: run_title(records[ref], handles[records[ref].id]) if ref in records else ref for ref in wanted}


def resolve(records: list[RunRecord], text: str) -> RunRecord:
    """The one run that *text* names, trying in turn:

    1. its full id;
    2. its name;
    3. the start of its handle or of its id (at least 4 characters). Text of 4 to 8 hex digits is
       read both ways: "2026" is the start of the handles of some runs and of the ids of every run
       of 2026, and a run that matches either way is a candidate. A handle gitexp shows never
       starts another run's id or handle (names.handles), so it names its run alone.

    Each step that matches one run answers; one that matches several raises AmbiguousRunError,
    listing them. A damaged run that load_runs left out (RunList.damaged) matches by id too: naming
    it raises its DamagedRunError, which says what is wrong with it, rather than that no run matches.
    """
    damaged: dict[str, DamagedRunError] = getattr(records, "damaged", None) or {}
    handle = text.lower() if names.could_be_handle(text) else None

    def starts(run_id: str) -> bool:
        return run_id.startswith(text) or (handle is not None and names.random_part(run_id).startswith(handle))

    by_prefix = len(text) >= names.MIN_HANDLE_LEN
    run_names = run_names_of(records)
    for what, matches, broken in (
            ("", [r for r in records if r.id == text], [e for i, e in damaged.items() if i == text]),
            ("by name", [r for r, name in zip(records, run_names, strict=True) if name == text], []),
            ("by the start of their handle or id" if handle else "by the start of their id",
             [r for r in records if starts(r.id)] if by_prefix else [],
             [e for i, e in damaged.items() if starts(i)] if by_prefix else [])):
        if len(matches) + len(broken) == 1:
            if broken:
                raise broken[0]
            return matches[0]
        if len(matches) + len(broken) > 1:  # (ids are unique: never the first step)
            raise AmbiguousRunError(f"{text!r} matches {len(matches) + len(broken)} runs {what}:\n"
                                    + "\n".join(_candidates(records, matches, broken))
                                    + "\nname one by its handle (the first column) or its full id")
    raise RunNotFoundError(_unknown(records, text, run_names))


def run_names_of(records: Sequence[RunRecord]) -> list[str]:
    """[r.name for r in records]: at 100,000 runs, a name asked of each record took 0.4 s, and
    reading every cached row for them (listing_rows), even for a few, 0.3 s. The names file
    (runcache.known_names, a fifth of the rows' bytes) gives a cached commit's name as its row
    would; the rows of the commits it lacks are read at once."""
    found: list[str | None] = [None] * len(records)
    # (The cache's records alone: a live one's summaries are its journal's, which may name it otherwise.)
    unread = [k for k, r in enumerate(records) if type(r._summaries) is Summaries and r._row is None]
    named = known_names(records[0].repo.commondir) if unread else None
    if named is not None:
        for k in unread:
            found[k] = named.get(records[k].commit)
    rest = [k for k, name in enumerate(found) if name is None]
    for k, row in zip(rest, listing_rows([records[k] for k in rest]), strict=True):
        record = records[k]
        found[k] = (record.meta.get("name") or "") if row is None else row_name(row)
    return cast("list[str]", found)


def _candidates(records: list[RunRecord], matches: Sequence[RunRecord], broken: Sequence[DamagedRunError],
                shown: int = 10) -> list[str]:
    """A line per run (handle, experiment/name, full id; at most *shown* of each kind), to choose from."""
    damaged_ids = [e.run_id for e in broken[:shown]]
    every = run_ids(records[0].repo) if records else []
    # (Those of the runs shown alone, among every run's: not 100,000 handles worked out for ten.)
    handles = names.handles_of([*(r.id for r in matches[:shown]), *damaged_ids], [*every, *(r.id for r in records)])
    rows = [(handles[r.id], f"{r.experiment}/{name}" if name else r.experiment, r.id)
            for r, name in zip(matches[:shown], run_names_of(matches[:shown]), strict=True)]
    rows += [(handles[i], "(damaged)", i) for i in damaged_ids]
    width = max(len(h) for h, _, _ in rows)
    label = max(len(n) for _, n, _ in rows)
    lines = [printable(f"  {h:<{width}}  {n:<{label}}  {i}") for h, n, i in rows]
    more = len(matches) + len(broken) - len(rows)
    return lines + ([f"  ... and {more} more"] if more > 0 else [])


def _unknown(records: list[RunRecord], text: str, run_names: list[str]) -> str:
    import difflib

    message = (f"no run matches {text!r}: it is not a run's full id, name, handle or the start of one "
               f"(at least {names.MIN_HANDLE_LEN} characters)")
    close = difflib.get_close_matches(text, list(dict.fromkeys(filter(None, run_names))), n=3, cutoff=0.7)
    if close:
        near = [r for name in close for r, its in zip(records, run_names, strict=True) if its == name][:5]
        return f"{message}; did you mean:\n" + "\n".join(_candidates(records, near, []))
    return f"{message}; `git exp ls` lists the runs with their handles"


def get_run(id_or_name: str, repo: RepoReader | str | os.PathLike[str] | None = None,
            experiment: str | None = None) -> RunRecord:
    """resolve() over load_runs(). What `git exp show` and the MLflow drop-in's get_run ask for most
    is read alone: a full run id that some ref ends with (resolve tries ids first), a name or a
    handle that resolve() would answer with one run (runindex.find, else _by_name_alone and
    _by_handle_alone)."""
    return get_runs([id_or_name], repo, experiment)[0]


def get_runs(texts: Sequence[str], repo: RepoReader | str | os.PathLike[str] | None = None,
             experiment: str | None = None) -> list[RunRecord]:
    """[get_run(text) for text in *texts*], every run loaded once at most (where one is not read alone)."""
    repo = open_repository(repo)
    found = [_read_alone(repo, text, experiment) for text in texts]
    if any(record is None for record in found):
        records = load_runs(repo, experiment)
        return [resolve(records, text) if record is None else record for record, text in zip(found, texts, strict=True)]
    return cast("list[RunRecord]", found)


def lineage_records(run: RunRecord) -> list[RunRecord]:
    """The runs of the lineage that holds *run* (its oldest ancestor here, and every run that came
    from that one at any depth), read alone where the names and origins files know every run (no
    run live here, no run id twice); else every run: what views.lineage draws of *run* either way."""
    repo = run.repo
    indexed = runindex.every_run(repo)  # (100,000 refs read: 0.1 s)
    if indexed is not None:
        count, commits = len(indexed[0]), dict(zip(*indexed, strict=True))
    else:
        refs = repo.refs(names.REF_PREFIX)
        count, commits = len(refs), {ref.rpartition("/")[2]: commit for ref, commit in refs.items()}
    named, origins = names_and_origins(repo.commondir)
    if named is None or origins is None or len(commits) != count or _has_locks(_journal_names(repo)) \
            or not all(map(named.__contains__, commits.values())):
        return load_runs(repo)
    parent = {run_id: origins[commit][1] for run_id, commit in commits.items() if commit in origins} \
        if origins else {}
    root, seen = run.id, {run.id}
    while (up := parent.get(root)) is not None and up in commits and up not in seen:
        seen.add(up)
        root = up
    children: dict[str, list[str]] = {}
    for child, up in parent.items():
        children.setdefault(up, []).append(child)
    tree, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return load_runs(repo, only=tree | {run.id})


def _read_alone(repo: RepoReader, id_or_name: str, experiment: str | None) -> RunRecord | None:
    """get_run(id_or_name) where it can be read without loading every run, else None."""
    live = _has_locks(_journal_names(repo))
    indexed = runindex.find(repo, id_or_name, experiment, live)
    if indexed is not None:  # the refs are those the index was made of: none is read
        ref, commit = indexed
        alone = load_runs(repo, experiment, only=ref.rpartition("/")[2], refs={ref: commit})
        return resolve(alone, id_or_name) if alone or alone.damaged else None
    if names.is_run_id(id_or_name):
        run_id: str | None = id_or_name
    elif live:
        return None  # a run live here: its journal may name it otherwise than its commit
    else:
        refs = repo.refs(names.REF_PREFIX + (f"{names.check_experiment(experiment)}/" if experiment else ""))
        named = known_names(repo.commondir)
        run_id = _by_name_alone(refs, named, id_or_name)
        if run_id is None and names.could_be_handle(id_or_name):
            run_id = _by_handle_alone(repo, refs, named, id_or_name)
    if run_id is None:
        return None
    alone = load_runs(repo, experiment, only=run_id)
    return resolve(alone, id_or_name) if alone or alone.damaged else None


def _by_name_alone(refs: dict[str, str], named: dict[str, str] | None, text: str) -> str | None:
    """The id of the one run of *refs* named *text*, when resolve() would answer it (no run's id is
    *text*) and *named* (the names file) knows every run's name; else None."""
    if named is None:
        return None
    found = None
    for ref, commit in refs.items():
        name = named.get(commit)
        if name is None:
            return None  # a run the names file does not know: resolve() over every run
        if name == text:
            if found is not None:
                return None  # several: resolve() says which
            found = ref
    if found is None or any(ref.endswith("/" + text) for ref in refs):
        return None  # none, or a run whose id it is (ids come first)
    return found.rpartition("/")[2]


def _by_handle_alone(repo: RepoReader, refs: dict[str, str], named: dict[str, str] | None, text: str) -> str | None:
    """The id of the one run of *refs* that *text* (4 to 8 hex digits) names by the start of its
    handle or id, when resolve() would answer it: no run is named *text* (names come first, *named*
    tells); None whenever that takes reading every run."""
    lowered = text.lower()
    # (Either way the ref holds the text: a substring test first spares 100,000 refs the rest.)
    found = [(ref, commit) for ref, commit in refs.items()
             if (lowered in ref or text in ref) and ((run_id := ref.rpartition("/")[2]).startswith(text)
                                                      or names.random_part(run_id).startswith(lowered))]
    if len(found) != 1:
        return None  # none, or several: resolve() says which, from every run
    # Every run's name known, none of them *text*: without loading the cache's 100,000 rows.
    if named is not None and all(named.get(commit, text) != text for commit in refs.values()):
        return found[0][0].rpartition("/")[2]
    cache = Cache(repo.commondir)  # (its rows read with the cyclic GC paused: Rows.stored)
    commits = list(refs.values())
    for commit, row in zip(commits, cache.rows.get_many(commits), strict=True):
        if commit not in cache.commits or row is None or row_name(row) == text:
            return None  # a run the cache does not list, or one named *text*
    return found[0][0].rpartition("/")[2]
