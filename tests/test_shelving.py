"""Runs on the shelf (gitexp/git/shelf.py, put there by refmaint.shelve_settled): read, written,
removed, verified and shared as runs with refs are, with real git, a bare remote and `git gc`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.errors import RunNotFoundError
from gitexp.git import refmaint, shelf
from gitexp.git.repo import Repo
from gitexp.ops.verify import verify_runs
from gitexp.store import runs
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}


def _make(count: int, experiment: str = "cnn") -> list[gitexp.Run]:
    made = []
    for k in range(count):
        with gitexp.start_run(experiment=experiment, name=f"r{k}", params={"k": k}, **QUIET) as run:
            run.log_metric("acc", k / 10)
        made.append(run)
    return made


def _shelve(repo: Path) -> int:
    """The upkeep's pass (reflogs archived at any age), then shelving from any size."""
    gitexp.flush()
    refmaint.upkeep(repo / ".git", min_age=0, archive=True)
    return refmaint.shelve_settled(repo / ".git", from_size=0)


def _own_run_refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()


def _listing(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["ls", "--format", "csv", *args]) == 0
    return capsys.readouterr().out


def _problems(repo: Path) -> list[str]:
    handle = Repo.discover(repo)
    return [str(p) for p in verify_runs(handle, sorted(handle.refs("refs/experiments/").items()))]


