"""catfile.listing_files, git's batch read of many runs: for every commit it answers, what libgit2's
read_path_and_entry (the reference) answers; for a usual run commit, an answer."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitexp.git import catfile
from gitexp.git.repo import Repo
from tests.conftest import git

READ, LOCATE = "summary.json", "env.yaml"
_SHAPES = st.sampled_from(["blob", "tree", "absent"])
_KINDS = st.sampled_from(["commit", "blob", "tree", "unknown"])


def make(raw: pygit2.Repository, kind: str, read: str, locate: str, data: bytes) -> str:
    """An object of *kind* ("unknown": an id of none) whose tree holds READ and LOCATE as *read* and *locate* say."""
    blob = raw.create_blob(data)
    inner = raw.TreeBuilder()
    inner.insert("x", blob, pygit2.enums.FileMode.BLOB)
    sub = inner.write()
    builder = raw.TreeBuilder()
    for name, shape in ((READ, read), (LOCATE, locate)):
        if shape == "blob":
            builder.insert(name, blob, pygit2.enums.FileMode.BLOB)
        elif shape == "tree":
            builder.insert(name, sub, pygit2.enums.FileMode.TREE)
    tree = builder.write()
    if kind == "commit":
        who = pygit2.Signature("a", "a@example.com", 1_700_000_000, 0)
        return str(raw.create_commit(None, who, who, f"run {data!r}", tree, []))
    return {"blob": str(blob), "tree": str(tree)}.get(kind, "0" * 39 + "1")


def answers(repo: Path, commits: list[str]) -> list[tuple[bytes, str] | None]:
    found = list(catfile.listing_files(Repo.discover(repo).gitdir, commits, READ, LOCATE))
    assert len(found) == len(commits)
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_KINDS, _SHAPES, _SHAPES, st.binary(max_size=40)), min_size=1, max_size=8))
def test_each_answer_is_what_libgit2_reads(empty_repo: Path, shapes: list[tuple[str, str, str, bytes]]) -> None:
    raw = pygit2.Repository(str(empty_repo))
    commits = [make(raw, *shape) for shape in shapes]
    reference = Repo.discover(empty_repo)
    for commit, (kind, read, locate, _), answer in zip(commits, shapes, answers(empty_repo, commits), strict=True):
        if answer is not None:
            assert answer == reference.read_path_and_entry(commit, READ, LOCATE)
        else:  # a run commit is always answered, with its env.yaml or without (a live run's first)
            assert not (kind == "commit" and read == "blob"), (kind, read, locate)


def test_an_entry_whose_object_is_gone_is_named_as_libgit2_names_it(empty_repo: Path) -> None:
    """git says "missing" for a path a tree lacks and for one whose object is gone: the tree tells."""
    raw = pygit2.Repository(str(empty_repo))
    without = make(raw, "commit", "blob", "absent", b"kept")
    builder = raw.TreeBuilder()
    builder.insert(READ, raw.create_blob(b"lost"), pygit2.enums.FileMode.BLOB)
    gone = raw.create_blob(b"an env.yaml whose object is then deleted")
    builder.insert(LOCATE, gone, pygit2.enums.FileMode.BLOB)
    who = pygit2.Signature("a", "a@example.com", 1_700_000_000, 0)
    damaged = str(raw.create_commit(None, who, who, "run", builder.write(), []))
    (empty_repo / ".git" / "objects" / str(gone)[:2] / str(gone)[2:]).unlink()
    reference = Repo.discover(empty_repo)
    found = answers(empty_repo, [without, damaged, without])
    assert found == [reference.read_path_and_entry(c, READ, LOCATE) for c in (without, damaged, without)]
    assert found == [(b"kept", None), (b"lost", str(gone)), (b"kept", None)]


def test_replacements_and_the_callers_git_variables_are_ignored(empty_repo: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    raw = pygit2.Repository(str(empty_repo))
    mine, other = make(raw, "commit", "blob", "blob", b"mine"), make(raw, "commit", "blob", "blob", b"other")
    git(empty_repo, "replace", mine, other)  # git would read the other commit for mine; libgit2 does not
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git(elsewhere, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(elsewhere / ".git"))  # as in a hook of another repository
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(elsewhere / ".git" / "objects"))
    (found,) = answers(empty_repo, [mine])
    assert found is not None and found[0] == b"mine"
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_OBJECT_DIRECTORY")
    assert found == Repo.discover(empty_repo).read_path_and_entry(mine, READ, LOCATE)


def test_without_git_nothing_is_answered(empty_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = make(pygit2.Repository(str(empty_repo)), "commit", "blob", "blob", b"x")
    gitdir = Repo.discover(empty_repo).gitdir
    monkeypatch.setenv("PATH", "")
    assert list(catfile.listing_files(gitdir, [commit, commit], READ, LOCATE)) == [None, None]


def test_a_reader_may_stop_early(empty_repo: Path) -> None:
    raw = pygit2.Repository(str(empty_repo))
    commits = [make(raw, "commit", "blob", "blob", str(i).encode() * 4000) for i in range(300)]
    reading = catfile.listing_files(Repo.discover(empty_repo).gitdir, commits, READ, LOCATE)
    first = next(reading)
    assert first is not None and first[0] == b"0" * 4000
    reading.close()  # git, blocked on a full pipe, is stopped rather than waited for
