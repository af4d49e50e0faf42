"""The local cache behind load_runs: what each run commit holds, kept by commit id.

`<common git dir>/gitexp/cache/runs-v7.marshal` holds {"commits": ..., "rows": ...}:

- commits lists the commit id of each cached run;
- rows is the marshal bytes of a list, in the order of commits, of what listing runs reads of each
  (a Row, from make_row), so that `git exp ls` and the usual queries over 10,000 runs read
  nothing else; None for a run too unusual for one. They are read when the first row is asked
  for (Rows).

`runs-v7-summaries.marshal` beside it maps the same commit ids to the marshal bytes of (meta,
params, metric summaries). It is read only when a record's meta, params or metrics are first used
(runs.RunRecord.__getattr__): a listing does not wait for it. A summary it lacks (the two files
are written one after the other) is read from git.

`runs-v7-delta.marshal` holds {"rows": ..., "summaries": ...} of the runs added since those two
were written, once they are large (Cache.save), read with the commits.

A commit never changes, so an entry never goes stale; deleting the files is always safe. A change
to make_row (or to what it stands for) needs a new version in the file names. Only runs that passed
format.read_listing's checks are entered (v3: v2 also held runs of the wrong types, which the
listing then failed on), so a listing need not check the runs it finds here again. v4 added each
metric's min and max to the row: a --where on metrics.KEY.max over 100,000 runs read every run's
summary without them. v5 added the run it came from (origin): `git exp log RUN`, which looks for the
forks and reruns of a run among all runs, read every run's summary without it (100,000 runs: 4 s, 1 GB).
v6 kept the rows apart from the rest, as bytes: load_runs() of 100,000 runs took 0.22 s to load the
rows as well. v7 no longer holds the id of each run's env.yaml blob, which nothing listed used and
whose lookup was a fifth of git's work reading 100,000 runs not cached yet.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import marshal
import threading
from collections.abc import Callable, Iterable
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from gitexp.store import cachefile

CACHE_FILE = Path("gitexp") / "cache" / "runs-v7.marshal"
SUMMARIES_FILE = Path("gitexp") / "cache" / "runs-v7-summaries.marshal"
# The name of each cached run's commit (a commit's run's name never changes), and the run it came
# from (row_origin) for those that came from one: get_run finds a run by its name, or tells that no
# run is named like a handle, and `git exp log RUN` finds a lineage among 100,000 runs, without
# loading every row.
NAMES_FILE = Path("gitexp") / "cache" / "runs-v7-names.marshal"
# The entries (and their summaries) added since CACHE_FILE was written, where that is large.
DELTA_FILE = Path("gitexp") / "cache" / "runs-v7-delta.marshal"
DELTA_FROM = 20_000  # entries of CACHE_FILE from which new ones are written to DELTA_FILE
OBSOLETE_FILES = tuple(Path("gitexp") / "cache" / name for name in (  # what earlier versions wrote
    "runs-v1.marshal", "runs-v2.marshal", "runs-v2-summaries.marshal", "runs-v3.marshal",
    "runs-v3-summaries.marshal", "runs-v4.marshal", "runs-v4-summaries.marshal", "runs-v4-names.marshal",
    "runs-v4-delta.marshal", "runs-v5.marshal", "runs-v5-summaries.marshal", "runs-v5-names.marshal",
    "runs-v5-origins.marshal", "runs-v5-delta.marshal", "runs-v6.marshal", "runs-v6-summaries.marshal",
    "runs-v6-names.marshal", "runs-v6-delta.marshal"))
# A row: RunRecord.name, .status, .start, .duration, .base_commit; the params flattened (as
# fields.flatten does) when no key at any level has a dot or is not text, else None; the last
# value of each metric but system/ ones, when each of those has one, else None; the (min, max) of
# each of those metrics, when each has both, else None; RunRecord.origin.
ROW_FIELDS = ("name", "status", "start", "duration", "base_commit", "flat_params", "lasts", "extremes", "origin")
Row = tuple[str, str, str | None, float | None, str | None, dict[str, Any] | None, dict[str, Any] | None,
            dict[str, tuple[Any, Any]] | None, tuple[str, str] | None]
# A row is read through these, never by position. It stays a plain tuple, which is what marshal
# stores and reads back: a record type would cost a conversion per run on every listing, while an
# itemgetter reads a field as fast as an index does.
row_name: Callable[[Row], str] = itemgetter(0)
row_status: Callable[[Row], str] = itemgetter(1)
row_start: Callable[[Row], str | None] = itemgetter(2)
row_duration: Callable[[Row], float | None] = itemgetter(3)
row_base_commit: Callable[[Row], str | None] = itemgetter(4)
row_flat_params: Callable[[Row], dict[str, Any] | None] = itemgetter(5)
row_lasts: Callable[[Row], dict[str, Any] | None] = itemgetter(6)
row_extremes: Callable[[Row], dict[str, tuple[Any, Any]] | None] = itemgetter(7)
row_origin: Callable[[Row], tuple[str, str] | None] = itemgetter(8)
# The meta keys that name the run a run came from, by precedence: one it was forked from, or reruns.
ORIGINS = ("forked_from", "rerun_of")


def make_row(meta: dict[str, Any], params: dict[str, Any], metrics: dict[str, Any]) -> Row | None:
    """The row of a run: the values RunRecord's properties would give (ROW_FIELDS), or None."""
    try:
        base_commit = (meta.get("git") or {}).get("commit")
    except AttributeError:
        return None  # a git entry that is not a mapping: the properties say what is wrong
    flat: dict[str, Any] = {}
    plain = flatten_plain(params, "", flat)
    lasts = _lasts(metrics)
    return (meta.get("name") or "", meta.get("status", "RUNNING"), meta.get("start"), meta.get("duration"),
            base_commit, flat if plain else None, lasts, None if lasts is None else _extremes(metrics, lasts),
            origin(meta))


