"""The user's commit-graph kept to the user's own commits (gitexp/git/commitgraph.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import gitexp
from gitexp.git import commitgraph, reflogs, refmaint, shelf
from gitexp.git.repo import Repo
from tests.conftest import git


def graph_commits(repo: Path) -> set[str]:
    """The commits objects/info/commit-graph holds, read as git's docs (gitformat-commit-graph) lay it out."""
    data = (repo / ".git" / commitgraph.GRAPH).read_bytes()
    assert data[:4] == b"CGPH"
    chunks = {data[8 + 12 * k:12 + 12 * k]: struct.unpack(">Q", data[12 + 12 * k:20 + 12 * k])[0]
              for k in range(data[6])}
    count = struct.unpack(">I", data[chunks[b"OIDF"] + 4 * 255:chunks[b"OIDF"] + 4 * 256])[0]
    start = chunks[b"OIDL"]
    return {data[start + 20 * k:start + 20 * (k + 1)].hex() for k in range(count)}


def shelved_runs(repo: Path, count: int) -> set[str]:
    """The commits of *count* runs, put on the run shelf as the upkeep puts them."""
    made = {}
    for k in range(count):
        with gitexp.start_run(name=f"r{k}", system_metrics_interval=0) as run:
            run.log_metric("acc", k)
        made[run.ref] = Repo.discover(repo).ref(run.ref)
    with shelf.locked(repo / ".git"):
        shelf.add_link(repo / ".git", made)
    return set(made.values())


def test_a_graph_of_the_runs_too_is_written_again_of_the_users_commits(repo: Path) -> None:
    git(repo, "commit", "--allow-empty", "-q", "-m", "second")
    git(repo, "tag", "-a", "v1", "-m", "tagged")  # (an annotated tag: its commit is the user's)
    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    git(repo, "commit", "--allow-empty", "-q", "-m", "on a side branch")
    runs = shelved_runs(repo, 3)
    users = set(git(repo, "rev-list", "--branches", "--tags", "HEAD").split())
    git(repo, "commit-graph", "write", "--reachable")  # what `git gc` writes
    assert runs <= graph_commits(repo)
    assert commitgraph.spare(repo / ".git")
    assert graph_commits(repo) == users
    assert git(repo, "commit-graph", "verify") == ""
    assert git(repo, "log", "--format=%s", "-3", "main").splitlines()[0] == "second"
    assert not commitgraph.spare(repo / ".git")  # its own, unchanged: not written again
    git(repo, "commit-graph", "write", "--reachable")  # the next `git gc`
    assert runs <= graph_commits(repo) and commitgraph.spare(repo / ".git") and graph_commits(repo) == users


def test_the_upkeep_spares_the_graph_once_runs_are_shelved(repo: Path) -> None:
    git(repo, "commit-graph", "write", "--reachable")
    with gitexp.start_run(name="alone", system_metrics_interval=0):
        pass
    (repo / ".git" / reflogs.PENDING).write_bytes(b"." * reflogs.ARCHIVE_EVERY)
    refmaint.upkeep(repo / ".git", min_age=0)
    assert not (repo / ".git" / commitgraph.STAMP).exists()  # no shelf: few runs, the graph left as it is
    runs = shelved_runs(repo, 2)
    git(repo, "commit-graph", "write", "--reachable")
    refmaint.upkeep(repo / ".git", min_age=0, archive=True)
    assert not runs & graph_commits(repo)


def test_a_split_graph_a_running_gc_and_the_users_no_are_left_alone(repo: Path) -> None:
    runs = shelved_runs(repo, 2)
    git(repo, "commit-graph", "write", "--reachable")
    (repo / ".git" / "gc.pid").write_text("1 elsewhere")
    assert not commitgraph.spare(repo / ".git")
    (repo / ".git" / "gc.pid").unlink()
    git(repo, "config", commitgraph.SETTING, "false")
    assert not commitgraph.spare(repo / ".git") and runs <= graph_commits(repo)
    git(repo, "config", "--unset", commitgraph.SETTING)
    (repo / ".git" / commitgraph.GRAPH).unlink()
    git(repo, "commit-graph", "write", "--reachable", "--split")  # as `git maintenance` writes it
    assert not commitgraph.spare(repo / ".git")
    assert not (repo / ".git" / commitgraph.GRAPH).exists()
