"""summary.json, a run commit's index of its meta, params and metric summaries (docs/format.md),
read and checked as a listing needs it.

A listing of runs not cached yet reads this file of each, so this module imports neither YAML
nor libgit2: after a sweep's new runs, `git exp ls` reads them through `git cat-file`
(gitexp/git/catfile.py) without loading either (90 ms of its second). codec.read_listing, which
reads a run whose index is missing or unsound from its YAML files, starts here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gitexp.errors import CorruptRunError
from gitexp.store import fastjson
from gitexp.store.schema import check_meta, check_metrics, mapping

SUMMARY = "summary.json"
MAX_DOCUMENT_BYTES = 16 * 2**20  # runs may come from an untrusted remote: refuse absurd blobs


def from_read(read: bytes | None) -> tuple[dict, dict, dict] | None:
    """(meta, params, metric summaries) from summary.json's bytes as git read them (None: not read),
    when they are sound; None where codec.read_listing must read the run (nothing read yet, no
    index, or a damaged one: the YAML is the record)."""
    if read is None:
        return None
    try:
        return parse_index(read)
    except CorruptRunError:
        return None


def from_reads(reads: Sequence[bytes | None], many: bool = False) -> list[tuple[dict, dict, dict] | None]:
    """[from_read(read) for read in reads]. *many*: these are a few of thousands of summaries read
    at once, where msgspec's parser is worth its import (14 ms): it parses 100,000 summaries in
    0.5 s where the standard library's takes 1.25 s, a quarter of a first listing of them."""
    decode = fastjson.decoder() if many else None
    if decode is None:
        return joined_reads(reads)
    out: list[tuple[dict, dict, dict] | None] = []
    for read in reads:
        if read is None or len(read) > MAX_DOCUMENT_BYTES:
            out.append(None)  # (none, or refused unparsed, as from_read does)
            continue
        try:
            parsed = decode(read)
        except (ValueError, RecursionError):
            # What msgspec refuses that json.loads may take (NaN, lone surrogates, UTF-16, 1e400)
            # or refuses as well: the reference says which, and what it holds.
            out.append(from_read(read))
            continue
        try:
            out.append(_fields(parsed))
        except CorruptRunError:
            out.append(None)
    return out


def joined_reads(reads: Sequence[bytes | None]) -> list[tuple[dict, dict, dict] | None]:
    """[from_read(read) for read in reads] with the standard library alone, the JSON of all of them
    parsed as one text: a call of json.loads per run (its bytes decoded, their encoding guessed)
    was a seventh of the time to parse and check 100,000 summaries (2.0 s against 1.7 s, 32 at a time).

    Runs may come from an untrusted remote, so no document may be read as part of another: each
    value is parsed from where its document starts and must end exactly where it ends, else that
    document is read alone (from_read, the reference, which says what is wrong with it).
    tests/test_runs.py holds the two equal, on documents made to run into each other too."""
    out: list[tuple[dict, dict, dict] | None] = [None] * len(reads)
    texts: list[str] = []
    placed: list[int] = []
    for k, read in enumerate(reads):
        if read is None or len(read) > MAX_DOCUMENT_BYTES:
            continue  # (none, or refused unparsed, as from_read does)
        try:
            texts.append(read.decode("utf-8"))  # (each alone: bytes cut in two must not join up)
        except UnicodeDecodeError:
            out[k] = from_read(read)  # (json.loads guesses other encodings)
            continue
        placed.append(k)
    joined = "".join(texts)
    start = 0
    for k, text in zip(placed, texts, strict=True):
        end = start + len(text)
        try:
            parsed, stop = _DECODER.raw_decode(joined, start)
        except (ValueError, RecursionError):
            stop = -1
        if stop != end:
            out[k] = from_read(reads[k])
        else:
            try:
                out[k] = _fields(parsed)
            except CorruptRunError:
                out[k] = None
        start = end
    return out


_DECODER = json.JSONDecoder()


def parse_index(data: bytes | None) -> tuple[dict, dict, dict]:
    """(meta, params, metric summaries) from summary.json's bytes (None: there is none), checked;
    CorruptRunError when it is absent or unsound."""
    if data is None:
        raise CorruptRunError(f"{SUMMARY} is missing")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CorruptRunError(f"{SUMMARY} is {len(data)} bytes, over the {MAX_DOCUMENT_BYTES} byte limit")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CorruptRunError(f"{SUMMARY} is not the JSON object of meta, params and metrics ({exc})") from None
    return _fields(parsed)


def _fields(parsed: Any) -> tuple[dict, dict, dict]:
    """parse_index's answer from summary.json's parsed value."""
    try:
        meta, params, metrics = parsed["meta"], parsed["params"], parsed["metrics"]
    except (KeyError, TypeError, IndexError) as exc:
        raise CorruptRunError(f"{SUMMARY} is not the JSON object of meta, params and metrics ({exc})") from None
    return check_meta(meta, f"{SUMMARY} meta"), mapping(params, f"{SUMMARY} params"), \
        check_metrics(metrics, f"{SUMMARY} metrics")
