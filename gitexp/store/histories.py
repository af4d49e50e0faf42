"""Reading metric histories (metrics/<key>.tsv): the one read_history, a fast parser, and a cache keyed by blob id.

Parsing a history costs about 2 µs a line (10,000 steps: 20 ms), mostly turning text into
floats. A blob never changes, so its parsed form is kept under the git directory, keyed by the
blob's id, and read back with marshal in a tenth of the time: a cache entry cannot go stale.
Only long histories are kept (short ones parse faster than a file opens); the oldest entries
go when the folder outgrows MAX_BYTES. Deleting the folder is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

from gitexp.errors import CorruptRunError
from gitexp.git.reader import RepoReader
from gitexp.store import cachefile, names
from gitexp.store.state import Series

HISTORY_DIR = "metrics"
TSV_HEADER = "step\ttime\tvalue\n"  # a history's first line (codec.render_rows writes the rest)
HEADER = TSV_HEADER.encode()
CACHE_DIR = Path("gitexp") / "cache" / "history-v1"
MIN_BYTES = 16 * 1024  # histories shorter than this (about 500 steps) are parsed every time
MAX_BYTES = 256 * 2**20
# The bytes of the fields gitexp writes: integer steps, times with 3 decimals, float reprs.
_FIELD_BYTES = b"0123456789+-.einfa"
_pruned = False


def history_path(key: str) -> str:
    return f"{HISTORY_DIR}/{names.key_to_path(key)}.tsv"


def read_history(repo: RepoReader, commit: str, key: str) -> Series:
    """The history of metric *key* in run commit *commit* (an empty Series when it has none);
    CorruptRunError when it cannot be read as one."""
    path = history_path(key)
    oid = repo.entry_oid(commit, path)
    if oid is None:
        return Series()
    cache = repo.commondir / CACHE_DIR / f"{oid}.marshal"
    series = _load(cache)
    if series is not None:
        return series
    data = repo.read_path(commit, path)
    where = f"history of metric {key!r} in commit {commit[:12]}"
    if data is None:  # a tree: the chunks of a long history (format 2), each cached on its own
        return _read_chunks(repo, oid, where)
    series = _parse_blob(data, where)
    if len(data) >= MIN_BYTES:
        _store(cache, series)
    return series


def chunk_tree(repo: RepoReader, commit: str, key: str) -> str | None:
    """The chunk tree of metric *key* in *commit*, when its history is one (format 2)."""
    path = history_path(key)
    oid = repo.entry_oid(commit, path)
    if oid is None or repo.read_path(commit, path) is not None:
        return None
    return oid


def _parse_blob(data: bytes, where: str) -> Series:
    try:
        return parse_history(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRunError(f"{where} is malformed: {exc}") from exc


def _read_chunks(repo: RepoReader, tree: str, where: str) -> Series:
    """A chunked history: each chunk parsed (or read from the cache, a chunk never changes) and
    checked to start at the row where the previous one ended."""
    from gitexp.store import chunks  # here: it loads the git layer's writer, which listings never need

    steps: list[int] = []
    times: list[float] = []
    values: list[float] = []
    for first, blob in chunks.chunk_blobs(repo, tree, where):
        if first != len(steps):
            raise CorruptRunError(f"{where}: chunk {first:012d}.tsv should start at row {len(steps)} "
                                  f"(a chunk is missing, or repeated)")
        cache = repo.commondir / CACHE_DIR / f"{blob}.marshal"
        part = _load(cache)
        if part is None:
            data = repo.read_blob(blob)
            part = _parse_blob(data, f"{where}, chunk {first:012d}.tsv")
            if len(data) >= MIN_BYTES:
                _store(cache, part)
        steps += part.steps
        times += part.times
        values += part.values
    return from_columns(steps, times, values)


def parse_history(data: bytes) -> Series:
    """parse_reference, several times faster on what gitexp writes, and the same on anything."""
    series = _parse_plain(data)
    if series is None:
        return parse_reference(data)  # anything unusual: the reference parser decides
    return series


def parse_reference(data: bytes) -> Series:
    """A history as the reference parser reads it: line by line, each through Series.add. ValueError
    or UnicodeDecodeError for a malformed line; CorruptRunError without the header."""
    series = Series()
    lines = data.decode().splitlines()
    if not lines or lines[0] != TSV_HEADER.rstrip("\n"):
        raise CorruptRunError("metric history does not start with the header 'step<TAB>time<TAB>value'")
    for line in lines[1:]:
        step, time, value = line.split("\t")
        series.add(int(step), float(time), float(value))
    return series


def _parse_plain(data: bytes) -> Series | None:
    """The history when *data* is lines of three non-empty fields made of _FIELD_BYTES only, else None."""
    if not data.startswith(HEADER):
        return None
    body = data[len(HEADER):]
    rows = body.count(b"\n")
    # Deleting the field bytes leaves the separators, and nothing else, in their exact order.
    if body[-1:] not in (b"\n", b"") or body.translate(None, _FIELD_BYTES) != b"\t\t\n" * rows:
        return None
    fields = body.split()
    if len(fields) != 3 * rows:  # an empty field
        return None
    try:
        steps = list(map(int, fields[0::3]))
        times = list(map(float, fields[1::3]))
        values = list(map(float, fields[2::3]))
    except ValueError:
        return None
    return from_columns(steps, times, values)


def from_columns(steps: list[int], times: list[float], values: list[float]) -> Series:
    """A Series with the summary that Series.add would have kept, logging the values one by one."""
    series = Series(steps=steps, times=times, values=values)
    top = max(steps, default=-2)
    if top >= -1:  # add() keeps the value of the highest step (from -1 up), the latest among equals
        series.last, series.last_step = values[len(steps) - 1 - steps[::-1].index(top)], top
    finite = [v for v in values if v == v]
    if finite:  # min and max keep the first of equal values, as add() does
        series.min, series.max = min(finite), max(finite)
    return series


def _load(path: Path) -> Series | None:
    loaded = cachefile.load(path)  # None when absent or unreadable: parse the blob
    if not (type(loaded) is tuple and len(loaded) == 7 and all(type(x) is list for x in loaded[:3])
            and len(loaded[0]) == len(loaded[1]) == len(loaded[2])):
        return None
    steps, times, values, last, last_step, low, high = loaded
    return Series(steps=steps, times=times, values=values, last=last, last_step=last_step, min=low, max=high)


def _store(path: Path, series: Series) -> None:
    if cachefile.save(path, (series.steps, series.times, series.values, series.last, series.last_step,
                             series.min, series.max)):  # a read-only repository still reads histories, only slower
        _prune(path.parent)


def _prune(folder: Path) -> None:
    """Remove the oldest entries once the folder outgrows MAX_BYTES; once a process is enough."""
    global _pruned
    if _pruned:
        return
    _pruned = True
    try:
        entries = [(info.st_mtime, info.st_size, e.path) for e in os.scandir(folder) if (info := e.stat())]
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    if total <= MAX_BYTES:
        return
    for _, size, path in sorted(entries):
        if total <= MAX_BYTES * 3 // 4:
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        total -= size
