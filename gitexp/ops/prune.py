"""Removing LFS objects that nothing references (`git exp gc`); never anything reachable.

Kept: every object named by a pointer-like blob reachable from any ref (runs, branches, tags,
stashes, notes...) or its reflog, HEAD of every worktree, the index, a live or crashed run's
journal, and anything that entered the store in the last `git config exp.gcGrace` seconds
(default 3600: a run may be between storing an object and journaling its pointer). Refs
about to be deleted (the trash) do not count.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from gitexp.errors import GitexpError
from gitexp.git import gitfiles, lfs, transport
from gitexp.git.repo import Repo
from gitexp.store import journal, names

GRACE_SECONDS = 3600
_SKIP = (names.TRASH_PREFIX,)


def _journaled_oids(repo: Repo) -> set[str]:
    out: set[str] = set()
    root = journal.journal_root(repo.commondir)
    for segment in root.glob("*.log") if root.is_dir() else ():
        with open(segment, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.startswith("A\t"):
                    continue
                try:
                    blobs = [value[0] for value in json.loads(line[2:]).values()]
                    out.update(filter(None, (lfs.lenient_oid(repo.read_blob(b)) for b in blobs)))
                except (ValueError, TypeError, IndexError, AttributeError, GitexpError):
                    continue  # a torn or foreign line: the grace period still protects its object
    return out


def referenced(repo: Repo) -> set[str]:
    """sha256 of every LFS object some reachable pointer names."""
    # The reflogs of refs that survive this gc, and of HEAD in every worktree.
    roots = "".join(f"{c}\n" for c in sorted(gitfiles.reflog_commits(repo.commondir, _SKIP))).encode()
    listed = transport.git_bytes(repo, [
        "rev-list", "--objects", "--no-object-names", "--filter=blob:limit=1024", "--ignore-missing",
        *(f"--exclude={p}*" for p in _SKIP), "--all", "--indexed-objects", "--stdin"], roots)
    checked = transport.git_bytes(repo, ["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)"],
                                  listed)
    small = [f"{oid}\n" for oid, kind, size in (line.split() for line in checked.decode().splitlines())
             if kind == "blob" and 100 <= int(size) < lfs.MAX_POINTER_BYTES]
    data = transport.git_bytes(repo, ["cat-file", "--batch"], "".join(small).encode()) if small else b""
    out, pos = set(), 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        oid = lfs.lenient_oid(data[end + 1: end + 1 + size])
        if oid:
            out.add(oid)
        pos = end + 1 + size + 1
    return out | _journaled_oids(repo)


def prune(repo: Repo, dry_run: bool = False) -> tuple[list[tuple[str, int]], str | None]:
    """Delete (or, with *dry_run*, list) unreferenced LFS objects: ([(oid, size)], why nothing was done)."""
    if repo.config("lfs.storage"):
        return [], ("git config lfs.storage is set, so the LFS store may be shared with other repositories; "
                    "gitexp does not prune it")
    store = lfs.Store(repo)
    objects = list(store.iter_objects())
    if not objects:
        return [], None
    keep = referenced(repo)
    grace = repo.config_number("exp.gcGrace", GRACE_SECONDS)
    now = time.time()
    removed = []
    for oid, path in objects:
        if oid in keep:
            continue
        try:
            info = path.stat()
            if now - max(info.st_ctime, info.st_mtime) < grace:
                continue
            if not dry_run:
                path.unlink()
                _remove_empty(path.parent, store.objects)
        except OSError:
            continue
        removed.append((oid, info.st_size))
    return removed, None


def _remove_empty(folder: Path, stop: Path) -> None:
    while folder != stop:
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = folder.parent
