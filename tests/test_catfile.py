"""catfile.listing_files, git's batch read of many runs: for every commit it answers, what libgit2's
read_commit_path (the reference) answers; for a usual run commit, an answer. catfile.blobs, the
chunks of a long history: what read_blob answers, for every blob."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitexp.git import catfile
from gitexp.git.repo import Repo
from tests.conftest import git

READ = "summary.json"
_SHAPES = st.sampled_from(["blob", "tree", "absent"])
_KINDS = st.sampled_from(["commit", "blob", "tree", "unknown"])


def make(raw: pygit2.Repository, kind: str, read: str, data: bytes) -> str:
    """An object of *kind* ("unknown": an id of none) whose tree holds READ as *read* says."""
    blob = raw.create_blob(data)
    inner = raw.TreeBuilder()
    inner.insert("x", blob, pygit2.enums.FileMode.BLOB)
    sub = inner.write()
    builder = raw.TreeBuilder()
    builder.insert("env.yaml", blob, pygit2.enums.FileMode.BLOB)  # (another entry: only READ is read)
    if read == "blob":
        builder.insert(READ, blob, pygit2.enums.FileMode.BLOB)
    elif read == "tree":
        builder.insert(READ, sub, pygit2.enums.FileMode.TREE)
    tree = builder.write()
    if kind == "commit":
        who = pygit2.Signature("a", "a@example.com", 1_700_000_000, 0)
        return str(raw.create_commit(None, who, who, f"run {data!r}", tree, []))
    return {"blob": str(blob), "tree": str(tree)}.get(kind, "0" * 39 + "1")


def answers(repo: Path, commits: list[str]) -> list[bytes | None]:
    found = list(catfile.listing_files(Repo.discover(repo).gitdir, commits, READ))
    assert len(found) == len(commits)
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_KINDS, _SHAPES, st.binary(max_size=40)), min_size=1, max_size=8))
def test_each_answer_is_what_libgit2_reads(empty_repo: Path, shapes: list[tuple[str, str, bytes]]) -> None:
    raw = pygit2.Repository(str(empty_repo))
    commits = [make(raw, *shape) for shape in shapes]
    reference = Repo.discover(empty_repo)
    for commit, (kind, read, _), answer in zip(commits, shapes, answers(empty_repo, commits), strict=True):
        if answer is not None:
            assert reference.read_commit_path(commit, READ) == (True, answer)
        else:  # a run commit with its summary is always answered
            assert not (kind == "commit" and read == "blob"), (kind, read)


def test_a_summary_whose_object_is_gone_is_not_answered(empty_repo: Path) -> None:
    """git says "missing" for the path of an object that is gone: the caller reads that run the
    reference way, which says what is wrong."""
    raw = pygit2.Repository(str(empty_repo))
    kept = make(raw, "commit", "blob", b"kept")
    builder = raw.TreeBuilder()
    gone = raw.create_blob(b"a summary whose object is then deleted")
    builder.insert(READ, gone, pygit2.enums.FileMode.BLOB)
    who = pygit2.Signature("a", "a@example.com", 1_700_000_000, 0)
    damaged = str(raw.create_commit(None, who, who, "run", builder.write(), []))
    (empty_repo / ".git" / "objects" / str(gone)[:2] / str(gone)[2:]).unlink()
    assert answers(empty_repo, [kept, damaged, kept]) == [b"kept", None, b"kept"]


def test_replacements_and_the_callers_git_variables_are_ignored(empty_repo: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    raw = pygit2.Repository(str(empty_repo))
    mine, other = make(raw, "commit", "blob", b"mine"), make(raw, "commit", "blob", b"other")
    git(empty_repo, "replace", mine, other)  # git would read the other commit for mine; libgit2 does not
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git(elsewhere, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(elsewhere / ".git"))  # as in a hook of another repository
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(elsewhere / ".git" / "objects"))
    (found,) = answers(empty_repo, [mine])
    assert found == b"mine"
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_OBJECT_DIRECTORY")
    assert Repo.discover(empty_repo).read_commit_path(mine, READ) == (True, found)


def test_without_git_nothing_is_answered(empty_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = make(pygit2.Repository(str(empty_repo)), "commit", "blob", b"x")
    gitdir = Repo.discover(empty_repo).gitdir
    monkeypatch.setenv("PATH", "")
    assert list(catfile.listing_files(gitdir, [commit, commit], READ)) == [None, None]


def test_a_reader_may_stop_early(empty_repo: Path) -> None:
    raw = pygit2.Repository(str(empty_repo))
    commits = [make(raw, "commit", "blob", str(i).encode() * 4000) for i in range(300)]
    reading = catfile.listing_files(Repo.discover(empty_repo).gitdir, commits, READ)
    first = next(reading)
    assert first == b"0" * 4000
    reading.close()  # git, blocked on a full pipe, is stopped rather than waited for


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_KINDS, st.binary(max_size=3000)), min_size=1, max_size=8))
def test_blobs_answers_every_blob_as_libgit2_reads_it(empty_repo: Path, shapes: list[tuple[str, bytes]]) -> None:
    raw = pygit2.Repository(str(empty_repo))
    oids = [make(raw, kind, "blob", data) for kind, data in shapes]
    reference = Repo.discover(empty_repo)
    found = list(catfile.blobs(reference.gitdir, oids))
    assert len(found) == len(oids)
    for (kind, data), oid, answer in zip(shapes, oids, found, strict=True):
        if kind == "blob":
            assert answer == data == reference.read_blob(oid)
        else:  # a tree, a commit, no object: the reference read says what it is
            assert answer is None
