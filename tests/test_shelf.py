"""The run shelf (gitexp/git/shelf.py): runs kept reachable by one ref, read back as their refs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import gitexp
from gitexp.git import shelf
from gitexp.git.repo import Repo


def _runs(repo: Path, count: int, experiment: str = "shelved") -> dict[str, str]:
    made = {}
    for k in range(count):
        with gitexp.start_run(experiment=experiment, name=f"r{k}", system_metrics_interval=0) as run:
            run.log_metric("acc", k / 10)
        made[run.ref] = Repo.discover(repo).ref(run.ref)
    return made


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_links_shelve_and_take_back_and_read_back_from_git_and_from_the_cache(repo: Path) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 4)
    refs = sorted(made)
    assert shelf.read(git_dir) == {} and shelf.tip(git_dir) is None
    with shelf.locked(git_dir):
        first = shelf.add_link(git_dir, {ref: made[ref] for ref in refs[:3]})
        second = shelf.add_link(git_dir, {refs[3]: made[refs[3]]}, take_back=[refs[0]])
        assert shelf.add_link(git_dir, {refs[3]: made[refs[3]]}) is None  # nothing new
    assert first and second and shelf.tip(git_dir) == second
    expected = {ref: made[ref] for ref in refs[1:]}
    assert shelf.read(git_dir) == expected
    # What git itself shows of a link: its parents are the previous link and the runs it shelves.
    assert _git(repo, "rev-parse", f"{second}^1").strip() == first
    assert _git(repo, "rev-parse", f"{second}^2").strip() == made[refs[3]]
    assert _git(repo, "show", f"{second}:unshelved") == f"{refs[0]}\n"
    assert _git(repo, "log", "-1", "--format=%ad %an", "--date=unix", second).strip() == "946684800 gitexp"
    # Another process: from the cache file, then from git alone.
    shelf._memo = None
    assert shelf.read(git_dir) == expected
    (git_dir / shelf.CACHE).unlink()
    shelf._memo = None
    assert shelf.read(git_dir) == expected


def test_the_cache_is_brought_up_to_date_from_the_new_links_and_a_rewritten_shelf_read_whole(repo: Path) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 3)
    a, b, c = sorted(made)
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, {a: made[a]})
    assert shelf.read(git_dir) == {a: made[a]}  # cached at this tip
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, {b: made[b]})
    shelf._memo = None
    assert shelf.read(git_dir) == {a: made[a], b: made[b]}
    # A shelf started again elsewhere (not a descendant of the cached tip) is read from its first link.
    subprocess.run(["git", "update-ref", "-d", shelf.SHELF_REF], cwd=repo, check=True)
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, {c: made[c]})
    shelf._memo = None
    assert shelf.read(git_dir) == {c: made[c]}


def test_git_gc_keeps_shelved_runs_without_their_refs(repo: Path) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 2)
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, made)
    lines = "".join(f"delete {ref} {oid}\n" for ref, oid in made.items())
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    subprocess.run(["git", "-c", "gc.reflogExpire=now", "-c", "gc.reflogExpireUnreachable=now", "gc", "--prune=now",
                    "--quiet"], cwd=repo, check=True)
    assert _git(repo, "for-each-ref", "refs/experiments/") == ""
    for oid in made.values():
        assert _git(repo, "cat-file", "-t", oid).strip() == "commit"
        assert "summary.json" in _git(repo, "ls-tree", "--name-only", oid)
    assert _git(repo, "fsck", "--no-dangling") == ""


def _bad_link(repo: Path, shelved: str, parents: list[str]) -> str:
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=shelved, capture_output=True,
                          text=True, check=True).stdout.strip()
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=f"100644 blob {blob}\tshelved\n", capture_output=True,
                          text=True, check=True).stdout.strip()
    args = ["git", "commit-tree", tree, "-m", "bad"]
    for parent in parents:
        args += ["-p", parent]
    return subprocess.run(args, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("shape", ["not a parent", "not a run ref", "not a line", "not a commit"])
def test_a_damaged_shelf_is_an_error_that_names_the_link(repo: Path, shape: str) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 2)
    (a, one), (b, two) = sorted(made.items())
    link = {
        "not a parent": lambda: _bad_link(repo, f"{one} {a}\n{two} {b}\n", [one]),
        "not a run ref": lambda: _bad_link(repo, f"{one} refs/heads/main\n", [one]),
        "not a line": lambda: _bad_link(repo, f"{one}\n", [one]),
        "not a commit": lambda: _git(repo, "rev-parse", "HEAD^{tree}").strip(),
    }[shape]()
    subprocess.run(["git", "update-ref", shelf.SHELF_REF, link], cwd=repo, check=True)
    with pytest.raises(shelf.ShelfError) as caught:
        shelf.read(git_dir)
    assert link[:12] in str(caught.value)