def origin(meta: dict[str, Any]) -> tuple[str, str] | None:
    """(meta key of ORIGINS, run id) of the run a run came from, or None."""
    for key in ORIGINS:
        source = meta.get(key)
        if type(source) is str and source:
            return key, source
    return None


def _lasts(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The last value of each metric but system/ ones; None unless each of those has one."""
    lasts = {}
    for key, summary in metrics.items():
        if type(key) is not str:
            return None
        if key.startswith("system/"):
            continue
        if type(summary) is not dict or "last" not in summary:
            return None
        lasts[key] = summary["last"]
    return lasts


def _extremes(metrics: dict[str, Any], lasts: dict[str, Any]) -> dict[str, tuple[Any, Any]] | None:
    """(min, max) of each metric of *lasts*; None unless each has both."""
    extremes = {}
    for key in lasts:
        summary = metrics[key]
        if "min" not in summary or "max" not in summary:
            return None
        extremes[key] = (summary["min"], summary["max"])
    return extremes


def flatten_plain(data: dict[str, Any], prefix: str, out: dict[str, Any]) -> bool:
    """fields.flatten(data) into *out*, or False (*out* then incomplete) at a key that is not text or
    has a dot: for such params a dotted path can name two things, and only a lookup tells which."""
    for key, value in data.items():
        if type(key) is not str or "." in key:
            return False
        if isinstance(value, dict) and value:
            if not flatten_plain(value, f"{prefix}{key}.", out):
                return False
        else:
            out[prefix + key] = value
    return True


def share(value: Any, memo: dict[str, str]) -> Any:
    """*value* with equal strings made one object, through *memo*.

    marshal writes a string that several entries hold once and reads it back as one object, which
    halves the size of the cache and the time to load it. Only strings are shared (immutable).
    """
    kind = type(value)
    if kind is str:
        return memo.setdefault(value, value)
    if kind is dict:
        # Numbers are most values: kept without a call each (100,000 runs not cached yet: 3 s less).
        same = memo.setdefault
        return {(same(k, k) if type(k) is str else k):
                (v if (t := type(v)) in _SCALARS else same(v, v) if t is str else share(v, memo))
                for k, v in value.items()}
    if kind is list:
        return [share(v, memo) for v in value]
    if kind is tuple:
        return tuple(v if type(v) in _SCALARS else share(v, memo) for v in value)
    return value


_SCALARS = frozenset((float, int, bool, type(None)))


def share_row(row: Row | None, memo: dict[str, str]) -> Row | None:
    """share(row, memo), knowing a row's shape (make_row's): the general walk was a tenth of reading
    100,000 runs from git. tests/test_runs.py holds the two equal, string for string."""
    if row is None:
        return None
    same = memo.setdefault
    name, status, start, duration, base_commit, flat, lasts, extremes, came_from = row
    if flat is not None:
        flat = {same(k, k): (v if (t := type(v)) in _SCALARS else same(v, v) if t is str else share(v, memo))
                for k, v in flat.items()}
    if lasts is not None:
        lasts = {same(k, k): (v if type(v) in _SCALARS else _shared(v, memo)) for k, v in lasts.items()}
    if extremes is not None:
        extremes = {same(k, k): (pair if type(pair) is tuple and type(pair[0]) in _SCALARS and type(pair[1]) in
                                 _SCALARS else share(pair, memo)) for k, pair in extremes.items()}
    return (_shared(name, memo), _shared(status, memo), _shared(start, memo), _shared(duration, memo),
            _shared(base_commit, memo), flat, lasts, extremes, None if came_from is None else share(came_from, memo))


def shared_row(meta: dict[str, Any], params: dict[str, Any], metrics: dict[str, Any],
               memo: dict[str, str]) -> Row | None:
    """share_row(make_row(meta, params, metrics), memo), made in one pass: reading 100,000 runs
    from git made each row and then walked it again (a fifth of their cost). make_row and
    share_row stay the reference; tests/test_runs.py holds the two equal."""
    try:
        base_commit = (meta.get("git") or {}).get("commit")
    except AttributeError:
        return None
    same = memo.setdefault
    flat: dict[str, Any] = {}
    plain = _flatten_shared(params, "", flat, memo)
    lasts: dict[str, Any] = {}
    extremes: dict[str, tuple[Any, Any]] = {}
    each_last, each_pair = True, True
    for key, summary in metrics.items():
        if type(key) is not str:
            each_last = False
            break
        if key.startswith("system/"):
            continue
        if type(summary) is not dict or "last" not in summary:
            each_last = False
            break
        key = same(key, key)
        last = summary["last"]
        lasts[key] = last if type(last) in _SCALARS else share(last, memo)
        if not each_pair:
            continue
        if "min" not in summary or "max" not in summary:
            each_pair = False
            continue
        low, high = summary["min"], summary["max"]
        extremes[key] = (low, high) if type(low) in _SCALARS and type(high) in _SCALARS else share((low, high), memo)
    came_from = origin(meta)
    return (_shared(meta.get("name") or "", memo), _shared(meta.get("status", "RUNNING"), memo),
            _shared(meta.get("start"), memo), _shared(meta.get("duration"), memo), _shared(base_commit, memo),
            flat if plain else None, lasts if each_last else None, extremes if each_last and each_pair else None,
            None if came_from is None else share(came_from, memo))


def _shared(value: Any, memo: dict[str, str]) -> Any:
    kind = type(value)
    return value if kind in _SCALARS else memo.setdefault(value, value) if kind is str else share(value, memo)


def _flatten_shared(data: dict[str, Any], prefix: str, out: dict[str, Any], memo: dict[str, str]) -> bool:
    """flatten_plain, its keys and values shared through *memo* as they go in."""
    same = memo.setdefault
    for key, value in data.items():
        if type(key) is not str or "." in key:
            return False
        if isinstance(value, dict) and value:
            if not _flatten_shared(value, f"{prefix}{key}.", out, memo):
                return False
        else:
            name = prefix + key
            out[same(name, name)] = value if (kind := type(value)) in _SCALARS else \
                same(value, value) if kind is str else share(value, memo)
    return True


def known_names(commondir: Path) -> dict[str, str] | None:
    """From NAMES_FILE: the name of each cached run's commit (a commit not in it is not known); None without it."""
    return names_and_origins(commondir)[0]


