"""Git hooks: install over existing hooks and restore them exactly, core.hooksPath, pre-commit,
the post-commit link of runs made on a dirty tree, and the background auto-run."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.ops import hookentry, hooks
from gitexp.store import notes
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}
ROOT = Path(__file__).resolve().parent.parent
USER_HOOK = b"#!/bin/sh\n# the user's own hook\necho user-hook-ran \"$@\" >&2\n"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def commit(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A real `git commit`, whose hooks find this gitexp (env: the gitexp_env fixture)."""
    proc = subprocess.run(["git", "commit", "-q", *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """Poll *check* until it returns something truthy; the background work has no completion signal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    log = Path.cwd() / ".git" / "gitexp" / "hooks.log"
    problems = log.read_text() if log.exists() else "(no hooks.log)"
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; background problems: {problems}")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """name -> (bytes, mode, inode) of every hook file: what 'restored exactly' compares."""
    return {p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode), p.stat().st_ino)
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_install_chains_an_existing_hook_and_uninstall_restores_it(repo: Path, gitexp_env: dict[str, str],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = repo / ".git" / "hooks"
    (folder / "post-commit").write_bytes(USER_HOOK)
    (folder / "post-commit").chmod(0o750)
    before = snapshot(folder)
    code, out, _ = cli(capsys, "hooks", "install")
    assert code == 0 and "kept as post-commit.gitexp-chained" in out
    assert (folder / "post-commit").read_bytes() == (ROOT / "hooks" / "post-commit").read_bytes()
    assert os.access(folder / "post-commit", os.X_OK)
    assert (folder / "post-commit.gitexp-chained").read_bytes() == USER_HOOK
    installed = snapshot(folder)
    assert cli(capsys, "hooks", "install")[0] == 0 and snapshot(folder) == installed  # idempotent
    assert "installed; chains the previous hook" in cli(capsys, "hooks", "status")[1]
    proc = commit(repo, gitexp_env, "--allow-empty", "-m", "with hooks")
    assert "user-hook-ran" in proc.stderr  # the user's hook still runs
    code, out, _ = cli(capsys, "hooks", "uninstall")
    assert code == 0 and "restored the previous one" in out
    assert snapshot(folder) == before  # same bytes, same mode, even the same file


def test_hooks_path_is_respected_and_a_created_folder_removed(repo: Path, gitexp_env: dict[str, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    git(repo, "config", "core.hooksPath", "githooks")
    default = snapshot(repo / ".git" / "hooks")
    code, out, _ = cli(capsys, "hooks", "install")
    assert code == 0 and "created the hooks folder" in out
    assert hooks._is_ours(repo / "githooks" / "post-commit")
    assert snapshot(repo / ".git" / "hooks") == default
    assert "core.hooksPath = githooks" in cli(capsys, "hooks", "status")[1]
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert not (repo / "githooks").exists()


def test_hooks_path_with_a_hook_in_it(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      gitexp_env: dict[str, str]) -> None:
    shared = tmp_path / "shared-hooks"
    shared.mkdir()
    (shared / "post-commit").write_bytes(USER_HOOK)
    (shared / "post-commit").chmod(0o755)
    (shared / "pre-push").write_bytes(b"#!/bin/sh\nexit 0\n")
    before = snapshot(shared)
    git(repo, "config", "core.hooksPath", str(shared))
    assert cli(capsys, "hooks", "install")[0] == 0
    assert (shared / "post-commit.gitexp-chained").read_bytes() == USER_HOOK
    assert "user-hook-ran" in commit(repo, gitexp_env, "--allow-empty", "-m", "x").stderr
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert snapshot(shared) == before


def test_install_refuses_to_lose_a_hook(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = repo / ".git" / "hooks"
    (folder / "post-commit").write_bytes(USER_HOOK)
    (folder / "post-commit.gitexp-chained").write_bytes(b"#!/bin/sh\n# something else\n")
    code, _, err = cli(capsys, "hooks", "install")
    assert code == 1 and "move one of them away" in err
    assert (folder / "post-commit").read_bytes() == USER_HOOK


def test_show_in_log_only_when_asked_and_removed_on_uninstall(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "hooks", "install")[0] == 0
    assert git(repo, "config", "--get-all", "notes.displayRef", check=False) == ""
    git(repo, "config", "--add", "notes.displayRef", "refs/notes/review")
    assert cli(capsys, "hooks", "install", "--show-in-log")[0] == 0
    assert git(repo, "config", "--get-all", "notes.displayRef").split() == ["refs/notes/review", notes.NOTES_REF]
    with gitexp.start_run(name="visible", **QUIET):
        pass
    gitexp.flush()  # the note, as the end of the script would write it
    assert "visible FINISHED" in git(repo, "log", "-1")  # plain git log shows the run
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert git(repo, "config", "--get-all", "notes.displayRef").split() == ["refs/notes/review"]


def test_coexists_with_the_pre_commit_framework(repo: Path, gitexp_env: dict[str, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("pre-commit", path=gitexp_env["PATH"]) is None:
        pytest.skip("the pre-commit framework is not installed")
    (repo / ".pre-commit-config.yaml").write_text("repos: []\n")
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-q", "-m", "pre-commit config")

    def pre_commit(*args: str) -> None:
        proc = subprocess.run(["pre-commit", *args], cwd=repo, env=gitexp_env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    folder = repo / ".git" / "hooks"
    pre_commit("install", "-t", "pre-commit", "-t", "post-commit")
    theirs = snapshot(folder)
    assert cli(capsys, "hooks", "install")[0] == 0
    assert (folder / "pre-commit").read_bytes() == theirs["pre-commit"][0]  # other hooks untouched
    assert (folder / "post-commit.gitexp-chained").read_bytes() == theirs["post-commit"][0]
    linked = _dirty_run_then_commit(repo, gitexp_env)
    assert linked
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert snapshot(folder) == theirs
    # The other order: pre-commit installs over gitexp's hook and runs it as post-commit.legacy.
    pre_commit("uninstall", "-t", "post-commit", "-t", "pre-commit")
    assert cli(capsys, "hooks", "install")[0] == 0
    pre_commit("install", "-t", "post-commit")
    assert hooks._is_ours(folder / "post-commit.legacy")
    assert "run by the pre-commit framework" in cli(capsys, "hooks", "status")[1]
    assert _dirty_run_then_commit(repo, gitexp_env, "again")
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert not (folder / "post-commit.legacy").exists() and not hooks._is_ours(folder / "post-commit")


def _dirty_run_then_commit(repo: Path, env: dict[str, str], text: str = "v2") -> str:
    (repo / "train.py").write_text(f"print('{text}')\n")
    (repo / f"new_{text}.py").write_text("x = 1\n")
    with gitexp.start_run(name=f"dirty-{text}", **QUIET) as run:
        run.log_metric("acc", 0.75)
    git(repo, "add", "-A")
    proc = commit(repo, env, "-m", f"commit the code of {text}")
    head = git(repo, "rev-parse", "HEAD").strip()
    wait_for(lambda: gitexp.get_run(run.id).meta.get("linked_commit") == head,
             f"the run to be linked (the commit said: {proc.stderr.strip() or 'nothing'})")
    return head


def test_post_commit_links_a_run_made_on_a_dirty_tree(repo: Path, gitexp_env: dict[str, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "hooks", "install")[0] == 0
    with gitexp.start_run(name="clean-before", **QUIET):
        pass
    head = _dirty_run_then_commit(repo, gitexp_env)
    record = gitexp.get_run("dirty-v2")
    assert record.meta["git"]["dirty"] is True and record.meta["code"]["tree"] == git(repo, "rev-parse",
                                                                                      "HEAD^{tree}").strip()
    assert "linked_commit" not in gitexp.get_run("clean-before").meta
    wait_for(lambda: any(record.id in line for line in notes.lines_for(record.repo, head)), "the note")
    assert record.status == "FINISHED" and record.metrics["acc"]["last"] == 0.75
    # The link is one more commit on the run's ref, with the same message; verify accepts it.
    assert git(repo, "reflog", "-1", "--format=%gs", record.ref).strip() == f"gitexp: link {record.id}"
    assert cli(capsys, "verify", record.id)[0] == 0
    # Amending to the same tree moves the link to the new commit.
    commit(repo, gitexp_env, "--amend", "-m", "reworded")
    amended = git(repo, "rev-parse", "HEAD").strip()
    wait_for(lambda: gitexp.get_run(record.id).meta.get("linked_commit") == amended, "the link to move")


def test_a_live_run_gets_the_link_through_its_journal(repo: Path, gitexp_env: dict[str, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "hooks", "install")[0] == 0
    (repo / "train.py").write_text("print('in progress')\n")
    run = gitexp.start_run(name="live", flush_interval=0.05, **QUIET)
    git(repo, "add", "-A")
    commit(repo, gitexp_env, "-m", "commit while it runs")
    head = git(repo, "rev-parse", "HEAD").strip()
    wait_for(lambda: run.state.meta.get("linked_commit") == head, "the owner to take the link in")
    run.end()
    assert gitexp.get_run(run.id).meta["linked_commit"] == head
    assert any(run.id in line for line in notes.lines_for(gitexp.get_run(run.id).repo, head))


SCRIPT = """
import gitexp, pathlib
with gitexp.start_run() as run:
    run.log_metric("size", len(pathlib.Path("train.py").read_text()))
print("auto-run output", flush=True)
"""


def test_auto_run_starts_a_tracked_run_per_commit(repo: Path, gitexp_env: dict[str, str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "auto.py").write_text(SCRIPT)
    git(repo, "add", "auto.py")
    git(repo, "commit", "-q", "-m", "auto script")
    code, out, _ = cli(capsys, "hooks", "install", "--auto-run", f"{sys.executable} auto.py")
    assert code == 0 and "each commit will start a tracked run" in out
    assert git(repo, "config", "exp.autorun").strip() == f"{sys.executable} auto.py"
    (repo / "train.py").write_text("print('a longer training script')\n")
    git(repo, "add", "-A")
    commit(repo, gitexp_env, "-m", "trigger")
    head = git(repo, "rev-parse", "HEAD").strip()

    def finished() -> gitexp.RunRecord | None:
        return next((r for r in gitexp.load_runs() if r.tags.get("autorun") == head and r.status != "RUNNING"),
                    None)

    record = wait_for(finished, "the auto-run to finish")
    assert record.status == "FINISHED" and record.base_commit == head
    assert record.metrics["size"]["last"] == len("print('a longer training script')\n")
    assert b"auto-run output" in (record.read("output.log") or b"")
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert git(repo, "config", "--get", "exp.autorun", check=False) == ""


def test_the_hook_never_fails_a_commit(repo: Path, gitexp_env: dict[str, str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "hooks", "install", "--auto-run", "python 'unbalanced")[0] == 0
    commit(repo, gitexp_env, "--allow-empty", "-m", "broken auto-run")
    log = repo / ".git" / "gitexp" / "hooks.log"
    wait_for(lambda: log.exists() and "No closing quotation" in log.read_text(), "the problem to be logged")
    assert "recent problems" in cli(capsys, "hooks", "status")[1]
    # Without git-exp on PATH the commit still succeeds, with one line saying why nothing was linked.
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    env = {**gitexp_env, "PATH": f"{bare}{os.pathsep}/bin{os.pathsep}/usr/bin"}
    if shutil.which("git-exp", path=env["PATH"]):
        pytest.skip("git-exp is installed system-wide")
    proc = commit(repo, env, "--allow-empty", "-m", "no gitexp")
    assert "git-exp is not on PATH" in proc.stderr
    # Called outside any repository, the entry point itself warns and exits 0.
    outside = subprocess.run([sys.executable, "-m", "gitexp", "hook", "post-commit"], cwd=tmp_path,
                             env=gitexp_env, capture_output=True, text=True, timeout=60)
    assert outside.returncode == 0 and "the commit is fine" in outside.stderr
    assert len(outside.stderr.strip().splitlines()) == 1


def test_the_package_ships_the_hook_scripts(tmp_path: Path) -> None:
    """A regular (wheel) install carries hooks/ as gitexp/_hooks/, byte for byte and executable."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("gitexp", "hooks", "docs"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "No module named pip" in proc.stderr:
        pytest.skip("pip is not available")
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "dist").glob("gitexp-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        for name in hooks.HOOKS:
            info = archive.getinfo(f"gitexp/_hooks/{name}")
            assert archive.read(info) == (ROOT / "hooks" / name).read_bytes()
            assert (info.external_attr >> 16) & 0o111
        archive.extractall(tmp_path / "site")
    found = subprocess.run([sys.executable, "-c", "import gitexp.ops.hooks as h; import sys; "
                            "sys.stdout.buffer.write(h.hook_script('post-commit'))"],
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, capture_output=True, timeout=60)
    assert found.stdout == (ROOT / "hooks" / "post-commit").read_bytes()


def test_the_hook_reads_head_as_git_does(repo: Path, tmp_path: Path) -> None:
    """The hook reads HEAD from the git directory instead of starting `git rev-parse` on every commit."""
    def found(where: Path) -> tuple[str, str, str]:
        out = git(where, "rev-parse", "HEAD", "--absolute-git-dir").split()
        return out[0], str(where), out[1]

    assert hookentry._head_from_files(str(repo)) == found(repo)
    git(repo, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert hookentry._head_from_files(str(repo)) == found(repo)
    git(repo, "checkout", "-q", "--detach")
    assert hookentry._head_from_files(str(repo)) == found(repo)
    worktree = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    git(worktree, "commit", "-q", "--allow-empty", "-m", "on the side")
    linked = hookentry._head_from_files(str(worktree))
    assert linked is not None and linked[:2] == found(worktree)[:2] and os.path.samefile(linked[2], found(worktree)[2])
    assert found(worktree)[0] != found(repo)[0]
    assert hookentry._head_from_files(str(tmp_path)) is None  # not a repository: git is asked instead


def test_commits_in_a_linked_worktree_link_runs_too(repo: Path, tmp_path: Path, gitexp_env: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "hooks", "install")[0] == 0
    worktree = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    monkeypatch.chdir(worktree)
    head = _dirty_run_then_commit(worktree, gitexp_env, "side")
    assert git(worktree, "rev-parse", "HEAD").strip() == head != git(repo, "rev-parse", "HEAD").strip()
