"""`git exp rm`, `rm --undo` and `gc`, checked with plain git."""

from __future__ import annotations

from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.store.names import handles
from tests.conftest import git

QUIET = {"system_metrics_interval": 0}
TRASH = "refs/experiments-trash/"


def refs(repo: Path, prefix: str) -> dict[str, str]:
    """ref name -> commit, as `git for-each-ref` lists them."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
    return dict(line.split() for line in out.splitlines())


def reflog(repo: Path, ref: str) -> list[str]:
    """Reflog entries as `new-commit message`, newest first."""
    return git(repo, "reflog", "show", "--format=%H %gs", ref).splitlines()


def make_run(name: str, experiment: str = "cnn", checkpoint: bool = False) -> gitexp.Run:
    with gitexp.start_run(name=name, experiment=experiment, params={"lr": 0.1}, **QUIET) as run:
        run.log_metric("acc", 0.5)
        if checkpoint:
            run.checkpoint()  # what the background thread does in a longer run: one more ref move
    return run


def handle(run: gitexp.Run) -> str:
    """The handle messages name *run* by (removed or not)."""
    return handles([*(r.id for r in gitexp.load_runs()), run.id])[run.id]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_runs(repo: Path, capsys: pytest.CaptureFixture[str]) -> tuple[gitexp.Run, gitexp.Run]:
    runs = make_run("keep"), make_run("drop")
    capsys.readouterr()
    return runs


def test_rm_moves_the_ref_to_the_trash(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    keep, drop = two_runs
    before = refs(repo, "refs/experiments/")
    code, out, err = cli(capsys, "rm", "drop")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"removed {handle(drop)} cnn/drop"  # the run, not its ref
    assert "--undo" in out

    assert refs(repo, "refs/experiments/") == {keep.ref: before[keep.ref]}
    assert refs(repo, TRASH) == {f"{TRASH}cnn/{drop.id}": before[drop.ref]}

    code, out, _ = cli(capsys, "ls")
    assert code == 0
    assert "keep" in out and "drop" not in out
    code, _, err = cli(capsys, "show", "drop")
    assert code == 1 and "no run matches 'drop'" in err


def test_rm_undo_restores_the_same_commit(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, drop = two_runs
    commit = refs(repo, drop.ref)[drop.ref]
    assert cli(capsys, "rm", drop.id)[0] == 0
    code, out, err = cli(capsys, "rm", "--undo")
    assert (code, out, err) == (0, f"restored {handle(drop)} cnn/drop\n", "")
    assert refs(repo, drop.ref) == {drop.ref: commit}
    assert refs(repo, TRASH) == {}
    assert "drop" in cli(capsys, "ls")[1]


def test_rm_undo_by_name(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                         capsys: pytest.CaptureFixture[str]) -> None:
    keep, drop = two_runs
    assert cli(capsys, "rm", "keep")[0] == 0
    assert cli(capsys, "rm", "drop")[0] == 0
    assert len(refs(repo, TRASH)) == 2
    # The last rm removed "drop", but a run is restored by its name too.
    code, out, _ = cli(capsys, "rm", "--undo", "keep")
    assert (code, out) == (0, f"restored {handle(keep)} cnn/keep\n")
    assert list(refs(repo, "refs/experiments/")) == [keep.ref]
    assert list(refs(repo, TRASH)) == [f"{TRASH}cnn/{drop.id}"]


def test_rm_names_runs_by_handles_that_rm_undo_and_show_take(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    keep, drop = two_runs
    code, out, _ = cli(capsys, "rm", "keep", drop.id)
    assert code == 0
    removed = [line.split()[1] for line in out.splitlines() if line.startswith("removed ")]
    assert removed == [handle(keep), handle(drop)]
    assert out.splitlines()[-1] == "(`git exp rm --undo` restores them; `git exp gc` deletes them for good)"
    for shown, run in zip(removed, (keep, drop), strict=True):
        code, out, err = cli(capsys, "rm", "--undo", shown)
        assert (code, out, err) == (0, f"restored {shown} cnn/{run.name}\n", "")
        code, out, _ = cli(capsys, "show", shown)
        assert code == 0 and run.id in out


def test_rm_refuses_a_running_run_naming_it(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="busy", experiment="cnn", **QUIET) as run:
        gitexp.flush()
        code, _, err = cli(capsys, "rm", "busy")
        assert code == 1
        assert f"run {handle(run)} cnn/busy is still RUNNING" in err and "--force" in err


def test_undo_with_nothing_to_undo(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "rm", "--undo")
    assert (code, out) == (1, "")
    assert err.startswith("git exp: error: nothing to undo")
    assert len(err.strip().splitlines()) == 1
    # Undone once: a second undo has nothing left to do either.
    assert cli(capsys, "rm", "drop")[0] == 0
    assert cli(capsys, "rm", "--undo")[0] == 0
    code, _, err = cli(capsys, "rm", "--undo")
    assert code == 1 and "nothing to undo" in err


def test_rm_is_all_or_nothing(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                              capsys: pytest.CaptureFixture[str]) -> None:
    before = refs(repo, "refs/experiments/")
    code, out, err = cli(capsys, "rm", "drop", "no-such-run")
    assert (code, out) == (1, "")
    assert "no-such-run" in err
    assert refs(repo, "refs/experiments/") == before
    assert refs(repo, TRASH) == {}


def test_rm_without_runs_is_an_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "rm")
    assert code == 1 and "name the runs to remove" in err


def test_gc_dry_run_then_gc(repo: Path, two_runs: tuple[gitexp.Run, gitexp.Run],
                            capsys: pytest.CaptureFixture[str]) -> None:
    keep, drop = two_runs
    trashed = f"{TRASH}cnn/{drop.id}"
    assert cli(capsys, "rm", "drop")[0] == 0

    code, out, _ = cli(capsys, "gc", "--dry-run")
    assert (code, out) == (0, f"would delete {trashed}\n")
    assert list(refs(repo, TRASH)) == [trashed]

    code, out, _ = cli(capsys, "gc")
    assert (code, out) == (0, f"deleted {trashed}\n")
    assert refs(repo, TRASH) == {}
    assert list(refs(repo, "refs/experiments/")) == [keep.ref]

    code, _, err = cli(capsys, "rm", "--undo")
    assert code == 1 and "nothing to undo" in err
    code, _, err = cli(capsys, "rm", "--undo", drop.id)
    assert code == 1 and drop.id in err
    assert list(refs(repo, "refs/experiments/")) == [keep.ref]
    # Nothing left to collect.
    assert cli(capsys, "gc") == (0, "", "")


def test_reflog_is_kept_through_rm_and_undo(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run("logged", checkpoint=True)
    capsys.readouterr()
    history = reflog(repo, run.ref)
    assert len(history) == 2  # the checkpoint (with the first commit under it) and the final commit
    assert history[0].split()[0] == refs(repo, run.ref)[run.ref]
    assert history[-1].split(maxsplit=1)[1] == f"gitexp: running {run.id}"

    assert cli(capsys, "rm", "logged")[0] == 0
    trashed = f"{TRASH}cnn/{run.id}"
    assert reflog(repo, trashed)[-len(history):] == history

    assert cli(capsys, "rm", "--undo")[0] == 0
    assert reflog(repo, run.ref)[-len(history):] == history
    assert git(repo, "reflog", "show", trashed, check=False) == ""


def test_reflog_says_why_the_ref_moved(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run("logged")
    capsys.readouterr()
    assert cli(capsys, "rm", "logged")[0] == 0
    assert reflog(repo, f"{TRASH}cnn/{run.id}")[0].endswith(f" gitexp: rm {run.id}")
    assert cli(capsys, "rm", "--undo")[0] == 0
    assert reflog(repo, run.ref)[0].endswith(f" gitexp: rm --undo {run.id}")