def names_and_origins(commondir: Path) -> tuple[dict[str, str] | None, dict[str, tuple[str, str]] | None]:
    """From NAMES_FILE, read once: known_names(), and (meta key, run id) of the run each commit it names
    came from, for those that came from one (a commit it names came from none); None, None without it."""
    # The names and origins in one file: written as two, a reader could take one writer's names
    # with another's origins, and miss the origin of a run whose name it knows.
    data = cachefile.load(commondir / NAMES_FILE)
    if type(data) is not dict or type(data.get("names")) is not dict or type(data.get("origins")) is not dict:
        return None, None
    return data["names"], data["origins"]


def _load(path: Path) -> dict[str, Any]:
    loaded = cachefile.load(path)
    return loaded if isinstance(loaded, dict) else {}  # none, or not what this code writes: rebuild from git


class Rows:
    """The listing rows of the cached runs. CACHE_FILE holds those it was written with as one piece
    of marshal bytes, read when the first row is asked for: load_runs() makes a record per run
    without them (at 100,000 runs they are three quarters of the time to load the cache)."""

    def __init__(self, data: bytes | None = None, commits: dict[str, Any] | None = None, count: int = 0,
                 recent: dict[str, Row | None] | None = None) -> None:
        """*data*: a list of rows marshalled, those of the first *count* keys of *commits*, in order."""
        self._data, self._commits, self._count = data, commits, count
        self._stored: dict[str, Row | None] | None = None if data is not None else {}
        self._reading = threading.Lock()  # (records of one load_runs may be listed from several threads: the UI)
        self.recent = recent or {}  # those of DELTA_FILE
        self.added: dict[str, Row | None] = {}

    def stored(self) -> dict[str, Row | None]:
        """CACHE_FILE's rows ({} where they cannot be read: the records then read their meta)."""
        with self._reading:
            if self._stored is None:
                collecting = gc.isenabled()
                gc.disable()  # (as load_runs: the cyclic GC would walk 100,000 new rows again and again)
                try:
                    found = marshal.loads(self._data or b"")
                except (EOFError, ValueError, TypeError):
                    found = None
                finally:
                    if collecting:
                        gc.enable()
                commits = self._commits
                sound = type(found) is list and len(found) == self._count and commits is not None
                self._stored = dict(zip(itertools.islice(commits or (), self._count), found, strict=True)) \
                    if sound else {}
                self._data = self._commits = None
            return self._stored

    def get(self, commit: str) -> Row | None:
        """The row of a cached run's commit; None for a run too unusual for one, or not cached."""
        return self.get_many([commit])[0]

    def get_many(self, commits: list[str]) -> list[Row | None]:
        """[get(commit) for commit in commits], without a call per run."""
        added, recent, stored, width = self.added, self.recent, self.stored(), len(ROW_FIELDS)
        return [row if type(row := added[c] if c in added else recent[c] if c in recent else stored.get(c)) is tuple
                and len(row) == width else None for c in commits]