def test_shelved_runs_read_as_before_without_refs_and_survive_git_gc(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made = _make(3)
    before = _listing(capsys)
    commits = {run.ref: Repo.discover(repo).ref(run.ref) for run in made}
    assert _shelve(repo) == 3
    assert _own_run_refs(repo) == []  # what git goes through: one ref for them all
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments-shelf").split() == [shelf.SHELF_REF]
    assert Repo.discover(repo).refs("refs/experiments/") == commits
    assert {r.ref: r.commit for r in runs.load_runs()} == commits
    assert _listing(capsys) == before
    subprocess.run(["git", "-c", "gc.reflogExpire=now", "-c", "gc.reflogExpireUnreachable=now", "gc", "--prune=now",
                    "--quiet"], cwd=repo, check=True)
    assert _listing(capsys) == before
    assert main(["show", made[1].id]) == 0 and "r1" in capsys.readouterr().out
    assert _problems(repo) == []


def test_a_live_run_and_one_just_made_stay_off_the_shelf(repo: Path) -> None:
    ended = _make(1)[0]
    live = gitexp.start_run(experiment="cnn", name="live", **QUIET)
    live.log_metric("acc", 0.5)
    assert _shelve(repo) == 1
    assert _own_run_refs(repo) == [live.ref]
    assert ended.ref in shelf.read(repo / ".git")
    live.log_metric("acc", 0.6)
    live.end()
    assert live.ref not in shelf.read(repo / ".git")
    assert gitexp.get_run(live.id).status == "FINISHED" and gitexp.get_run(live.id).metrics["acc"]["last"] == 0.6


def test_resuming_a_shelved_run_gives_it_its_ref_back_and_verify_sees_one_history(repo: Path) -> None:
    run = _make(1)[0]
    shelved_at = Repo.discover(repo).ref(run.ref)
    assert _shelve(repo) == 1
    with gitexp.start_run(resume=run.id, **QUIET) as again:
        again.log_metric("acc", 0.95)
    assert _own_run_refs(repo) == [run.ref]
    tip = git(repo, "rev-parse", run.ref).strip()
    assert tip != shelved_at and git(repo, "merge-base", "--is-ancestor", shelved_at, tip) == ""
    assert run.ref not in shelf.read(repo / ".git")  # taken back: deleting the ref later shows nothing
    assert gitexp.get_run(run.id).metrics["acc"]["last"] == 0.95
    assert _problems(repo) == []


def test_rm_of_a_shelved_run_and_its_undo_and_gc(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept, gone = _make(2)
    assert _shelve(repo) == 2
    assert main(["rm", gone.id]) == 0
    assert gone.id not in _listing(capsys) and gone.ref not in shelf.read(repo / ".git")
    assert main(["rm", "--undo", gone.id]) == 0
    assert gone.id in _listing(capsys)
    assert main(["rm", gone.id]) == 0 and main(["gc"]) == 0
    capsys.readouterr()
    listing = _listing(capsys)
    assert gone.id not in listing and kept.id in listing
    with pytest.raises(RunNotFoundError):
        gitexp.get_run(gone.id)
    # `git exp gc` wrote the shelf again without it: one link, whose only parent is the run kept,
    # under the tip's link of no runs.
    (link,) = git(repo, "show", "-s", "--format=%P", shelf.SHELF_REF).split()
    assert git(repo, "show", "-s", "--format=%P", link).split() == [runs.get_run(kept.id).commit]


def test_git_gc_deletes_what_a_run_removed_for_good_alone_held(repo: Path) -> None:
    kept, gone = _make(2)
    gone_commit = Repo.discover(repo).ref(gone.ref)
    assert _shelve(repo) == 2
    assert main(["rm", gone.id]) == 0 and main(["gc"]) == 0
    subprocess.run(["git", "-c", "gc.reflogExpire=now", "-c", "gc.reflogExpireUnreachable=now", "gc", "--prune=now",
                    "--quiet"], cwd=repo, check=True)
    assert subprocess.run(["git", "cat-file", "-e", f"{gone_commit}^{{commit}}"], cwd=repo).returncode != 0
    assert runs.get_run(kept.id).metrics["acc"]["last"] == 0.0


def test_verify_names_a_damaged_shelf_and_checks_the_runs_with_refs(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _make(2)
    assert _shelve(repo) == 2
    fresh = _make(1)[0]
    assert main(["verify"]) == 0
    capsys.readouterr()
    tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
    git(repo, "update-ref", shelf.SHELF_REF, tree)
    assert main(["verify"]) == 1
    out, err = capsys.readouterr()
    assert shelf.SHELF_REF in out and tree[:12] in out and "verified 1 run(s)" in err
    with pytest.raises(shelf.ShelfError):
        runs.load_runs()
    assert fresh.ref in git(repo, "for-each-ref", "refs/experiments/")


def test_shelved_runs_are_pushed_fetched_and_updated_through_a_remote(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", bare.as_uri())
    git(repo, "push", "-q", "origin", "main")
    first, second = _make(2)
    assert _shelve(repo) == 2
    assert main(["push", "origin", first.id]) == 0  # one, named
    assert git(bare, "for-each-ref", "--format=%(refname)", "refs/experiments/").split() == [first.ref]
    assert main(["push"]) == 0  # all: the other one too
    assert sorted(git(bare, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()) == \
        sorted([first.ref, second.ref])
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", bare.as_uri(), str(other))
    # The other clone resumes a run; ours, where it is shelved, fetches the longer history.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(other)
        assert main(["fetch"]) == 0
        with gitexp.start_run(resume=first.id, **QUIET) as again:
            again.log_metric("acc", 0.99)
        assert main(["push"]) == 0
    assert main(["fetch"]) == 0
    assert git(repo, "rev-parse", first.ref).strip() == git(bare, "rev-parse", first.ref).strip()
    assert first.ref not in shelf.read(repo / ".git") and second.ref in shelf.read(repo / ".git")
    assert gitexp.get_run(first.id).metrics["acc"]["last"] == 0.99
    assert _problems(repo) == []


def test_a_small_repository_gets_no_shelf_but_one_with_a_shelf_shelves_at_every_pass(repo: Path) -> None:
    first = _make(1)[0]
    gitexp.flush()
    refmaint.upkeep(repo / ".git", min_age=0, archive=True)  # packed-refs far under SHELVE_FROM
    assert _own_run_refs(repo) == [first.ref] and shelf.tip(repo / ".git") is None
    assert refmaint.shelve_settled(repo / ".git", from_size=0) == 1
    second = _make(1)[0]
    gitexp.flush()
    refmaint.upkeep(repo / ".git", min_age=0, archive=True)
    assert _own_run_refs(repo) == [] and set(shelf.read(repo / ".git")) == {first.ref, second.ref}


def test_updates_of_many_shelved_runs_take_them_off_the_shelf_in_one_link(repo: Path) -> None:
    made = _make(3)
    assert _shelve(repo) == 3
    handle = Repo.discover(repo)
    moves = []
    for run in made[:2]:
        old = handle.ref(run.ref)
        new = git(repo, "commit-tree", f"{old}^{{tree}}", "-p", old, "-m", "later", check=True).strip()
        moves.append((run.ref, new, old))
    stale = (made[2].ref, moves[0][1], moves[0][2])  # not where the shelf has it: left as it is
    links_before = git(repo, "rev-list", "--count", "--first-parent", shelf.SHELF_REF).strip()
    assert handle.update_refs([*moves, stale], "gitexp: fetch origin") == [made[0].ref, made[1].ref]
    assert sorted(_own_run_refs(repo)) == sorted(run.ref for run in made[:2])
    assert list(shelf.read(repo / ".git")) == [made[2].ref]
    assert int(git(repo, "rev-list", "--count", "--first-parent", shelf.SHELF_REF)) == int(links_before) + 1
    assert "2 taken back" in git(repo, "log", "-1", "--format=%s", shelf.SHELF_REF)
    assert [line.split()[:2] for line in (repo / ".git" / "logs" / made[0].ref).read_text().splitlines()] == \
        [[moves[0][2], moves[0][1]]]  # its reflog goes on from the shelved commit


def test_a_ref_that_cannot_be_deleted_stays_and_wins_and_its_rm_shows_nothing_shelved(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held, other = _make(2)
    gitexp.flush()
    refmaint.upkeep(repo / ".git", min_age=0, archive=True)
    lock = repo / ".git" / f"{held.ref}.lock"  # another git writing it: the deleting transaction fails
    lock.parent.mkdir(parents=True, exist_ok=True)  # (packed: its folder went with pack-refs)
    lock.write_text("")
    try:
        assert refmaint.shelve_settled(repo / ".git", from_size=0) == 0  # shelved, no ref deleted
    finally:
        lock.unlink()
    assert sorted(_own_run_refs(repo)) == sorted([held.ref, other.ref])
    assert set(shelf.read(repo / ".git")) == {held.ref, other.ref}
    assert [r.id for r in runs.load_runs()].count(held.id) == 1
    assert refmaint.shelve_settled(repo / ".git", from_size=0) == 2  # the next pass deletes them
    assert _own_run_refs(repo) == []
    assert main(["verify"]) == 0
    assert main(["rm", held.id]) == 0 and main(["gc"]) == 0
    capsys.readouterr()
    assert held.id not in _listing(capsys) and held.ref not in shelf.read(repo / ".git")
    assert other.id in _listing(capsys)


def test_rm_of_many_shelved_runs_takes_them_off_the_shelf_in_one_link(repo: Path) -> None:
    made = _make(3)
    assert _shelve(repo) == 3
    before = int(git(repo, "rev-list", "--count", "--first-parent", shelf.SHELF_REF))
    assert main(["rm", made[0].id, made[2].id]) == 0
    assert int(git(repo, "rev-list", "--count", "--first-parent", shelf.SHELF_REF)) == before + 1
    assert "2 taken back" in git(repo, "log", "-1", "--format=%s", shelf.SHELF_REF)
    assert list(shelf.read(repo / ".git")) == [made[1].ref]


def test_a_shelved_run_made_on_a_dirty_tree_is_linked_when_its_code_is_committed(repo: Path) -> None:
    from gitexp.ops import link

    (repo / "train.py").write_text("print('dirty')\n")
    run = _make(1)[0]
    assert _shelve(repo) == 1
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "the code of the run")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert link.link_runs(Repo.discover(repo), head) == [run.id]
    assert gitexp.get_run(run.id).meta["linked_commit"] == head
    assert _own_run_refs(repo) == [run.ref] and run.ref not in shelf.read(repo / ".git")
    assert _problems(repo) == []


def test_a_second_pass_that_finds_the_refs_already_deleted_keeps_them_on_the_shelf(repo: Path) -> None:
    # Two upkeep passes once read the same refs: the second's transaction failed on the refs the
    # first had deleted, and took them off the shelf as if they had moved: 12,443 runs out of sight.
    made = _make(2)
    commits = {run.ref: Repo.discover(repo).ref(run.ref) for run in made}
    assert _shelve(repo) == 2
    with shelf.locked(repo / ".git"):
        assert refmaint.delete_shelved(repo / ".git", commits) == 2  # gone, as the first pass left them
    assert shelf.read(repo / ".git") == commits
    assert {r.ref: r.commit for r in runs.load_runs()} == commits


def test_many_shelved_runs_go_in_one_push_through_refs_made_for_it_and_deleted_after(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitexp.ops import remote

    monkeypatch.setattr(remote, "FEW_SHELVED", 1)  # (100 in use: more than 1 here)
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", bare.as_uri())
    made = _make(3)
    assert _shelve(repo) == 3
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "update-ref", f"{remote.PUSHING_PREFIX}left/by-a-killed-push", head)
    assert main(["push"]) == 0
    assert sorted(git(bare, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()) == \
        sorted(run.ref for run in made)
    assert git(repo, "for-each-ref", remote.PUSHING_PREFIX) == ""
    assert git(bare, "for-each-ref", remote.PUSHING_PREFIX) == ""
    assert main(["push"]) == 0  # nothing new: every run up to date, no refs made for it
    assert git(repo, "for-each-ref", remote.PUSHING_PREFIX) == ""


def test_exp_shelve_false_keeps_a_ref_for_every_run(repo: Path) -> None:
    git(repo, "config", "exp.shelve", "false")
    made = _make(2)
    assert _shelve(repo) == 0
    assert sorted(_own_run_refs(repo)) == sorted(run.ref for run in made) and shelf.tip(repo / ".git") is None
    git(repo, "config", "exp.shelve", "true")
    assert refmaint.shelve_settled(repo / ".git", from_size=0) == 2
