"""Reading metric histories (metrics/<key>.tsv): the one read_history, a fast parser, and a cache keyed by blob id.

Parsing a history costs about 2 µs a line (10,000 steps: 20 ms), mostly turning text into
floats. A blob never changes, so its parsed form is kept under the git directory, keyed by the
blob's id, and read back with marshal in a tenth of the time: a cache entry cannot go stale.
Only long histories are kept (short ones parse faster than a file opens); the oldest entries
go when the folder outgrows MAX_BYTES. Deleting the folder is always safe.
"""

from __future__ import annotations

import itertools
import os
from array import array
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from gitexp.errors import CorruptRunError
from gitexp.git import catfile
from gitexp.git.reader import RepoReader
from gitexp.store import cachefile, fastjson, names
from gitexp.store.state import Series

HISTORY_DIR = "metrics"
TSV_HEADER = "step\ttime\tvalue\n"  # a history's first line (codec.render_rows writes the rest)
HEADER = TSV_HEADER.encode()
CACHE_DIR = Path("gitexp") / "cache" / "history-v2"  # v2: columns as array bytes
MIN_BYTES = 16 * 1024  # histories shorter than this (about 500 steps) are parsed every time
# Rows in chunks not cached from which git reads them (about 2.5 MB: libgit2 takes 20 ms to read
# them, starting git a few)
BATCH_ROWS = 65_536
MAX_BYTES = 256 * 2**20
# The bytes of the fields gitexp writes: integer steps, times with 3 decimals, float reprs.
_FIELD_BYTES = b"0123456789+-.einfa"
_COMMAS = bytes.maketrans(b"\t\n", b",,")  # a history's body as the numbers of a JSON array
# Rows of a history from which msgspec is imported to read its numbers (the import costs 14 ms,
# reading a row that way saves 0.5 µs); a process that has it reads any history's with it.
NUMBERS_FROM = 32_768
_pruned = False


def history_path(key: str) -> str:
    return f"{HISTORY_DIR}/{names.key_to_path(key)}.tsv"


def read_history(repo: RepoReader, commit: str, key: str) -> Series:
    """The history of metric *key* in run commit *commit* (an empty Series when it has none);
    CorruptRunError when it cannot be read as one."""
    found = read_columns(repo, commit, key)
    return Series() if found is None else found.series()


def read_columns(repo: RepoReader, commit: str, key: str) -> Columns | None:
    """The history of metric *key* in *commit* as Columns (None when it has none), without making
    a Python object of each value: what drawing a long history needs (about 24 bytes a row)."""
    path = history_path(key)
    oid = repo.entry_oid(commit, path)
    if oid is None:
        return None
    where = f"history of metric {key!r} in commit {commit[:12]}"
    cached = _load(repo, oid)
    if cached is not None:
        return cached
    data = repo.read_path(commit, path)
    if data is None:  # a tree: the chunks of a long history (format 2), each cached on its own
        return _read_chunks(repo, oid, where)
    return _columns_of_blob(repo, oid, data, where)


class Columns:
    """A history as three arrays (steps as int64 when every step fits, else a list) and the summary
    Series.add would have kept."""

    def __init__(self, steps: Sequence[int], times: array[float], values: array[float], summary: Series) -> None:
        self.steps, self.times, self.values, self.summary = steps, times, values, summary

    @classmethod
    def of(cls, series: Series) -> Columns:
        try:
            steps: Sequence[int] = array("q", series.steps)
        except OverflowError:  # a step beyond 64 bits
            steps = list(series.steps)
        summary = Series(last=series.last, last_step=series.last_step, min=series.min, max=series.max)
        return cls(steps, array("d", series.times), array("d", series.values), summary)

    def series(self) -> Series:
        steps = self.steps.tolist() if isinstance(self.steps, array) else list(self.steps)
        s = self.summary
        return Series(steps=steps, times=self.times.tolist(), values=self.values.tolist(), last=s.last,
                      last_step=s.last_step, min=s.min, max=s.max)


def _columns_of_blob(repo: RepoReader, oid: str, data: bytes, where: str) -> Columns:
    columns = Columns.of(_parse_blob(data, where))
    if len(data) >= MIN_BYTES:
        _store(repo, oid, columns)
    return columns


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


def _read_chunks(repo: RepoReader, tree: str, where: str) -> Columns:
    """A chunked history: each chunk parsed (or read from the cache, a chunk never changes) and
    checked to start at the row where the previous one ended; the summaries combined as
    Series.add would have kept them row by row."""
    from gitexp.store import chunks  # here: it loads the git layer's writer, which listings never need

    listed = chunks.chunk_blobs(repo, tree, where)
    cached = {blob: _load(repo, blob) for _, blob in listed}
    unread = [blob for blob, part in cached.items() if part is None]
    # Many rows to read: git reads their chunks in its own process while this one parses them
    # (catfile.blobs; libgit2's read_blob, the reference, for any git does not answer). A few
    # small chunks (a live run's newest) are read here: starting git costs more than they do.
    spans = {blob: after - first for (first, blob), (after, _) in itertools.pairwise(listed)}
    many = sum(spans.get(blob, 0) for blob in unread) >= BATCH_ROWS
    fetched = catfile.blobs(repo.gitdir, unread) if many else None
    try:
        return _joined(repo, listed, cached, fetched, where)
    finally:
        if fetched is not None:
            fetched.close()  # (a damaged chunk ends the reading: git is stopped, not left waiting)