class Summaries:
    """The summaries of the cached runs, read from SUMMARIES_FILE when the first one is asked for
    (those of DELTA_FILE, *recent*, are read with the entries), and their listing *rows*."""

    def __init__(self, path: Path, recent: dict[str, bytes] | None = None, rows: Rows | None = None) -> None:
        self.path = path
        # Marshal bytes, or (meta, params, metrics) as Cache.add was handed them: a first listing of
        # 100,000 runs turned each into bytes as it was read (0.25 s), though a child writes the
        # file after the process ends (cachefile.later) and the listing reads few of them.
        self.added: dict[str, bytes | tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        self.recent = recent or {}
        self.rows = rows if rows is not None else Rows()
        self._stored: dict[str, bytes] | None = None

    def stored(self) -> dict[str, bytes]:
        if self._stored is None:
            self._stored = _load(self.path)
        return self._stored

    def read(self, commit: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
        """(meta, params, metric summaries) of a run commit, or None when the cache lacks them."""
        data = self.added.get(commit) or self.recent.get(commit) or self.stored().get(commit)
        try:
            # (An added one as bytes first: the caller gets its own copy, as from the file.)
            found = marshal.loads(marshal.dumps(data) if type(data) is tuple else data)  # type: ignore[arg-type]
        except (EOFError, ValueError, TypeError):  # none, or not what this code writes
            return None
        return found if type(found) is tuple and len(found) == 3 else None

    def added_bytes(self) -> dict[str, bytes]:
        """The added summaries, each as marshal bytes (one that marshal cannot store left out)."""
        out = {}
        for commit, data in self.added.items():
            try:
                out[commit] = data if type(data) is bytes else marshal.dumps(data)
            except ValueError:
                continue
        return out

    def row(self, commit: str) -> Row | None:
        """The listing row of a cached run's commit, or None."""
        return self.rows.get(commit)

    def rows_of(self, commits: list[str]) -> list[Row | None]:
        """[row(commit) for commit in commits]."""
        return self.rows.get_many(commits)


class Cache:
    """The cached runs of CACHE_FILE (their commits loaded at once, their rows when first used),
    extended by add(), written back by save()."""

    def __init__(self, commondir: Path, load: bool = True) -> None:
        """*load*: False for a cache that starts empty (and must not be saved: it would lose the file's entries)."""
        self.commondir = commondir
        self.path = commondir / CACHE_FILE
        data = _load(self.path) if load else {}
        listed, rows = data.get("commits"), data.get("rows")
        if type(listed) is not list or type(rows) is not bytes:
            listed, rows = [], None  # none, or not written by this code: rebuild from git
        # Every cached run's commit, in CACHE_FILE's order, then the delta's (an ordered set).
        self.commits: dict[str, None] = dict.fromkeys(listed)
        self.stored = len(self.commits)  # runs of CACHE_FILE itself
        delta = _load(commondir / DELTA_FILE) if listed else {}
        recent, recent_summaries = delta.get("rows"), delta.get("summaries")
        if type(recent) is not dict or type(recent_summaries) is not dict:
            recent, recent_summaries = {}, {}
        self.commits.update(dict.fromkeys(recent))
        self.rows = Rows(rows, self.commits, self.stored, recent)
        self.summaries = Summaries(commondir / SUMMARIES_FILE, recent_summaries, self.rows)
        self.dirty = False
        self._memo: dict[str, str] = {}

    def add(self, commit: str, meta: dict[str, Any], params: dict[str, Any],
            metrics: dict[str, Any], plain: bool = False) -> tuple[bool, Row | None]:
        """Keep a run commit read from git for save(): (True, its row), or (False, None) when
        marshal cannot store it (a YAML value such as a timestamp, from another tool): that run is
        read from git each time. *plain*: the three were parsed from JSON, which marshal stores,
        and nothing else holds them: they are turned into bytes only when saved (Summaries.added)."""
        try:
            self.summaries.added[commit] = (meta, params, metrics) if plain else marshal.dumps((meta, params, metrics))
        except ValueError:
            return False, None
        row = self.rows.added[commit] = shared_row(meta, params, metrics, self._memo)
        self.commits[commit] = None
        self.dirty = True
        return True, row

    def _save_names(self, rows: dict[str, Row | None], whole: bool) -> None:
        """NAMES_FILE: what get_run asks of every run to find one by its name or handle, and `git exp
        log RUN` to find its lineage. *whole*: of the runs of *rows* alone; else the file's, brought up
        to date with *rows* (the runs added), without reading every row."""
        named, origins = (None, None) if whole else names_and_origins(self.commondir)
        if named is None or origins is None:
            named, origins = {}, {}
            if not whole:
                rows = {**self.rows.stored(), **self.rows.recent, **rows}
        for commit, row in rows.items():
            if row is not None:
                named[commit] = row_name(row)
                if (came_from := row_origin(row)) is not None:
                    origins[commit] = came_from
        cachefile.save_behind([(self.commondir / NAMES_FILE, {"names": named, "origins": origins})])

    def save(self, order: Iterable[str], prune: bool, delta_from: int = DELTA_FROM) -> None:
        """Write the entries of the commits in *order* first, in that order (load_runs': the next
        one then finds them in memory in the order it reads them), then, unless *prune*, the others.

        Only entries with a summary are written: one whose summary got lost (the files of two
        processes crossed) is read from git again next time, and so mended.

        Where CACHE_FILE holds *delta_from* entries or more, and the entries added since it was
        written are no more than a twentieth of those, the added ones go to DELTA_FILE alone: a
        sweep's few new runs do not rewrite 100 MiB of cache each listing. Pruning waits for the
        next whole write.
        """
        if not self.dirty:
            return
        files = [self.path, self.summaries.path, *(self.commondir / name for name in (NAMES_FILE, DELTA_FILE))]
        # (Weighed by what it writes: a sweep's few new runs beside 100,000 are no work for a child.)
        weight = len(self.rows.recent) + len(self.rows.added)
        cachefile.later(partial(self._save, list(order), prune, delta_from), files,
                        weight if self._delta_only(weight, delta_from) else len(self.commits))

    def _delta_only(self, recent: int, delta_from: int) -> bool:
        """Whether a save of *recent* entries added since CACHE_FILE was written goes to DELTA_FILE alone."""
        return self.stored >= delta_from and recent * 20 <= self.stored

    def _save(self, order: list[str], prune: bool, delta_from: int) -> None:
        added, added_summaries = self.rows.added, self.summaries.added_bytes()
        recent = {**self.rows.recent, **{c: added[c] for c in added_summaries if c in added}}
        if self._delta_only(len(recent), delta_from):
            self._save_names(added, whole=False)
            summaries = {**self.summaries.recent, **added_summaries}
            cachefile.save_behind([(self.commondir / DELTA_FILE, {
                "rows": {c: row for c, row in recent.items() if c in summaries},
                "summaries": {c: summaries[c] for c in recent if c in summaries}})])
            return
        summaries = {**self.summaries.stored(), **self.summaries.recent, **added_summaries}
        stored = self.rows.stored()
        rows = {**stored, **recent}
        if 0 < len(recent) <= len(stored):
            # A few new rows share their strings with the stored ones, so that each whole write does
            # not add another copy of every key (marshal writes an object held twice once). (Rows
            # read from git all at once already share theirs: Cache.add's memo.)
            memo: dict[str, str] = {}
            for row in itertools.islice(stored.values(), 8):
                share(row, memo)
            rows.update((c, share_row(row, memo)) for c, row in recent.items())
        kept = [commit for commit in order if commit in self.commits]
        if not prune:
            listed = set(kept)
            kept += [commit for commit in self.commits if commit not in listed]
        kept = [commit for commit in dict.fromkeys(kept) if commit in summaries]
        rows = {commit: rows.get(commit) for commit in kept}
        self._save_names(rows, whole=True)
        cachefile.save_behind([(self.summaries.path, {commit: summaries[commit] for commit in kept}),
                               (self.path, {"commits": kept,
                                            "rows": marshal.dumps(list(rows.values()))})], then=self._replaced)

    def _replaced(self) -> None:
        """After CACHE_FILE and SUMMARIES_FILE were written whole: remove what they replace."""
        with contextlib.suppress(OSError):
            (self.commondir / DELTA_FILE).unlink(missing_ok=True)  # its entries are in the files now
            for old in OBSOLETE_FILES:  # this version's files replace them: they would only take room
                (self.commondir / old).unlink(missing_ok=True)
