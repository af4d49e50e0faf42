"""Refs written as git's files backend writes them (gitexp/git/refwrite.py), checked with git itself."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.git import refwrite
from gitexp.git.refwrite import RefConflictError, RefLockedError, packed_ref, packed_ref_scan, write_ref
from gitexp.git.repo import Repo
from tests.conftest import git

REF = "refs/experiments/cnn/20261202-1200000abcdef01"


def commits(repo: Path, n: int) -> list[str]:
    """*n* distinct commits of *repo* (on no branch)."""
    tree = git(repo, "write-tree").strip()
    return [git(repo, "commit-tree", tree, "-m", f"c{i}").strip() for i in range(n)]


def line(new: str, old: str | None = None, message: str = "gitexp: test") -> str:
    return refwrite.reflog_line(old, new, "A U Thor <author@example.com>", message)


# -- packed-refs bisected, against reading it line by line ----------------------------------------

_NAMES = st.lists(st.from_regex(r"refs/(heads|tags|experiments/[a-c])/[a-z0-9]{1,6}", fullmatch=True),
                  unique=True, max_size=60)


@settings(max_examples=200, deadline=None)
@given(names=_NAMES, peeled=st.lists(st.booleans(), min_size=60, max_size=60), data=st.data())
def test_the_bisection_of_packed_refs_finds_what_reading_every_line_finds(
        tmp_path_factory: pytest.TempPathFactory, names: list[str], peeled: list[bool], data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("packed")
    lines = ["# pack-refs with: peeled fully-peeled sorted "]
    for i, name in enumerate(sorted(names)):
        lines.append(f"{i:040x} {name}")
        if peeled[i]:
            lines.append(f"^{i + 1000:040x}")  # an annotated tag's peeled id: not a ref of its own
    text = "\n".join(lines) + "\n"
    (folder / "packed-refs").write_text(text)
    asked = [*names, *data.draw(st.lists(st.from_regex(r"refs/[a-z/]{1,12}", fullmatch=True), max_size=5)), "refs"]
    for name in asked:
        assert packed_ref(str(folder), name) == packed_ref_scan(text.encode(), name), name
    for i, name in enumerate(sorted(names)):
        assert packed_ref(str(folder), name) == f"{i:040x}"  # not the peeled id below it


def test_an_unsorted_packed_refs_is_read_line_by_line(tmp_path: Path) -> None:
    (tmp_path / "packed-refs").write_text(f"# pack-refs with: peeled \n{'b' * 40} refs/z\n{'a' * 40} refs/a\n")
    assert packed_ref(str(tmp_path), "refs/a") == "a" * 40 and packed_ref(str(tmp_path), "refs/z") == "b" * 40
    assert packed_ref(str(tmp_path / "nowhere"), "refs/a") is None


# -- writing: what git reads back -----------------------------------------------------------------

def test_a_ref_written_is_what_git_reads_with_its_reflog_line(repo: Path) -> None:
    first, second = commits(repo, 2)
    commondir = str(repo / ".git")
    (repo / ".git" / "logs" / "refs" / "experiments" / "cnn").mkdir(parents=True)
    (repo / ".git" / "logs" / REF).touch()  # gitexp makes the log file: then git keeps a log for any ref
    assert write_ref(commondir, REF, first, None, line(first, message="gitexp: started\nsecond line"))
    assert write_ref(commondir, REF, second, first, line(second, first, "gitexp: checkpoint"))
    assert git(repo, "rev-parse", REF).strip() == second
    assert git(repo, "reflog", "show", "--format=%H %gs", REF).splitlines() == [
        f"{second} gitexp: checkpoint", f"{first} gitexp: started second line"]
    assert not (repo / ".git" / (REF + ".lock")).exists()
    git(repo, "fsck", "--no-dangling")


def test_a_write_expecting_another_value_changes_nothing(repo: Path) -> None:
    first, second, third = commits(repo, 3)
    commondir = str(repo / ".git")
    write_ref(commondir, REF, first, None, None)
    with pytest.raises(RefConflictError, match="exists already"):
        write_ref(commondir, REF, second, None, None)
    with pytest.raises(RefConflictError, match=f"moved to {first[:12]} \\(expected {third[:12]}\\)"):
        write_ref(commondir, REF, second, third, None)
    git(repo, "pack-refs", "--all", "--prune")  # now only packed-refs has it
    assert not (repo / ".git" / REF).exists()
    with pytest.raises(RefConflictError, match="exists already"):
        write_ref(commondir, REF, second, None, None)
    assert write_ref(commondir, REF, second, first, None)  # the packed value is the expected one
    assert git(repo, "rev-parse", REF).strip() == second
    assert not list((repo / ".git" / "refs" / "experiments" / "cnn").glob("*.lock"))


def test_a_lock_held_by_git_is_waited_out_then_named(repo: Path) -> None:
    (first,) = commits(repo, 1)
    lock = repo / ".git" / (REF + ".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    with pytest.raises(RefLockedError, match=r"stayed locked .*cnn/20261202-1200000abcdef01\.lock.*delete that file"):
        write_ref(str(repo / ".git"), REF, first, None, None)
    assert lock.exists(), "another process's lock is never taken away"
    lock.unlink()
    assert write_ref(str(repo / ".git"), REF, first, None, None)


def test_a_stale_lock_of_gitexps_own_ref_is_removed_and_no_other(repo: Path) -> None:
    (first,) = commits(repo, 1)
    commondir = str(repo / ".git")
    stale = time.time() - refwrite.STALE_LOCK - 1
    for name in (REF, "refs/heads/topic"):
        lock = repo / ".git" / (name + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
        os.utime(lock, (stale, stale))
    with pytest.raises(RefLockedError):  # a branch's lock is the user's git's: never taken away
        write_ref(commondir, "refs/heads/topic", first, None, None, own=False)
    assert (repo / ".git" / "refs/heads/topic.lock").exists()
    with pytest.warns(RuntimeWarning, match=r"removed .*20261202-1200000abcdef01\.lock, a lock \d+ s old"):
        assert write_ref(commondir, REF, first, None, None, own=True)
    assert git(repo, "rev-parse", REF).strip() == first


def test_names_it_must_not_judge_are_left_to_libgit2(repo: Path) -> None:
    first, second = commits(repo, 2)
    commondir = str(repo / ".git")
    git(repo, "update-ref", "refs/experiments/cnn", first)  # a ref where a folder is needed
    assert not write_ref(commondir, REF, second, None, None)
    git(repo, "pack-refs", "--all", "--prune")
    assert not write_ref(commondir, REF, second, None, None)  # packed, the same
    git(repo, "symbolic-ref", "refs/experiments/link", "refs/heads/master")
    assert not write_ref(commondir, "refs/experiments/link", second, first, None)
    assert git(repo, "symbolic-ref", "refs/experiments/link").strip() == "refs/heads/master"
    assert git(repo, "rev-parse", "refs/experiments/cnn").strip() == first
    with pytest.raises(Exception, match="refs/experiments/cnn"):  # libgit2's own words, through Refs
        Repo.discover(repo).create_ref(REF, second, "gitexp: test")


def _writer(args: tuple[str, str, list[str]]) -> int:
    """Move *ref* along *chain* one compare-and-swap at a time; returns how many moves it made."""
    commondir, ref, chain = args
    moved = 0
    for old, new in itertools.pairwise(chain):
        while True:
            try:
                write_ref(commondir, ref, new, old, None)
                moved += 1
                break
            except RefLockedError:
                continue  # git pack-refs held it a long while on a loaded machine: try again
    return moved


def test_writes_beside_git_pack_refs_lose_nothing(repo: Path) -> None:
    """Four processes each move their own ref 40 times while git packs the refs in a loop: every
    ref ends where its writer left it, and no write ever found a value it did not expect."""
    chain = commits(repo, 41)
    commondir = str(repo / ".git")
    refs = [f"refs/experiments/w/{i}" for i in range(4)]
    for ref in refs:
        write_ref(commondir, ref, chain[0], None, None)
    packer = subprocess.Popen(["sh", "-c", "while :; do git pack-refs --all --prune; done"], cwd=repo,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            moved = pool.map(_writer, [(commondir, ref, chain) for ref in refs])
    finally:
        packer.kill()
        packer.wait()
    assert moved == [40] * 4
    assert [git(repo, "rev-parse", ref).strip() for ref in refs] == [chain[-1]] * 4
    assert not [p for p in Path(commondir, "refs").rglob("*.lock")]