def _joined(repo: RepoReader, listed: list[tuple[int, str]], cached: dict[str, Columns | None],
            fetched: Generator[bytes | None, None, None] | None, where: str) -> Columns:
    """The chunks *listed* ((first row, blob)) as one history: each from *cached*, else parsed from
    *fetched* (git's answers for the chunks not cached, in order) or read_blob; see _read_chunks."""
    parts: list[Columns] = []
    rows = 0
    summary = Series()
    for first, blob in listed:
        if first != rows:
            raise CorruptRunError(f"{where}: chunk {first:012d}.tsv should start at row {rows} "
                                  f"(a chunk is missing, or repeated)")
        part = cached[blob]
        if part is None:
            data = None if fetched is None else next(fetched, None)
            part = cached[blob] = _columns_of_blob(repo, blob, repo.read_blob(blob) if data is None else data,
                                                   f"{where}, chunk {first:012d}.tsv")
        rows += len(part.values)
        parts.append(part)
        s = part.summary
        # A chunk counts for the last value when it has a step of -1 or more (as from_columns); its
        # summary says so, unless it reads (NaN, -1): then only its steps tell.
        ambiguous = s.last_step == -1 and s.last != s.last
        if (not ambiguous or max(part.steps, default=-2) >= -1) and s.last_step >= summary.last_step:
            summary.last, summary.last_step = s.last, s.last_step
        if s.min == s.min and not summary.min <= s.min:  # NaN never; the first of equal values stays
            summary.min = s.min
        if s.max == s.max and not summary.max >= s.max:
            summary.max = s.max
    if all(isinstance(p.steps, array) for p in parts):
        steps: Sequence[int] = array("q", b"".join(p.steps.tobytes() for p in parts if isinstance(p.steps, array)))
    else:
        steps = [step for p in parts for step in p.steps]
    return Columns(steps, array("d", b"".join(p.times.tobytes() for p in parts)),
                   array("d", b"".join(p.values.tobytes() for p in parts)), summary)


def parse_history(data: bytes, fast: bool = True) -> Series:
    """parse_reference, several times faster on what gitexp writes, and the same on anything.
    Without *fast*, never through msgspec (its reading of the numbers is one of two ways)."""
    series = _parse_plain(data, fast)
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


def _parse_plain(data: bytes, fast: bool = True) -> Series | None:
    """The history when *data* is lines of three non-empty fields made of _FIELD_BYTES only, else None."""
    if not data.startswith(HEADER):
        return None
    body = data[len(HEADER):]
    rows = body.count(b"\n")
    # Deleting the field bytes leaves the separators, and nothing else, in their exact order.
    if body[-1:] not in (b"\n", b"") or body.translate(None, _FIELD_BYTES) != b"\t\t\n" * rows:
        return None
    if fast and rows and (decode := fastjson.decoder(load=rows >= NUMBERS_FROM)) is not None:
        series = _parse_numbers(body, rows, decode)
        if series is not None:
            return series
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


def _parse_numbers(body: bytes, rows: int, decode: Callable[[bytearray], Any]) -> Series | None:
    """The history whose *rows* lines of three fields (checked by _parse_plain) are *body*, its
    numbers read as one JSON array by msgspec (a history of 1,000,000 rows parsed in 0.39 s rather
    than 0.92 s with int() and float() of each field); None unless each reads as int() and
    float() read it: a step as an int, a time and a value as floats. JSON takes fewer forms than
    they do ("+1", "007", "1.", "nan", "inf" and 1e400 fail the whole array), and reads those it
    takes as they do."""
    text = bytearray(b"[")
    text += body.translate(_COMMAS)
    text[-1] = ord("]")  # (in place of the last newline)
    try:
        numbers = decode(text)
    except (ValueError, RecursionError):
        return None
    steps, times, values = numbers[0::3], numbers[1::3], numbers[2::3]
    if len(numbers) != 3 * rows or set(map(type, steps)) != {int} or set(map(type, times)) != {float} or \
            set(map(type, values)) != {float}:
        return None  # ("1.0" as a step, "5" as a value: int() and float() decide)
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


def _load(repo: RepoReader, oid: str) -> Columns | None:
    loaded = cachefile.load(repo.commondir / CACHE_DIR / f"{oid}.marshal")  # None: absent or unreadable
    if not (type(loaded) is tuple and len(loaded) == 7 and all(type(x) is bytes for x in loaded[:3])
            and len(loaded[0]) == len(loaded[1]) == len(loaded[2]) and len(loaded[0]) % 8 == 0):
        return None
    steps, times, values = array("q"), array("d"), array("d")
    steps.frombytes(loaded[0])
    times.frombytes(loaded[1])
    values.frombytes(loaded[2])
    last, last_step, low, high = loaded[3:]
    return Columns(steps, times, values, Series(last=last, last_step=last_step, min=low, max=high))


def _store(repo: RepoReader, oid: str, columns: Columns) -> None:
    if not isinstance(columns.steps, array):
        return  # steps beyond 64 bits: parsed each time
    s = columns.summary
    path = repo.commondir / CACHE_DIR / f"{oid}.marshal"
    if cachefile.save(path, (columns.steps.tobytes(), columns.times.tobytes(), columns.values.tobytes(), s.last,
                             s.last_step, s.min, s.max)):  # a read-only repository still reads histories, only slower
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
