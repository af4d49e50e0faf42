"""The listing of every run, kept between two `git exp ls` as the columns it shows.

At 100,000 runs a listing made from the runs' records spends most of its time before the first
line of text: loading 100,000 rows of the run cache, a record per run, the handles of 100,000 ids,
and then taking the rows apart again into columns. What a plain `git exp ls` shows depends only
on which commits the run refs point at, so once listed, its columns are kept in
`<common git dir>/gitexp/cache/listing-v3.marshal` beside the refs they were made from, and the
next listing of the same refs reads the columns alone. Whether the refs are the same is told by
the stat of packed-refs and the loose refs (gitfiles.refs_state, kept in STATE_FILE), else by
reading them all (0.15 s at 100,000 runs).

When a few runs were made, moved or removed since, the kept columns are brought up to date with
those runs alone (_updated) rather than every run listed again. A sweep's new runs are loose refs
beside the packed ones: while packed-refs has the stat it had and no loose ref of then is gone,
the refs now are the kept ones with the loose ones over them, and the 100,000 are not read. When
those runs are newer than every kept one, and nothing else changed, they alone are written
(listingdelta), not the 30 MiB of every run's columns again.

A run live on this machine is shown as its journal says it is now (as load_runs reads it): it is
read again the same way, as if its ref had moved, into the listing shown, while the listing kept
holds every run as its ref has it (a live run's journal values are never kept).

The file holds derived data (deleting it is always safe) and is trusted only while the refs are
exactly those it was made from; with a damaged run (which must be warned of) it is not written.
Listing.columns() answers what table.run_columns answers for the same runs: tests/test_listing.py
compares the two on varied runs, before and after changes. A change to what run_columns shows
needs a new VERSION, or listings kept by the previous code would show the old columns.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

from gitexp.git.gitfiles import only_loose_changed, refs_state
from gitexp.git.lazyrepo import open_repository
from gitexp.git.reader import RepoReader
from gitexp.store import cachefile, names, runindex
from gitexp.store.names import REF_PREFIX
from gitexp.store.runcache import row_extremes
from gitexp.store.runs import RunList, before_listing, listing_rows, live_here, load_runs, run_handles
from gitexp.views import listingdelta
from gitexp.views.extremes import MetricExtremes, kept_form
from gitexp.views.table import (
    BASE_COLUMNS,
    column_varies,
    compared_maps,
    differing_limit,
    key_column,
    quoted_key,
    row_values,
)

CACHE_FILE = Path("gitexp") / "cache" / "listing-v3.marshal"
STATE_FILE = Path("gitexp") / "cache" / "listing-v3-state.marshal"  # the refs it is known to be current for
DELTA_FILE = Path("gitexp") / "cache" / "listing-v3-delta.marshal"  # runs newer than CACHE_FILE's (listingdelta)
DELTA_FROM = 20_000  # runs of CACHE_FILE from which up to a twentieth as many new ones go to DELTA_FILE alone
VERSION = 3  # 3: each metric's minima and maxima kept as marshal bytes of their own (MetricExtremes)
OBSOLETE_FILES = tuple(Path("gitexp") / "cache" / name for name in (
    "listing-v1.marshal", "listing-v1-state.marshal", "listing-v2.marshal", "listing-v2-state.marshal",
    "listing-v2-delta.marshal"))
_HEADS = ("params", "metrics")
Extremes = dict[str, tuple[list[Any], list[Any]]]
_MISSING = object()  # a run without the key, in a column's values as `differing` compares them


class Listing:
    """The columns of a listing of runs, newest first, as table.run_columns computes them.

    keys[head][key] is (column, values, absent): the name of the key's column, its values as
    run_columns shows them (None where a run lacks the key, or what a longer path finds), and the
    positions of the runs without the key (for telling which columns differ, a missing key counts
    as a value).

    extremes[key] is (minima, maxima) of each metric key of keys["metrics"], for each run that has
    the key (None for the others), or None for all when a run's listing row lacks them: what a
    --where or --sort of metrics.<key>.min or .max reads (gitexp.views.selection). A kept listing's
    are read a metric at a time (gitexp.views.extremes).
    """

    __slots__ = ("base", "basis", "changed", "committed", "experiments", "extremes", "handles", "ids", "keys", "plain",
                 "refs", "root", "state")

    def __init__(self, refs: dict[str, str] | None, ids: list[str], handles: list[str], experiments: list[str],
                 base: list[list[Any]], keys: dict[str, dict[str, tuple[str, list[Any], list[int]]]],
                 plain: bool, extremes: Extremes | MetricExtremes | None = None) -> None:
        # ref -> commit of every run, for a listing of every run to be kept (remember()); else None.
        self.refs = refs
        self.ids, self.handles, self.experiments, self.base, self.keys = ids, handles, experiments, base, keys
        # Whether each run has a listing row with plain params: a run without a key then shows None
        # in its column, whatever the key (a longer path finds nothing).
        self.plain = plain
        self.extremes = kept_form(extremes, len(ids))
        # Whether it holds what the runs' refs hold (no live run's journal values): it may be kept
        # while a run is live. And, for one that shows live runs, the listing of every run as their
        # refs have them, to keep (current() sets both).
        self.committed = False
        self.basis: Listing | None = None
        self.changed = 0  # runs read again to bring the kept listing up to date into this one
        # The refs_state under which *refs* are the runs' refs, when known: the same state later
        # means the same refs, unread.
        self.state: Any = None
        # (token, listing) of CACHE_FILE when this listing is that one's runs with newer runs put
        # before them, and nothing else changed: remember() then writes those runs alone.
        self.root: tuple[str, Listing] | None = None

    def to_keep(self) -> Listing | None:
        """What remember() should keep once this listing (current()'s) is shown: the listing of the
        runs' refs behind one that shows live runs, or this one when it was brought up to date; None
        for nothing new."""
        return self.basis if self.basis is not None else self if self.refs is not None else None

    def __len__(self) -> int:
        return len(self.ids)

    def of_experiment(self, experiment: str) -> Listing:
        """The runs of *experiment* alone, in the same order (an experiment name that cannot be one:
        the error load_runs gives)."""
        names.check_experiment(experiment)
        return self.subset([i for i, exp in enumerate(self.experiments) if exp == experiment])

    def subset(self, picked: list[int], extremes: bool = True) -> Listing:
        """The runs at the positions *picked*, in that order (no refs: not a listing of every run);
        without *extremes*, without their metrics' minima and maxima (a listing to show, not query)."""
        where = {old: new for new, old in enumerate(picked)}

        getter = itemgetter(*picked) if len(picked) > 1 else None  # a C loop: 100,000 picks in a few ms

        def pick(values: list[Any]) -> list[Any]:
            return list(getter(values)) if getter is not None else [values[i] for i in picked]
        keys = {head: {key: (column, pick(values), [where[i] for i in absent if i in where])
                       for key, (column, values, absent) in part.items()} for head, part in self.keys.items()}
        kept = None
        if self.extremes is not None and extremes:
            try:
                kept = {key: (pick(low), pick(high)) for key, (low, high) in self.extremes.whole().items()}
            except ValueError:  # a damaged file's: not known, as for runs without them (queries read the runs)
                kept = None
        return Listing(None, pick(self.ids), pick(self.handles), pick(self.experiments),
                       [pick(c) for c in self.base], keys, self.plain, kept)

    def columns(self, all_columns: bool = False, only_changed: bool = False,
                full_ids: bool = False) -> tuple[list[str], list[list[Any]]]:
        """What table.run_columns(records, None, all_columns, only_changed, full_ids) answers for these runs."""
        count = len(self.ids)
        extra: dict[str, list[Any]] = {}
        limit = differing_limit(all_columns, only_changed)
        for head in _HEADS:
            # Keys that no listed run has are not columns of this listing (another experiment's).
            present = sorted(key for key, (_, _, absent) in self.keys[head].items() if len(absent) < count)
            if count > 1:
                present = [key for key in present if column_differs(*self.keys[head][key][1:])]
            for key in present[:limit]:
                column, values, _ = self.keys[head][key]
                if column not in BASE_COLUMNS:
                    extra.setdefault(column, values)
        names = [*BASE_COLUMNS, *extra]
        values = [self.ids if full_ids else self.handles, *self.base, *extra.values()]
        if only_changed and count > 1:
            kept = [(c, v) for c, v in zip(names, values, strict=True) if c in ("id", "name") or column_varies(v)]
            return [c for c, _ in kept], [v for _, v in kept]
        return names, values


def column_differs(values: list[Any], absent: list[int]) -> bool:
    """Whether a key's column holds two different values (table.differing's test), a missing key
    counting as a value."""
    if absent:
        marked = list(values)
        for i in absent:
            marked[i] = _MISSING
        return column_varies(marked)
    if column_varies(values[:PROBE]):
        return True  # most columns shown differ within their first rows: no pass over all of them
    kinds = set(map(type, values))
    if len(kinds) == 1 and kinds <= _HASHABLE:
        try:
            if len(set(values)) == 1:
                return False  # one value of one type: the usual case for a constant column, in one pass
        except TypeError:
            pass
    return column_varies(values)


_HASHABLE = frozenset((str, int, float, bool, type(None)))
PROBE = 64  # rows column_differs compares one by one before it takes a constant column's passes


def _sound(listing: Listing) -> bool:
    """Whether a listing read back has the shape of() gives one: a file that another version wrote, or
    that was damaged, must not fail the listing that reads it."""
    count = len(listing.ids) if type(listing.ids) is list else -1
    base = listing.base if type(listing.base) is list else []
    keys = listing.keys
    return count >= 0 and len(base) == len(BASE_COLUMNS) - 1 and \
        all(type(c) is list and len(c) == count for c in (listing.handles, listing.experiments, *base)) and \
        type(keys) is dict and set(keys) == set(_HEADS) and all(type(part) is dict for part in keys.values()) and \
        all(type(entry) is tuple and len(entry) == 3 and type(entry[0]) is str and type(entry[1]) is list
            and len(entry[1]) == count and type(entry[2]) is list for part in keys.values() for entry in part.values()
            ) and _sound_extremes(listing.extremes, keys["metrics"], count)


def _sound_extremes(extremes: MetricExtremes | None, metrics: dict[str, Any], count: int) -> bool:
    # (each pair is checked when it is read: MetricExtremes)
    return extremes is None or (extremes.count == count and set(extremes) == set(metrics))


def current(repo: RepoReader | str | os.PathLike[str] | None = None) -> Listing | None:
    """The listing of every run as it is now: the kept one when it was made from the refs the runs
    have now, else the kept one brought up to date when few runs changed; with runs live on this
    machine, their journals' values in place of their refs'. None for none (load the runs, then
    of_records() and remember()); else remember() its to_keep() once shown."""
    repo = open_repository(repo)
    live = before_listing(repo)
    found = _of_refs(repo)
    if found is None or not live:
        return None if found is None else found[0]
    # The live runs read again with their journals, as runs whose refs moved would be; the listing
    # of the refs is what is kept. (The refs it was made from: a run made since is not in it.)
    listing = found[0]
    at = [i for i, run_id in enumerate(listing.ids) if run_id in live]  # (the listing's runs are the refs')
    if not at:
        return listing
    refs = found[1]()
    made = {ref: refs[ref] for ref in (f"{REF_PREFIX}{listing.experiments[i]}/{listing.ids[i]}" for i in at)
            if ref in refs}
    shown = _updated(repo, listing, refs, refs, live=True, made=made)  # (those runs moved, none gone)
    if shown is not None:
        shown.refs, shown.basis = None, listing.to_keep()
    return shown


def _of_refs(repo: RepoReader) -> tuple[Listing, Callable[[], dict[str, str]]] | None:
    """current(), every run as its ref has it (a live one too): the kept listing, brought up to date,
    and what gives the refs it is of."""
    state = refs_state(repo.gitdir, repo.commondir, REF_PREFIX)
    data = cachefile.load(repo.commondir / CACHE_FILE)
    if type(data) is not dict or data.get("version") != VERSION:
        return None
    try:
        listing = _of_data(data)
        if listing is None:
            return None
        token = data["token"]
        root = (token, listing)
        refs_of: Callable[[], dict[str, str]] = partial(marshal.loads, data["refs"])
        delta = cachefile.load(repo.commondir / DELTA_FILE)
        if type(delta) is dict and delta.get("version") == VERSION and delta.get("of") == token:
            both = listingdelta.joined(data, delta)
            if both is not None and (fuller := _of_data(both[0])) is not None:
                listing, token = fuller, delta["token"]
                refs_of = partial(_refs_with, data["refs"], both[1])
        listing.root = root
        # The same packed-refs file and loose refs as when it was made, or last found current: the
        # same refs, without reading 100,000 of them.
        stored = cachefile.load(repo.commondir / STATE_FILE)
        if state is None or stored != (token, state):
            kept = refs_of()
            after = _after_loose_changes(stored, token, state, kept)
            refs, made = after if after is not None else (repo.refs(REF_PREFIX), None)
            refs_of = partial(dict, refs)
            if made or (made is None and kept != refs):
                found = _updated(repo, listing, kept, refs, live=False, made=made)
                if found is None:
                    return None
                listing = found
                if made is not None:
                    listing.state = state
            elif state is not None:  # (taken before the refs were read: a change since is a change to it)
                cachefile.save(repo.commondir / STATE_FILE, (token, state))
                runindex.confirm(repo, state, refs)
    except (KeyError, TypeError, ValueError, EOFError):
        return None
    listing.committed = True
    return listing, refs_of


def _of_data(data: dict[str, Any]) -> Listing | None:
    """The listing of a file's dict of listingdelta.FIELDS; None where it has not the shape of one."""
    listing = Listing(None, *(data[field] for field in listingdelta.FIELDS))
    return listing if _sound(listing) else None


def _data(listing: Listing) -> dict[str, Any]:
    return {field: getattr(listing, field) for field in listingdelta.FIELDS}


def _stored(listing: Listing) -> dict[str, Any]:
    """_data(listing) as CACHE_FILE keeps it: each column's repeated values one object (cachefile.shared)."""
    return _data(listing) | {
        "experiments": cachefile.shared(listing.experiments),
        "base": [cachefile.shared(column) for column in listing.base],
        "keys": {head: {key: (column, cachefile.shared(values), absent)
                        for key, (column, values, absent) in part.items()} for head, part in listing.keys.items()}}


def _refs_with(stored: bytes, newer: dict[str, str]) -> dict[str, str]:
    """The refs of CACHE_FILE's listing (*stored*, marshal bytes) and those of its delta's runs."""
    refs: dict[str, str] = marshal.loads(stored)
    refs.update(newer)
    return refs


def _after_loose_changes(stored: Any, token: str, state: Any, kept: dict[str, str]) -> \
        tuple[dict[str, str], dict[str, str]] | None:
    """The refs now and those of them made or moved since *kept* (the refs of the listing of
    *token*), from the loose refs alone: packed-refs has the same stat as in the *stored* state of
    that listing, and no loose ref of then is gone. A sweep's new runs are loose refs beside 100,000
    packed ones, which need not be read (0.15 s) and compared (0.1 s) for ten. None when that does
    not tell: read every ref."""
    if type(stored) is not tuple or len(stored) != 2 or stored[0] != token or not only_loose_changed(stored[1], state):
        return None
    if stored[1][0] is None:
        return None  # (no packed-refs: every ref is a loose one, read with the state already)
    made = {ref: commit for ref, commit in state[1].items() if kept.get(ref) != commit}
    return ({**kept, **made} if made else kept), made


def remember(repo: RepoReader | str | os.PathLike[str] | None, listing: Listing, delta_most: int | None = None) -> None:
    """Keep *listing*, of every run of *repo*, for current(), unless the runs changed since it was made.

    When it is the kept listing's runs with up to *delta_most* newer runs before them (by default a
    twentieth of a kept listing of DELTA_FROM runs or more, else none), those runs alone are written,
    to DELTA_FILE."""
    repo = open_repository(repo)
    files = [repo.commondir / name for name in (CACHE_FILE, STATE_FILE, DELTA_FILE, runindex.INDEX_FILE,
                                                runindex.DELTA_FILE)]
    # (Weighed by what it writes: a sweep's few new runs beside 100,000 are no work for a child.)
    newer = _newer_count(listing, delta_most)
    cachefile.later(partial(_remember, repo, listing, delta_most), files,
                    len(listing.ids) if newer is None else newer)


def _remember(repo: RepoReader, listing: Listing, delta_most: int | None) -> None:
    # The state first: refs that change after it are then never taken for the ones it describes.
    state = refs_state(repo.gitdir, repo.commondir, REF_PREFIX)
    live = live_here(repo)
    if listing.refs is None or (live and not listing.committed) or \
            ((state is None or state != listing.state) and repo.refs(REF_PREFIX) != listing.refs):
        # A run was made or moved meanwhile: this listing is already out of date. Or a run is live:
        # the listing may hold its journal's values, which its ref does not.
        return
    delta = _delta(listing, delta_most)
    if delta is None and live and 0 < listing.changed <= QUIET_CHANGES and \
            _age(repo.commondir / CACHE_FILE) < QUIET_SECONDS:
        # A sweep going on, a few runs changed since a listing kept moments ago: the next listing
        # brings that one up to date again (those runs alone) rather than each writing 30 MiB.
        return
    # The token ties a state to the listing it was found true of (two processes may write each file).
    # The refs as marshal bytes of their own: a listing that the state shows current need not make
    # 200,000 strings of them.
    token = os.urandom(8).hex()
    if delta is not None:
        pairs = delta["extremes"]
        files: list[tuple[Path, Any]] = [(repo.commondir / DELTA_FILE, delta | {
            "version": VERSION, "token": token,
            "extremes": None if pairs is None else {key: marshal.dumps(pair) for key, pair in pairs.items()}})]
    else:
        files = [(repo.commondir / CACHE_FILE, _stored(listing) | {
            "version": VERSION, "token": token, "refs": marshal.dumps(listing.refs),
            "extremes": None if listing.extremes is None else listing.extremes.stored()})]
    if state is not None:
        files.append((repo.commondir / STATE_FILE, (token, state)))  # once the listing it is of is written
    count = len(listing.ids)
    metrics = sorted(key for key, (_, _, absent) in listing.keys["metrics"].items() if len(absent) < count) \
        if listing.plain else None  # (a run without a listing row may have any key)
    if delta is not None:  # (the index of the kept listing was written with it, under its token)
        files += runindex.save_delta(repo, state, listing.refs, delta["of"], len(listing.ids) - len(delta["ids"]),
                                     delta["experiments"], delta["ids"], delta["base"][0], delta["handles"],
                                     delta["patches"], metrics)
    else:
        files += runindex.save(repo, state, listing.refs, listing.experiments, listing.ids, listing.base[0],
                               listing.handles, metrics, token)
    # The deltas of what is replaced go once that is written (they name another token: never used).
    cachefile.save_behind(files, then=None if delta is not None else partial(
        _drop, repo.commondir / DELTA_FILE, repo.commondir / runindex.DELTA_FILE))
    for obsolete in OBSOLETE_FILES:
        (repo.commondir / obsolete).unlink(missing_ok=True)


def _delta(listing: Listing, most: int | None) -> dict[str, Any] | None:
    """What DELTA_FILE is to hold for *listing* (remember()'s), without its version and token; None
    where the whole listing is to be written."""
    count = _newer_count(listing, most)
    if count is None:
        return None
    assert listing.root is not None and listing.refs is not None  # (_newer_count needs both)
    token, root = listing.root
    found = listingdelta.front(_data(listing), _data(root), count, listing.refs)
    return None if found is None else found | {"of": token}


def _newer_count(listing: Listing, most: int | None) -> int | None:
    """How many runs *listing* has before those of the listing it brought up to date, where DELTA_FILE
    may hold them alone (up to *most*: remember()'s); else None."""
    if listing.root is None or listing.refs is None:
        return None
    root = listing.root[1]
    count = len(listing.ids) - len(root.ids)
    if most is None:
        most = len(root.ids) // 20 if len(root.ids) >= DELTA_FROM else 0
    return count if 0 < count <= most else None


def _drop(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


# Runs times keys past which no listing is kept: where every run logs 1,500 metrics, every key's
# column of every run (not only the 8 params and 8 metrics shown) would be a second copy of the
# run cache. 100,000 runs of 6 params and 3 metrics are 900,000.
MOST_CELLS = 10_000_000
MOST_CHANGED = 1000  # runs made, moved or removed since the kept listing, past which all are listed anew
# While a run is live here, a kept listing younger than QUIET_SECONDS is not written again for
# QUIET_CHANGES changed runs or fewer.
QUIET_SECONDS, QUIET_CHANGES = 60.0, 200


def _age(path: Path) -> float:
    """Seconds since *path* was written (infinity for none)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return math.inf


def _updated(repo: RepoReader, old: Listing, kept: dict[str, str], refs: dict[str, str], live: bool,
             made: dict[str, str] | None = None) -> Listing | None:
    """*old*, made from the refs *kept*, brought to the refs *refs*: the runs removed or moved taken
    out, the runs made or moved read (*live*: as load_runs reads them) and put in their place; None
    when that is not what listing all the runs would give (too many changed, a damaged run, a run id
    in two experiments...). *made*: the refs of *refs* made or moved, when known to be all the
    changes (none gone)."""
    if made is None:
        gone = {ref for ref, commit in kept.items() if refs.get(ref) != commit}
        made = {ref: commit for ref, commit in refs.items() if kept.get(ref) != commit}
    else:
        gone = {ref for ref in made if ref in kept}
    if not old.plain or len(gone) + len(made) > MOST_CHANGED:
        return None
    records = load_runs(repo, only=[ref.rpartition("/")[2] for ref in made], live=live, refs=made) if made else \
        RunList([], {})
    if records.damaged or {f"{REF_PREFIX}{r.experiment}/{r.id}": r.commit for r in records} != made:
        return None
    new = of_records(records, with_handles=False) if records else \
        Listing({}, [], [], [], [[] for _ in old.base], {head: {} for head in _HEADS}, True, {})
    if new is None or not new.plain:
        return None
    merged, where = _merging(old, gone, new.ids, set(made))
    if merged is None:
        return None  # two runs with one id
    keys: dict[str, dict[str, tuple[str, list[Any], list[int]]]] = {}
    none_old: list[Any] = [None] * len(old.ids)
    new_known, _ = row_values(records)
    for head in _HEADS:
        keys[head] = {}
        for key in sorted({*old.keys[head], *new.keys[head]}):
            if key not in old.keys[head] and ((head == "metrics" and "." in key) or (head == "params" and any(
                    k.startswith(key + ".") for k in old.keys[head]))):
                # The old runs' column may show what they hold under another key: a stat of a shorter
                # metric key ("acc" for "acc.max"), the mapping of longer param keys ("model" of "model.layers").
                return None
            column, before, absent_before = old.keys[head].get(key, ("", none_old, list(range(len(old.ids)))))
            if key in new.keys[head]:
                column, after, absent_after = new.keys[head][key]
            else:
                after, absent_after = key_column(column, records, new_known), list(range(len(new.ids)))
            absent = sorted(k for k in (*map(where[0], absent_before), *map(where[1], absent_after))
                            if k is not None)
            keys[head][key] = (column, merged(before, after), absent)
    ids = merged(old.ids, new.ids)
    if sum(map(len, keys.values())) * len(ids) > MOST_CELLS:
        return None
    gone_ids = {ref.rpartition("/")[2] for ref in gone}
    moved = {run_id: handle for run_id, handle in zip(old.ids, old.handles, strict=True) if run_id in gone_ids} \
        if gone_ids == set(new.ids) else {}
    # Runs newer than all put in front, none gone: _merging's usual change, a sweep's.
    prepended = not gone and bool(old.ids) and bool(new.ids) and min(new.ids) > old.ids[0]
    if moved and len(moved) == len(gone_ids):  # runs moved alone: the same ids, so the same handles
        shown = merged(old.handles, [moved[run_id] for run_id in new.ids])
    else:
        # A run made or removed lengthens or shortens the handles like its own.
        ahead = names.handles_before(old.ids, old.handles, new.ids) if prepended else None
        if ahead is not None:
            shown = ahead
        else:
            handles = names.handles_after(dict(zip(old.ids, old.handles, strict=True)), ids, {*gone_ids, *new.ids})
            shown = [handles[i] for i in ids]
    extremes: Extremes | None = None
    if old.extremes is not None and new.extremes is not None:
        gaps = ([None] * len(old.ids), [None] * len(old.ids)), ([None] * len(new.ids), [None] * len(new.ids))
        extremes = {}
        try:
            for key in keys["metrics"]:
                (low_before, high_before) = old.extremes[key] if key in old.extremes else gaps[0]
                (low, high) = new.extremes[key] if key in new.extremes else gaps[1]
                extremes[key] = (merged(low_before, low), merged(high_before, high))
        except ValueError:  # a damaged file's: not known (queries of them read the runs)
            extremes = None
    found = Listing(refs, ids, shown, merged(old.experiments, new.experiments),
                    [merged(b, a) for b, a in zip(old.base, new.base, strict=True)], keys, True, extremes)
    found.changed = len({*gone, *made})
    if prepended:
        found.root = old.root
    return found


Where = Callable[[int], "int | None"]  # where a position of a column goes in the merged one


def _nowhere(_: int) -> None:
    return None


def _merging(old: Listing, gone: set[str], added: list[str],
             made: set[str]) -> tuple[Any, tuple[Where, Where]]:
    """How the columns of *old* less the runs of the refs *gone* and those of the runs *added* (both
    newest first; their refs *made*) make the columns of all, newest first as load_runs orders them
    (by run id, highest first): a function of an old column and a new one, and where each old and
    new position goes (None: nowhere); None for the function when two runs have one id."""
    if len(set(added)) != len(added):
        return None, (_nowhere, _nowhere)
    if not gone and (not added or not old.ids or min(added) > old.ids[0]):
        # The usual change: runs newer than all others came, and none went.
        offset = len(added)
        # (Where positions go as functions: maps of 100,000 positions took longer than the merge.)
        return (lambda before, after: after + before), ((lambda i: i + offset), (lambda j: j))
    if gone and gone == made:
        # Runs moved (a live run's checkpoint, or its journal read): each stays where it was.
        moved = {ref.rpartition("/")[2] for ref in gone}
        at = {run_id: i for i, run_id in enumerate(old.ids) if run_id in moved}
        if len(at) == len(added) == len(moved):
            places = [at[run_id] for run_id in added]

            def in_place(before: list[Any], after: list[Any]) -> list[Any]:
                column = list(before)
                for place, value in zip(places, after, strict=True):
                    column[place] = value
                return column
            taken = set(places)
            return in_place, ((lambda i: None if i in taken else i), places.__getitem__)
    stay = [i for i, (exp, run_id) in enumerate(zip(old.experiments, old.ids, strict=True))
            if f"{REF_PREFIX}{exp}/{run_id}" not in gone]
    order = sorted([(old.ids[i], 0, i) for i in stay] + [(run_id, 1, j) for j, run_id in enumerate(added)],
                   reverse=True)
    if len({run_id for run_id, _, _ in order}) != len(order):
        return None, (_nowhere, _nowhere)
    where: tuple[dict[int, int], dict[int, int]] = ({}, {})
    for k, (_, side, i) in enumerate(order):
        where[side][i] = k

    def merged(before: list[Any], after: list[Any]) -> list[Any]:
        parts = (before, after)
        return [parts[side][i] for _, side, i in order]
    return merged, (where[0].get, where[1].get)


def of_records(records: RunList, most_cells: int = MOST_CELLS, with_handles: bool = True) -> Listing | None:
    """The listing of *records* (as load_runs gives them); None when there are none, damaged runs
    (whose warning each listing repeats), or more than *most_cells* runs times keys. Without
    *with_handles*, its handles are the full ids (for a caller that works them out itself)."""
    if records.damaged or not records:
        return None
    known, base = row_values(records)
    compared = compared_maps(records, known)
    keys: dict[str, dict[str, tuple[str, list[Any], list[int]]]] = {}
    # How many runs have each key: for a key that all have, no run need be looked at again.
    counted = {head: Counter(itertools.chain.from_iterable(dicts)) for head, dicts in compared.items()}
    if sum(map(len, counted.values())) * len(records) > most_cells:
        return None
    for head, dicts in compared.items():
        keys[head] = {}
        counts = counted[head]
        for key in sorted(counts):
            column = f"{head}.{quoted_key(key)}"
            absent = [] if counts[key] == len(dicts) else [i for i, d in enumerate(dicts) if key not in d]
            keys[head][key] = (column, key_column(column, records, known), absent)
    handles = run_handles(records) if with_handles else {r.id: r.id for r in records}
    refs = {f"{REF_PREFIX}{r.experiment}/{r.id}": r.commit for r in records}
    # (A run without a row has None for both.)
    plain = None not in known["params"] and None not in known["metrics"]
    return Listing(refs, [r.id for r in records], [handles[r.id] for r in records],
                   [r.experiment for r in records], base, keys, plain,
                   _extremes(records, keys["metrics"]) if plain else None)


def _extremes(records: RunList, metrics: dict[str, Any]) -> Extremes | None:
    """The minima and maxima of each of *metrics* (keys) of *records*, from their listing rows."""
    found = [None if row is None else row_extremes(row) for row in listing_rows(records)]
    if None in found:
        return None
    rows = cast("list[dict[str, tuple[Any, Any]]]", found)
    extremes: Extremes = {}
    for key in metrics:
        pairs = [row.get(key, (None, None)) for row in rows]
        extremes[key] = ([low for low, _ in pairs], [high for _, high in pairs])
    return extremes
