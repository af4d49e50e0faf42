"""The index of every run by id, name and handle, kept for the refs it was made from.

`git exp show RUN` (and diff, compare, log, plot, get) names one run among all. At 100,000 runs,
finding it took 0.25 s before anything was shown: reading 100,000 refs, the names of their runs,
and working out the handles of the runs shown among every id. The listing kept by `git exp ls`
holds all of that; when it is written, so is `<common git dir>/gitexp/cache/runs-index-v1.marshal`:
the refs, commits, ids, names and handles of every run, newest first, as lines of five strings (a
search of a string is a C loop, and loading one is a copy), with the refs_state they are the runs
of. While the refs_state is the same, so are the runs, and a run is found in a few milliseconds.

find() answers what runs.resolve() would over load_runs(), or None where the index cannot tell
(several runs match, none does, the refs changed since, a run is live here): the caller then
resolves over every run, which also says what is wrong. handles(), refs_of(), newest() and
every_ref() answer what names.handles() and Repo.refs() would, for load_runs and run_handles.
tests/test_runindex.py compares each with the way that reads every ref.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from itertools import repeat
from pathlib import Path
from typing import Any

from gitexp.git.gitfiles import only_loose_changed, refs_state
from gitexp.git.reader import RepoReader
from gitexp.store import cachefile, names
from gitexp.store.names import REF_PREFIX

INDEX_FILE = Path("gitexp") / "cache" / "runs-index-v1.marshal"
DELTA_FILE = Path("gitexp") / "cache" / "runs-index-v1-delta.marshal"  # runs newer than INDEX_FILE's (save_delta)
# A later refs_state of the same refs as the index files of these stats (confirm)
CONFIRMED_FILE = Path("gitexp") / "cache" / "runs-index-v1-confirmed.marshal"
_COLUMNS = ("refs", "ids", "names", "handles")  # "\n"-joined lines, one per run, in one order
MOST_HITS = 64  # lines matching a text past which find() leaves the answer to resolve()
_last: tuple[Path, Any, RunIndex] | None = None  # the index last read, and its state
_last_now: tuple[Path, Any, dict[str, str]] | None = None  # refs_now()'s last answer from an index not current
_kept_last: tuple[tuple[Any, ...], tuple[RunIndex, Any] | None] | None = None  # _kept()'s, and the files' stats


class RunIndex:
    """The runs of one refs_state: each column a line per run; commits, 40 hex digits each."""

    __slots__ = ("_lines", "_padded", "commits", "count", "metrics", "text")

    def __init__(self, text: dict[str, str], commits: str, count: int, metrics: list[str] | None = None) -> None:
        self.text, self.commits, self.count = text, commits, count
        self.metrics = metrics  # every metric key some run has, system/ ones apart; None: not known
        self._lines: dict[str, list[str]] = {}
        self._padded: dict[str, str] = {}  # a column between newlines, searched for whole lines

    def line(self, column: str, k: int) -> str:
        return self.line_list(column)[k]

    def line_list(self, column: str) -> list[str]:
        """The lines of *column* (split once)."""
        if column not in self._lines:
            self._lines[column] = self.text[column].split("\n")
        return self._lines[column]

    def of(self, k: int, experiment: str | None) -> bool:
        """Whether the run on line *k* is one of *experiment* (not of one nested in it), as load_runs
        lists them; of any experiment for None."""
        if not experiment:
            return True
        scope = f"{REF_PREFIX}{experiment}/"
        ref = self.line("refs", k)
        return ref.startswith(scope) and "/" not in ref[len(scope):]

    def commit_list(self) -> list[str]:
        return [self.commits[k:k + 40] for k in range(0, 40 * self.count, 40)]

    def run(self, k: int) -> tuple[str, str]:
        """(ref, commit) of the run on line *k*."""
        return self.line("refs", k), self.commits[40 * k:40 * k + 40]

    def equal(self, column: str, text: str) -> list[int] | None:
        """The lines of *column* that are *text*; None past MOST_HITS."""
        if "\n" in text:
            return None
        if column not in self._padded:  # (one copy of the column for every lookup: refs_of looks up 100)
            self._padded[column] = "\n" + self.text[column] + "\n"
        return self._hits(self._padded[column], "\n" + text + "\n", 0)

    def starting(self, text: str, handle: str | None) -> list[int] | None:
        """The lines of the ids that start with *text*, or whose random part starts with *handle*;
        None past MOST_HITS."""
        ids = "\n" + self.text["ids"]
        hits = self._hits(ids, "\n" + text, 0) if "\n" not in text else []
        if handle is not None and hits is not None:
            # (an id's random part begins RANDOM_START characters into its line)
            more = self._hits(ids, handle, names.RANDOM_START + 1)
            hits = None if more is None else sorted({*hits, *more})
        return hits

    def _hits(self, joined: str, needle: str, offset: int) -> list[int] | None:
        """The lines (counted from 0) where *needle* is found *offset* characters after the newline
        that starts them; None past MOST_HITS of them, or of places to look at."""
        found: list[int] = []
        pos, looked, upto, before = joined.find(needle), 0, 0, 0
        while pos >= 0:
            looked += 1
            if looked > 4 * MOST_HITS:
                return None
            start = joined.rfind("\n", 0, pos + 1)
            if pos - start == offset:
                before += joined.count("\n", upto, start)  # the lines before this one, each counted once
                upto = start
                found.append(before)
                if len(found) > MOST_HITS:
                    return None
            pos = joined.find(needle, pos + 1)
        return found


def save(repo: RepoReader, state: Any, refs: Mapping[str, str], experiments: list[str], ids: list[str],
         run_names: list[str], handles: list[str], metrics: list[str] | None,
         token: str | None = None) -> list[tuple[Path, Any]]:
    """The file to write for the runs of *refs* (ref -> commit), listed in the order of *experiments*
    and *ids*, named *run_names* and shown by *handles*, under *state* (refs_state, taken before the
    refs were found to be those), with *metrics*, every metric key some run has but system/ ones
    (None: not known), and *token*, which a delta of it names; none when they cannot be lines, are
    not every run of *refs* once, or disagree with the loose refs of the state."""
    found = _lines(state, refs, len(ids), experiments, ids, run_names, handles)
    if found is None:
        return []
    return [(repo.commondir / INDEX_FILE, {"version": 1, "state": state, "metrics": metrics, "token": token,
                                           **found})]


def save_delta(repo: RepoReader, state: Any, refs: Mapping[str, str], of: str, kept: int, experiments: list[str],
               ids: list[str], run_names: list[str], handles: list[str], patches: dict[int, str],
               metrics: list[str] | None) -> list[tuple[Path, Any]]:
    """save() of the runs of *refs*, when they are the *kept* runs of the index of token *of* with the
    runs of *experiments* and *ids* before them: the file of those runs alone (DELTA_FILE), with
    *patches*, the handles of the kept runs they lengthened ({line: handle})."""
    found = _lines(state, refs, kept + len(ids), experiments, ids, run_names, handles)
    if found is None or any("\n" in handle for handle in patches.values()):
        return []
    return [(repo.commondir / DELTA_FILE, {"version": 1, "state": state, "metrics": metrics, "of": of,
                                           "patches": patches, **found})]


def _lines(state: Any, refs: Mapping[str, str], every: int, experiments: list[str], ids: list[str],
           run_names: list[str], handles: list[str]) -> dict[str, Any] | None:
    """The count, commits and columns of the runs of *ids* among the *every* runs of *refs*."""
    order = [f"{REF_PREFIX}{experiment}/{run_id}" for experiment, run_id in zip(experiments, ids, strict=True)]
    commits = "".join(map(refs.get, order, repeat("")))
    count = len(order)
    text = {"refs": "\n".join(order), "ids": "\n".join(ids), "names": "\n".join(run_names),
            "handles": "\n".join(handles)}
    if state is None or every != len(refs) or not (count == len(run_names) == len(handles)) or \
            not _sound(count, commits, text):
        return None
    if any(refs.get(ref) != commit for ref, commit in state[1].items()):
        return None  # a ref moved between the state and the reading: not the runs of that state
    return {"count": count, "commits": commits, **text}


def _joined(data: dict[str, Any], delta: Any, state: Any) -> dict[str, Any] | None:
    """The index of the runs of *delta* (DELTA_FILE's) before those of *data* (INDEX_FILE's), when
    it is a delta of that one under *state*."""
    if type(delta) is not dict or delta.get("version") != 1 or delta.get("state") != state or \
            data.get("token") is None or delta.get("of") != data.get("token"):
        return None
    kept: Any = data.get("count")
    patches = delta.get("patches")
    if not _sound(delta.get("count"), delta.get("commits"), {column: delta.get(column) for column in _COLUMNS}) or \
            not _sound(kept, data.get("commits"), {column: data.get(column) for column in _COLUMNS}) or \
            type(patches) is not dict or not all(type(line) is int and 0 <= line < kept and type(handle) is str
                                                 and "\n" not in handle for line, handle in patches.items()):
        return None
    handles = data["handles"]
    if patches:  # (a new run lengthened the handles of kept ones: rare, a few)
        lines = handles.split("\n")
        for line, handle in patches.items():
            lines[line] = handle
        handles = "\n".join(lines)
    return {"count": delta["count"] + kept, "commits": delta["commits"] + data["commits"],
            "metrics": delta.get("metrics"), "refs": delta["refs"] + "\n" + data["refs"],
            "ids": delta["ids"] + "\n" + data["ids"], "names": delta["names"] + "\n" + data["names"],
            "handles": delta["handles"] + "\n" + handles}


def _sound(count: Any, commits: Any, text: dict[str, Any]) -> bool:
    """Whether these are the commits and columns of *count* runs, a line each."""
    return type(count) is int and count >= 1 and type(commits) is str and len(commits) == 40 * count and \
        all(type(part) is str and part.count("\n") == count - 1 for part in text.values())


def current(repo: RepoReader) -> RunIndex | None:
    """The index of the runs the refs hold now; None without one."""
    global _last
    state = refs_state(repo.gitdir, repo.commondir, REF_PREFIX)
    if state is None:
        return None
    if _last is not None and _last[0] == repo.commondir and _last[1] == state:
        return _last[2]
    kept = _kept(repo)
    if kept is None or kept[1] != state:
        return None
    _last = (repo.commondir, state, kept[0])
    return kept[0]


def _kept(repo: RepoReader) -> tuple[RunIndex, Any] | None:
    """The index kept, and the refs_state it is of: joined with its delta where the delta is of it,
    under the delta's state; None without a sound one. Read once while neither file changes: `git
    exp show` asks find(), refs_of() and handles() in turn."""
    global _kept_last
    paths = (repo.commondir / INDEX_FILE, repo.commondir / DELTA_FILE, repo.commondir / CONFIRMED_FILE)
    stats = (repo.commondir, *(_identity(path) for path in paths))
    if stats[1] is None:
        return None
    if _kept_last is not None and _kept_last[0] == stats:
        return _kept_last[1]
    data = cachefile.load(paths[0])
    if type(data) is not dict or data.get("version") != 1:
        return None
    delta: Any = cachefile.load(paths[1]) if stats[2] is not None else None
    if type(delta) is dict:
        joined = _joined(data, delta, delta.get("state"))
        if joined is not None:
            data = {**joined, "state": delta["state"]}
    count, commits = data.get("count"), data.get("commits")
    text = {column: data.get(column) for column in _COLUMNS}
    metrics = data.get("metrics")
    kept = None
    if _sound(count, commits, text) and \
            (metrics is None or (type(metrics) is list and all(type(key) is str for key in metrics))):
        state = data.get("state")
        confirmed = cachefile.load(paths[2]) if stats[3] is not None else None
        if type(confirmed) is tuple and len(confirmed) == 2 and confirmed[0] == list(stats[1:3]):
            state = confirmed[1]  # (the same refs, under the state they have now)
        kept = RunIndex(text, commits, count, metrics), state  # type: ignore[arg-type]
    _kept_last = (stats, kept)  # (None too: another version's, or damaged)
    return kept


def confirm(repo: RepoReader, state: Any, refs: Mapping[str, str]) -> None:
    """Record that the index kept is of *refs* (ref -> commit, every run's) under *state* (refs_state,
    taken before they were read), when it is. git's packing and the run shelf's upkeep change the
    state without changing the runs: the index is then known current again without writing its
    14 MiB, else every load_runs and `git exp show` would read every ref until the next run is made."""
    if state is None:
        return
    kept = _kept(repo)
    if kept is None or kept[1] == state or len(refs) != kept[0].count:
        return
    stats = list(_kept_last[0][1:3]) if _kept_last is not None else None  # (those of the files just read)
    if stats is None or dict(zip(kept[0].line_list("refs"), kept[0].commit_list(), strict=True)) != refs:
        return
    cachefile.save(repo.commondir / CONFIRMED_FILE, (stats, state))


def forget() -> None:
    """Read the index files again at the next call, as another process would (for tests that
    rewrite them in place, where gitexp renames a new file over the old)."""
    global _last, _last_now, _kept_last
    _last = _last_now = _kept_last = None


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What tells a cache file from the next one written in its place (renamed over it): its stat."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def refs_now(repo: RepoReader) -> dict[str, str] | None:
    """The ref and the commit of every run (Repo.refs(REF_PREFIX), in another order), from the index
    while it is of the refs now, or while only loose refs changed since it was made: packed-refs is
    then the same file, so its runs are the index's that were not loose refs, and the loose refs are
    read for the state anyway. A sweep's runs are loose refs until the next packing: `git exp show
    RUN` among 100,000 runs need not read packed-refs again (0.1 s) after each. None where the index
    cannot tell (packed-refs rewritten, a loose ref of then gone: its packed value is not kept)."""
    global _last_now
    every = every_ref(repo)
    if every is not None:
        return every
    now = refs_state(repo.gitdir, repo.commondir, REF_PREFIX)
    if now is not None and _last_now is not None and _last_now[:2] == (repo.commondir, now):
        return dict(_last_now[2])  # (show reads them twice: for the run, then for its handle)
    kept = None if now is None else _kept(repo)
    if now is None or kept is None or not only_loose_changed(kept[1], now):
        return None
    refs = dict(zip(kept[0].line_list("refs"), kept[0].commit_list(), strict=True))
    refs.update(now[1])  # (every loose ref of then is one now: they cover the index's values of them)
    _last_now = (repo.commondir, now, refs)
    return dict(refs)


def find(repo: RepoReader, text: str, experiment: str | None, live: bool) -> tuple[str, str] | None:
    """(ref, commit) of the run that runs.resolve() over load_runs(repo, experiment) answers for
    *text*, where the index tells; else None. *live*: a run may be live on this machine, and its
    journal name it otherwise than its commit: only a full id is looked up."""
    index = current(repo)
    if index is None:
        return None
    handle = text.lower() if names.could_be_handle(text) else None
    # resolve()'s steps, in its order: the full id, the name, the start of the handle or id.
    for step in range(1 if live else 3):
        if step == 2 and len(text) < names.MIN_HANDLE_LEN:
            break
        hits = index.equal("ids", text) if step == 0 else index.equal("names", text) if step == 1 else \
            index.starting(text, handle)
        if hits is None:
            return None
        hits = [k for k in hits if index.of(k, experiment)]
        if len(hits) == 1:
            return index.run(hits[0])
        if hits:
            return None  # several: resolve() lists them
    return None


def handles(repo: RepoReader, ids: list[str]) -> dict[str, str] | None:
    """The handle of each of *ids* among every run (names.handles), where the index holds them all."""
    index = current(repo)
    if index is None:
        return None
    if len(ids) > 4:  # (a map of them all takes longer than a search of one, and less than ten)
        shown = dict(zip(index.text["ids"].split("\n"), index.text["handles"].split("\n"), strict=True))
        return None if any(run_id not in shown for run_id in ids) else {run_id: shown[run_id] for run_id in ids}
    out = {}
    for run_id in ids:
        hits = index.equal("ids", run_id)
        if not hits:
            return None
        out[run_id] = index.line("handles", hits[0])  # (an id twice, in two experiments: one handle)
    return out


def newest(repo: RepoReader, experiment: str | None, limit: int) -> dict[str, str] | None:
    """The refs (ref -> commit) of the *limit* newest runs (of *experiment*), and of any run with
    the id of the last of them (load_runs orders those); None without an index of the refs now."""
    index = current(repo)
    if index is None:
        return None
    out: dict[str, str] = {}
    last = None
    for k in range(index.count):  # (newest first: the listing's order)
        if not index.of(k, experiment):
            continue
        run_id = index.line("ids", k)
        if len(out) >= limit and run_id != last:
            break
        ref, commit = index.run(k)
        out[ref], last = commit, run_id
    return out


def every_run(repo: RepoReader) -> tuple[list[str], list[str]] | None:
    """The id and the commit of every run, newest first, when the index is of the refs now."""
    index = current(repo)
    if index is None:
        return None
    return index.line_list("ids"), index.commit_list()


def every_ref(repo: RepoReader) -> dict[str, str] | None:
    """The ref and the commit of every run (Repo.refs(REF_PREFIX), newest first), when the index is
    of the refs now."""
    index = current(repo)
    return None if index is None else dict(zip(index.line_list("refs"), index.commit_list(), strict=True))


def refs_of(repo: RepoReader, ids: Iterable[str]) -> dict[str, str] | None:
    """The refs (ref -> commit) of the runs of *ids* (in any experiment; an id of no run has none),
    when the index is of the refs now, or refs_now() can tell them."""
    index = current(repo)
    if index is None:
        every = refs_now(repo)
        if every is None:
            return None
        wanted = set(ids)
        return {ref: commit for ref, commit in every.items() if ref.rpartition("/")[2] in wanted}
    out: dict[str, str] = {}
    for run_id in ids:
        hits = index.equal("ids", run_id)
        if hits is None:
            return None
        out.update(map(index.run, hits))
    return out


def metric_keys(repo: RepoReader) -> set[str] | None:
    """Every metric key some run has (system/ keys apart), when the index is of the refs now and knows them."""
    index = current(repo)
    return None if index is None or index.metrics is None else set(index.metrics)
