"""summary.json, a run commit's index of its meta, params and metric summaries (docs/format.md),
read and checked as a listing needs it.

A listing of runs not cached yet reads this file of each, so this module imports neither YAML
nor libgit2: after a sweep's new runs, `git exp ls` reads them through `git cat-file`
(gitexp/git/catfile.py) without loading either (90 ms of its second). codec.read_listing, which
reads a run whose index is missing or unsound from its YAML files, starts here.
"""

from __future__ import annotations

import json

from gitexp.errors import CorruptRunError
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


def parse_index(data: bytes | None) -> tuple[dict, dict, dict]:
    """(meta, params, metric summaries) from summary.json's bytes (None: there is none), checked;
    CorruptRunError when it is absent or unsound."""
    if data is None:
        raise CorruptRunError(f"{SUMMARY} is missing")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CorruptRunError(f"{SUMMARY} is {len(data)} bytes, over the {MAX_DOCUMENT_BYTES} byte limit")
    try:
        parsed = json.loads(data)
        meta, params, metrics = parsed["meta"], parsed["params"], parsed["metrics"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CorruptRunError(f"{SUMMARY} is not the JSON object of meta, params and metrics ({exc})") from None
    return check_meta(meta, f"{SUMMARY} meta"), mapping(params, f"{SUMMARY} params"), \
        check_metrics(metrics, f"{SUMMARY} metrics")
