"""`git exp checkout` and `git exp rerun`: a run's exact code back, and run again to the same metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.views import diff
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}

DETERMINISTIC = """
import gitexp
params = gitexp.params()
with gitexp.start_run() as run:
    x = 1.0
    for step in range(20):
        x = x * (1 - params["lr"]) + params.get("noise", 0.0)
        run.log_metric("loss", x)
        run.log_metric("acc", 1 - x / 2)
print("final", x)
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def dirty_run(repo: Path) -> gitexp.RunRecord:
    """A run made on a tree with a modified tracked file, a deleted one and an untracked one."""
    (repo / "lib.py").write_text("VALUE = 1\n")
    git(repo, "add", "lib.py")
    git(repo, "commit", "-q", "-m", "lib")
    (repo / "train.py").write_text("print('edited, never committed')\n")
    (repo / "lib.py").unlink()
    (repo / "notes.txt").write_text("untracked\n")
    with gitexp.start_run(name="dirty", **QUIET) as run:
        run.log_metric("acc", 0.5)
    git(repo, "checkout", "-q", "--", ".")
    (repo / "notes.txt").unlink()
    return gitexp.get_run(run.id)


def files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(folder).parts}


def test_checkout_branch_recreates_the_dirty_code(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = dirty_run(repo)
    base = git(repo, "rev-parse", "HEAD").strip()
    code, out, _ = cli(capsys, "checkout", "dirty", "-b", "run-code")
    assert code == 0 and "switched to the new branch run-code" in out
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "run-code"
    assert git(repo, "rev-parse", "HEAD^{tree}").strip() == record.meta["code"]["tree"]
    assert git(repo, "rev-parse", "HEAD~1").strip() == base
    assert files(repo) == {".gitignore": "*.ckpt\n", "notes.txt": "untracked\n",
                           "train.py": "print('edited, never committed')\n"}
    assert git(repo, "status", "--porcelain") == ""


def test_checkout_never_overwrites_uncommitted_work(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirty_run(repo)
    (repo / "train.py").write_text("my unsaved work\n")
    code, _, err = cli(capsys, "checkout", "dirty", "-b", "run-code")
    assert code == 1 and "uncommitted changes (train.py)" in err and "--worktree" in err
    assert (repo / "train.py").read_text() == "my unsaved work\n"
    assert git(repo, "branch", "--list", "run-code") == ""
    # An untracked file the run's code would replace: git refuses, and the new branch goes again.
    git(repo, "checkout", "-q", "--", ".")
    (repo / "notes.txt").write_text("mine, untracked\n")
    code, _, err = cli(capsys, "checkout", "dirty", "-b", "run-code")
    assert code == 1 and "notes.txt" in err
    assert (repo / "notes.txt").read_text() == "mine, untracked\n" and git(repo, "branch", "--list", "run-code") == ""
    code, _, err = cli(capsys, "checkout", "dirty", "-b", "main")
    assert code == 1 and "branch 'main' exists already" in err
    code, _, err = cli(capsys, "checkout", "dirty")
    assert code == 1 and "-b BRANCH" in err


def test_checkout_worktree_leaves_the_working_tree_alone(repo: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    record = dirty_run(repo)
    (repo / "train.py").write_text("my unsaved work\n")
    target = tmp_path / "code-of-run"
    code, out, _ = cli(capsys, "checkout", record.id, "--worktree", str(target))
    assert code == 0 and str(target) in out
    assert files(target) == {".gitignore": "*.ckpt\n", "notes.txt": "untracked\n",
                             "train.py": "print('edited, never committed')\n"}
    assert (repo / "train.py").read_text() == "my unsaved work\n"
    code, _, err = cli(capsys, "checkout", record.id, "--worktree", str(target))
    assert code == 1 and "not empty" in err


def test_checkout_of_a_clean_run_is_its_base_commit(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="clean", **QUIET):
        pass
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "commit", "-q", "--allow-empty", "-m", "later")
    assert cli(capsys, "checkout", "clean", "-b", "clean-code")[0] == 0
    assert git(repo, "rev-parse", "HEAD").strip() == base


def test_checkout_restores_artifacts_on_request(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "weights.txt").write_text("w = 42\n")
    with gitexp.start_run(name="with-artifacts", **QUIET) as run:
        run.log_artifact(repo / "weights.txt")
    (repo / "weights.txt").unlink()
    target = tmp_path / "restored"
    code, _, err = cli(capsys, "checkout", run.id, "--worktree", str(target), "--artifacts")
    assert code == 0, err
    assert (target / "artifacts" / "weights.txt").read_text() == "w = 42\n"


def write_script(repo: Path, folder: str = ".") -> None:
    (repo / folder).mkdir(exist_ok=True)
    (repo / folder / "det.py").write_text(DETERMINISTIC)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "deterministic script")


def test_rerun_reproduces_metrics_exactly(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_script(repo)
    (repo / "det.py").write_text(DETERMINISTIC.replace("range(20)", "range(30)"))  # uncommitted edit
    code, _, _ = cli(capsys, "run", "--name", "original", "-p", "lr=0.25", "--", sys.executable, "det.py")
    assert code == 0
    git(repo, "checkout", "-q", "--", ".")  # the edit is gone from the working tree; the run has it
    original = gitexp.get_run("original")
    code, _, err = cli(capsys, "rerun", "original")
    assert code == 0 and "rerun of" in err
    rerun = next(r for r in gitexp.load_runs() if r.meta.get("rerun_of") == original.id)
    assert rerun.params == original.params and rerun.status == "FINISHED"
    assert rerun.meta["code"]["tree"] == original.meta["code"]["tree"]
    assert rerun.base_commit == original.base_commit and rerun.meta["git"]["dirty"] is True
    for key in ("loss", "acc"):
        assert rerun.history(key).values == original.history(key).values
        assert rerun.history(key).steps == list(range(30))
    assert b"final" in (rerun.read("output.log") or b"")
    changes = diff.diff_runs(original, rerun)
    assert all(m.get("abs") == 0 for m in changes["metrics"].values())
    assert git(repo, "worktree", "list").count("\n") == 1  # the temporary worktree is gone
    assert not (repo / ".git" / "worktrees").exists() or not any((repo / ".git" / "worktrees").iterdir())


def test_rerun_with_overrides_runs_in_the_recorded_folder(repo: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_script(repo, "src")
    (repo / "src" / "data.txt").write_text("only in src/\n")
    (repo / "src" / "det.py").write_text("import pathlib\nassert pathlib.Path('data.txt').exists()\n"
                                         + DETERMINISTIC)
    monkeypatch.chdir(repo / "src")
    assert cli(capsys, "run", "--name", "in-src", "-p", "lr=0.5", "-p", "model.depth=2", "--",
               sys.executable, "det.py")[0] == 0
    monkeypatch.chdir(repo)
    original = gitexp.get_run("in-src")
    assert original.meta["code"]["cwd"] == "src"
    code, _, err = cli(capsys, "rerun", "in-src", "-p", "lr=0.1", "--name", "slower")
    assert code == 0, err
    slower = gitexp.get_run("slower")
    assert slower.meta["rerun_of"] == original.id
    assert slower.params == {"lr": 0.1, "model": {"depth": 2}}
    assert slower.metrics["loss"]["last"] != original.metrics["loss"]["last"]


def test_rerun_refuses_what_it_cannot_repeat(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="masked", command=["python", "train.py", "--token", "****"], **QUIET):
        pass
    code, _, err = cli(capsys, "rerun", "masked")
    assert code == 1 and "****" in err
    git(repo, "config", "exp.captureCode", "false")
    with gitexp.start_run(name="no-code", command=["true"], **QUIET):
        pass
    code, _, err = cli(capsys, "rerun", "no-code")
    assert code == 1 and "no code snapshot" in err
