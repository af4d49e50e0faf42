"""The user's commit-graph, kept to the user's own commits.

`git gc` (and `git gc --auto`) writes `objects/info/commit-graph` of every commit reachable from a
ref (`git commit-graph write --reachable`): with the run shelf, the 100,000 run commits it holds
too, a 7.7 MB file in which each of the user's commands looks up the commits it reads. On a copy
of the 100,000-run fixture, alternately with the copy without runs (300 calls each): `git log
-20` 1.21x and `git log --oneline --decorate -20` 1.37x with that file, 1.06x and 1.17x with one
of the user's commits alone (benchmarks/README.md, run 30).

So once runs are shelved, each archiving pass of the upkeep (refmaint.py) that finds a
commit-graph it did not write writes it again, with git's own `git commit-graph write
--stdin-commits`, from the commits the user's refs name (every ref but gitexp's, and HEAD): what
the user's git walks is in it, the runs are not. gitexp reads no commit-graph itself. Left as it
is: a split graph (`objects/info/commit-graphs/`, which `git maintenance` writes), one while a
`git gc` runs, and any where `exp.userCommitGraph` is false.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitexp.git import maintenance, shelf

GRAPH = Path("objects") / "info" / "commit-graph"
CHAIN = Path("objects") / "info" / "commit-graphs"
STAMP = Path("gitexp") / "commit-graph.stamp"  # the identity of the commit-graph gitexp wrote last
SETTING = "exp.userCommitGraph"
GITEXP_REFS = ("refs/experiments", "refs/notes/experiments")  # (refs/experiments* holds the shelf's and the trash's)


def _identity(path: Path) -> str | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return f"{info.st_ino} {info.st_size} {info.st_mtime_ns}"


def user_commits(commondir: Path) -> list[str]:
    """The commits the user's refs and HEAD name (tags peeled), gitexp's refs left out."""
    listed = subprocess.run(
        ["git", "--git-dir", str(commondir), "for-each-ref",
         "--format=%(refname) %(objecttype) %(objectname) %(*objecttype) %(*objectname)"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    found = []
    for line in listed.stdout.splitlines():
        name, kind, oid, *peeled = line.split(" ")
        if name.startswith(GITEXP_REFS):
            continue
        if kind == "commit":
            found.append(oid)
        elif peeled[:1] == ["commit"] and len(peeled) == 2:
            found.append(peeled[1])
    head = subprocess.run(["git", "--git-dir", str(commondir), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False).stdout.strip()
    return list(dict.fromkeys([*found, head] if head else found))


def spare(commondir: Path) -> bool:
    """Write the commit-graph again from the user's commits alone, where there is a run shelf and a
    commit-graph gitexp did not write (see above); True when it did."""
    graph = commondir / GRAPH
    now = _identity(graph)
    if now is None or (commondir / CHAIN).exists() or shelf.tip(commondir) is None or maintenance.gc_running(commondir):
        return False
    try:
        if (commondir / STAMP).read_text() == now:
            return False  # (the one written here last, unchanged)
    except OSError:
        pass
    setting = subprocess.run(["git", "--git-dir", str(commondir), "config", "--type=bool", "--get", SETTING],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if setting.stdout.strip() == "false":
        return False
    commits = user_commits(commondir)
    if not commits:
        return False
    proc = subprocess.run(["git", "--git-dir", str(commondir), "commit-graph", "write", "--stdin-commits",
                           "--no-progress"], input="".join(f"{oid}\n" for oid in commits), text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    written = _identity(graph)
    if proc.returncode != 0 or written is None:
        return False  # (commit-graph.lock held by another git: the next pass tries again)
    try:
        (commondir / STAMP).write_text(written)
    except OSError:
        pass
    return True
