"""Ref upkeep in the background: run refs packed by git, and settled run reflogs archived.

Each run adds a loose ref and a reflog file. Loose refs slow what reads every ref (git log
--decorate: 15 ms per 1,000 of them here), and 100,000 reflog files fill 400 MB and most of a
`git gc`. So every reflog file gitexp creates for a new ref, and every run ref `git exp fetch`
creates, adds one byte to `<common git dir>/gitexp/refs-pending` (reflogs.count_new_ref); the byte
that makes it a multiple of reflogs.pack_interval() (100 new refs, up to 1,000 as packed-refs
grows) starts `python -m
gitexp.git.refmaint <common git dir>`, detached (its own session, no terminal, nothing waited
for), as git starts its own `git gc --auto`. That process runs `git pack-refs --all --prune`
(git's own means: the ref-packing step of `git gc`), and once the file holds
reflogs.ARCHIVE_EVERY (1,000) bytes, empties it and archives the run reflogs that settled
(reflogs.archive), then settles the run objects into kept packs that `git gc` leaves alone
(settle.py). Once packed-refs holds about 10,000 refs, that pass puts the settled runs on the run
shelf (shelf.py) and deletes their refs, and from then on every pass does (shelve_settled); and it
sets repack.updateServerInfo to false where packed-refs stays that large (spare_server_info), and
keeps the commit-graph to the user's own commits (commitgraph.py). A
process that counted new refs also starts an archiving pass as it exits when reflogs.EXIT_FROM
(100) or more are counted: the logs of runs that ended are archived at any age, so a sweep that
stops between two passes leaves no files for `git gc` to rewrite. Nothing of it
runs in the user's git commands: only a new run ref counts, never the post-commit hook's link commit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from gitexp.git import commitgraph, gitfiles, maintenance, reflogs, settle, shelf
from gitexp.git.repo import Repo

RUN_REFS = "refs/experiments/"
SERVER_INFO = "repack.updateServerInfo"
SHELVE = "exp.shelve"  # false: no run is shelved (a plain `git push` of refs/experiments/* then carries every run)
# From this size of packed-refs (about 10,000 refs), `git repack` spends more than a tenth of a
# second rewriting info/refs, a list of every ref (0.7 to 0.9 s of a 5 s `git gc` at 100,000 runs).
SERVER_INFO_FROM = 1 << 20
# From this size of packed-refs (about 10,000 refs), the upkeep shelves settled runs (shelve_settled):
# every ref slows the user's git fetch, push, log --decorate and gc.
SHELVE_FROM = 1 << 20
DELETE_ATTEMPTS = 5  # transactions that delete the shelved refs, each with those still at their shelved commit


def upkeep(commondir: Path | str, min_age: float | None = None, archive: bool | None = None) -> int:
    """Pack the refs; then, once ARCHIVE_EVERY new refs were counted (or when *archive*), archive the
    settled run reflogs and start the count again. Returns the number of logs archived."""
    pending = os.path.join(commondir, reflogs.PENDING)
    if archive is None:
        try:
            archive = os.path.getsize(pending) >= reflogs.ARCHIVE_EVERY
        except OSError:
            archive = False
    subprocess.run(["git", "--git-dir", str(commondir), "pack-refs", "--all", "--prune"], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not archive:
        maintenance.fold_small(Path(commondir))
        return 0
    with open(pending, "wb"):
        pass  # refs made from now on count toward the next pass
    repo = Repo.discover(Path(commondir))
    archived = repo.archive_reflogs(RUN_REFS, reflogs.MIN_AGE if min_age is None else min_age)
    shelve_settled(Path(commondir))
    settle.settle(Path(commondir))
    maintenance.fold_small(Path(commondir))  # (the shelf's links and the notes: packs of a few objects)
    spare_server_info(Path(commondir))
    commitgraph.spare(Path(commondir))
    return archived


def shelve_settled(commondir: Path, from_size: int | None = None) -> int:
    """Once packed-refs is *from_size* bytes (SHELVE_FROM) or more, or a shelf exists, put the
    settled runs on the run shelf (shelf.py) and delete their refs; returns how many. Settled: its
    ref is packed, its reflog archived, and no journal file names it (a run live here, or one to
    recover). A run written again afterwards gets its own ref back (Refs.update_ref)."""
    try:
        small = os.stat(commondir / "packed-refs").st_size < (SHELVE_FROM if from_size is None else from_size)
    except OSError:
        return 0
    if small and shelf.tip(commondir) is None:
        return 0  # (once there is a shelf, every pass shelves what settled since)
    setting = subprocess.run(["git", "--git-dir", str(commondir), "config", "--type=bool", "--get", SHELVE],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if setting.stdout.strip() == "false":
        return 0  # the user's choice: every run keeps its ref (a shelf already there stays as it is)
    # The refs are read holding the shelf's lock: a run removed meanwhile (`git exp rm`) is taken
    # off the shelf by its remover under the same lock, before this pass or after it.
    with shelf.locked(commondir):
        loose = gitfiles.loose_refs(commondir, RUN_REFS)
        own = None if loose is None else gitfiles.read_refs(commondir, RUN_REFS, loose)
        if loose is None or own is None:
            return 0  # refs gitexp does not read itself (reftable...): left as they are
        try:
            journal = {name.partition(".")[0] for name in os.listdir(commondir / "gitexp" / "journal")}
        except OSError:
            journal = set()
        chosen = {ref: oid for ref, oid in own.items() if ref not in loose and shelf.is_run_ref(ref)
                  and ref.rpartition("/")[2] not in journal and not os.path.lexists(commondir / "logs" / ref)}
        if not chosen:
            return 0
        shelf.add_links(commondir, [chosen])
        return delete_shelved(commondir, chosen)


def delete_shelved(commondir: Path, chosen: dict[str, str]) -> int:
    """Delete the refs of *chosen* (just shelved at those commits) where they still point there;
    returns how many are gone. Called holding shelf.locked().

    One `git update-ref --stdin` transaction deletes them all, or none: a writer moving one
    meanwhile, or another git holding a ref's lock (`git pack-refs` of another pass), makes it
    fail. Then the refs are read again and the transaction tried again with those still at their
    shelved commit. A ref at another commit now stays, and wins, and is taken off the shelf. A ref
    that is gone stays on the shelf: a transaction that failed may have deleted it all the same
    (git deletes the packed refs before the loose files, and reports a failure of the latter), and
    `git exp rm` takes its run off the shelf itself once it has the lock."""
    pending, moved = dict(chosen), []
    for attempt in range(DELETE_ATTEMPTS):
        lines = "".join(f"delete {ref} {oid}\n" for ref, oid in pending.items())
        proc = subprocess.run(["git", "--git-dir", str(commondir), "update-ref", "--stdin"], input=lines.encode(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if proc.returncode == 0 or not pending:
            break
        time.sleep(0.1 * (attempt + 1))
        now = gitfiles.read_refs(commondir, RUN_REFS)
        if now is None:
            continue  # (packed-refs being rewritten, a ref being written: read again next time)
        moved += [ref for ref, oid in pending.items() if ref in now and now[ref] != oid]
        pending = {ref: oid for ref, oid in pending.items() if now.get(ref) == oid}
    shelf.add_link(commondir, {}, take_back=moved)
    now = gitfiles.read_refs(commondir, RUN_REFS)
    return len(chosen) if now is None else sum(ref not in now for ref in chosen)


def spare_server_info(commondir: Path, from_size: int = SERVER_INFO_FROM) -> bool:
    """Set repack.updateServerInfo to false in the repository's own config and remove info/refs,
    once packed-refs is *from_size* bytes or more, unless some config file sets it already.
    True when it did so.

    `git repack` (so `git gc`) runs `git update-server-info`, which rewrites info/refs: every ref
    with its peeled value, read for the "dumb" HTTP transport alone (a web server handing out the
    repository's files). Its run refs made it most of a second of every `git gc`. The stale file
    goes with it: a dumb-HTTP client then fails, saying to run update-server-info, where it would
    have been shown refs that no longer are."""
    try:
        if os.stat(commondir / "packed-refs").st_size < from_size:
            return False
    except OSError:
        return False
    if _git_config(commondir, "--get", SERVER_INFO) != 1:  # (1: set nowhere)
        return False  # the user's choice, or a config git cannot read: left as it is
    if _git_config(commondir, "--local", SERVER_INFO, "false") != 0:
        return False  # (config.lock held by another git: the next pass tries again)
    with contextlib.suppress(FileNotFoundError):
        (commondir / "info" / "refs").unlink()
    return True


def _git_config(commondir: Path, *args: str) -> int:
    return subprocess.run(["git", "--git-dir", str(commondir), "config", *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode


if __name__ == "__main__":
    upkeep(sys.argv[1], archive=True if sys.argv[2:] == ["--archive"] else None)
