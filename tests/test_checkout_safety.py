"""`git exp checkout RUN --artifacts` never writes outside the checkout: a run's code (fetched from
anyone) may hold `artifacts` or a folder under it as a symlink pointing elsewhere, or as a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}

pytestmark = pytest.mark.faults


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def hostile_run(repo: Path, outside: Path, link: str) -> str:
    """A run whose code/ holds the untracked symlink *link* -> *outside*, and which logged artifacts
    that restore would write through it (as a run fetched from someone else can be)."""
    (repo / "weights.txt").write_text("w = 42\n")
    (repo / "deep.txt").write_text("deep\n")
    where = repo / link
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(outside)
    with gitexp.start_run(name="hostile", **QUIET) as run:
        run.log_artifact(str(repo / "weights.txt"))
        run.log_artifact(str(repo / "deep.txt"), name="sub/deep.txt")
    where.unlink()
    for name in ("weights.txt", "deep.txt"):
        (repo / name).unlink()
    return run.id


@pytest.mark.parametrize("link", ["artifacts", "artifacts/sub"])
def test_a_symlink_in_the_runs_code_is_refused_before_anything_changes(
        repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    run_id = hostile_run(repo, outside, link)
    target = tmp_path / "wt"
    code, _, err = cli(capsys, "checkout", run_id, "--worktree", str(target), "--artifacts")
    assert code == 1
    assert f"its code has {link} as a symlink to {str(outside)!r}" in err
    assert "Nothing was changed" in err and f"git exp get {run_id} -o DIR" in err
    assert list(outside.iterdir()) == [] and not target.exists()
    code, _, err = cli(capsys, "checkout", run_id, "-b", "run-code", "--artifacts")
    assert code == 1 and "symlink" in err
    assert git(repo, "branch", "--list", "run-code") == "" and list(outside.iterdir()) == []
    # Without --artifacts the code itself (symlink included) checks out as it ran.
    assert cli(capsys, "checkout", run_id, "--worktree", str(target))[0] == 0
    assert os.readlink(target / link) == str(outside)


def test_a_file_where_the_artifacts_folder_goes_is_refused(repo: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "weights.txt").write_text("w = 42\n")
    (repo / "artifacts").write_text("not a folder\n")
    with gitexp.start_run(name="file-in-the-way", **QUIET) as run:
        run.log_artifact(str(repo / "weights.txt"))
    code, _, err = cli(capsys, "checkout", run.id, "--worktree", str(tmp_path / "wt"), "--artifacts")
    assert code == 1 and "its code has artifacts as a file, not a folder" in err
    assert not (tmp_path / "wt").exists()


def test_an_untracked_symlink_in_your_working_tree_is_not_followed(repo: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """-b checks the code out into your working tree, where an untracked `artifacts` symlink stays."""
    (repo / "weights.txt").write_text("w = 42\n")
    with gitexp.start_run(name="plain", **QUIET) as run:
        run.log_artifact(str(repo / "weights.txt"))
    (repo / "weights.txt").unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "artifacts").symlink_to(outside)
    git(repo, "commit", "-q", "--allow-empty", "-m", "later")
    (repo / ".git" / "info" / "exclude").write_text("artifacts\n")
    code, _, err = cli(capsys, "checkout", run.id, "-b", "run-code", "--artifacts")
    assert code == 1
    assert f"{repo / 'artifacts'} is a symlink (to {str(outside)!r}), not a folder" in err
    assert "nothing was written there" in err and f"git exp get {run.id} -o DIR" in err
    assert list(outside.iterdir()) == []
