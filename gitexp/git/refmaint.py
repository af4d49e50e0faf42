"""Ref upkeep in the background: run refs packed by git, and settled run reflogs archived.

Each run adds a loose ref and a reflog file. Thousands of loose refs slow every ref lookup and
write (git's and gitexp's), and 100,000 reflog files fill 400 MB and most of a `git gc`. So every
reflog file created by gitexp for a new ref adds one byte to `<common git dir>/gitexp/refs-pending`;
the write that brings it to a multiple of PENDING_LIMIT starts `python -m gitexp.git.refmaint
<common git dir>`, detached (its own session, no terminal, nothing waited for), as git starts its
own `git gc --auto`. That process empties the counter, runs `git pack-refs --all --prune` (git's
own means: the ref-packing step of `git gc`) and archives the run reflogs that settled
(reflogs.archive). Nothing of it runs in the user's git commands: only a new run ref counts,
never the post-commit hook's link commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gitexp.git import reflogs
from gitexp.git.repo import Repo

RUN_REFS = "refs/experiments/"


def upkeep(commondir: Path | str, min_age: float | None = None) -> int:
    """Pack the refs and archive settled run reflogs; returns the number of logs archived."""
    with open(os.path.join(commondir, reflogs.PENDING), "wb"):
        pass  # refs made from now on count toward the next upkeep
    subprocess.run(["git", "--git-dir", str(commondir), "pack-refs", "--all", "--prune"], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    repo = Repo.discover(Path(commondir))
    return repo.archive_reflogs(RUN_REFS, reflogs.MIN_AGE if min_age is None else min_age)


if __name__ == "__main__":
    upkeep(sys.argv[1])
