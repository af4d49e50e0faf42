"""Long metric histories as append-only chunks (format 2): written once, never rewritten.

A history of fewer than CHUNK_FROM rows is one TSV blob, `metrics/<path>.tsv`, rewritten by each
commit of the run (format 1's layout). From CHUNK_FROM rows on it is a tree under the same name:
each commit adds the rows logged since the previous one as new chunk blobs
`<first row, 12 digits>.tsv` of at most CHUNK_ROWS rows, each a complete TSV (header included),
and no chunk is written twice. So a checkpoint costs what it adds, and a run's objects grow
linearly with its history instead of quadratically.

Every FANOUT chunks (or subtrees) of one level are folded into a subtree named by its first row
(12 digits, no suffix), so a commit rewrites at most FANOUT entries on each of log16(n) levels
rather than a list of every chunk. Readers flatten the tree in the order of those numbers and
check that each part starts where the previous one ended (docs/format.md, metrics/<path>.tsv).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gitexp.errors import CorruptRunError
from gitexp.git.handle import BLOB_MODE, TREE_MODE, Entry
from gitexp.git.reader import RepoReader
from gitexp.git.repo import Repo
from gitexp.store.state import Series

CHUNK_FROM = 1024  # rows; below this a history is one blob (short runs keep format 1's layout)
CHUNK_ROWS = 65_536  # rows of one chunk at most (about 2 MiB of TSV)
FANOUT = 16  # entries of one level folded into a subtree
_PART = re.compile(r"(\d{12})(\.tsv)?")


def part_name(first_row: int, chunk: bool) -> str:
    return f"{first_row:012d}.tsv" if chunk else f"{first_row:012d}"


def stage_chunks(repo: Repo, series: Series, render: Callable[[Series, int, int], bytes]) -> dict[str, Entry]:
    """The entries of *series*' chunk tree, staging the chunks of the rows no commit holds yet.

    *render(series, start, stop)* is the TSV of rows [start, stop), header included.
    """
    levels = series.chunk_levels
    while series.sealed < series.count:
        start, stop = series.sealed, min(series.count, series.sealed + CHUNK_ROWS)
        levels[0].append((part_name(start, True), BLOB_MODE, repo.stage_blob(render(series, start, stop))))
        series.sealed = stop
        level = 0
        while len(levels[level]) >= FANOUT:  # carry, as in counting: a full level becomes one entry above
            full, levels[level] = levels[level], []
            subtree = repo.stage_tree({name: Entry(oid, mode) for name, mode, oid in full})
            if level + 1 == len(levels):
                levels.append([])
            levels[level + 1].append((part_name(int(full[0][0][:12]), False), TREE_MODE, subtree))
            level += 1
    return {name: Entry(oid, mode) for level in levels for name, mode, oid in level}


def chunk_blobs(repo: RepoReader, tree: str, where: str) -> list[tuple[int, str]]:
    """(first row, blob id) of every chunk in the chunk tree *tree*, in row order. CorruptRunError
    for an entry that is not a chunk or a subtree of chunks (*where* names the history)."""
    out: list[tuple[int, str]] = []
    _collect(repo, tree, where, out, depth=0)
    return out


def _collect(repo: RepoReader, tree: str, where: str, out: list[tuple[int, str]], depth: int) -> None:
    if depth > 12:  # 16**12 chunks: only a crafted tree nests deeper
        raise CorruptRunError(f"the chunks of {where} nest more than 12 levels deep")
    parts = []
    for name, entry in repo.tree_entries(tree).items():
        match = _PART.fullmatch(name)
        is_chunk = entry.mode != TREE_MODE
        if match is None or bool(match.group(2)) != is_chunk:
            raise CorruptRunError(f"{where} holds {name!r}, which is neither a chunk (<12 digits>.tsv) nor a "
                                  "folder of chunks (<12 digits>)")
        parts.append((int(match.group(1)), is_chunk, entry.oid))
    for first, is_chunk, oid in sorted(parts):
        if is_chunk:
            out.append((first, oid))
        else:
            _collect(repo, oid, where, out, depth + 1)
