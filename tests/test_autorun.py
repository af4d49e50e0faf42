"""The post-commit auto-run (git config exp.autorun): each run runs exactly its own commit's code,
history rewrites (rebase, cherry-pick, amend, merge) start none unless asked, and at most
exp.autorunMax run at once, the rest waiting their turn."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gitexp
from gitexp.cli.main import main
from tests.conftest import git

# Records what it ran on: the length of train.py as it read it, and when it ran.
AUTO = """
import os, pathlib, time
import gitexp
with gitexp.start_run() as run:
    run.log_metric("t_start", time.time())
    run.log_metric("size", len(pathlib.Path("train.py").read_text()))
    time.sleep(float(os.environ.get("AUTO_SLEEP", "0")))
    run.log_metric("t_end", time.time())
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_git(repo: Path, env: dict[str, str], *args: str) -> str:
    """A real git command whose hooks find this gitexp (env: the gitexp_env fixture)."""
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_for(check: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    """Poll *check* until it returns something truthy: the background work has no completion signal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; hooks.log: {hooks_log()}")


def hooks_log() -> str:
    log = Path.cwd() / ".git" / "gitexp" / "hooks.log"
    return log.read_text() if log.exists() else ""


def autoruns(status: str | None = None) -> dict[str, gitexp.RunRecord]:
    """The auto-runs by the commit they were started for (tag autorun), ended ones only."""
    return {r.tags["autorun"]: r for r in gitexp.load_runs()
            if "autorun" in r.tags and r.status != "RUNNING" and (status is None or r.status == status)}


def install(repo: Path, capsys: pytest.CaptureFixture[str], *options: str) -> None:
    (repo / "auto.py").write_text(AUTO)
    git(repo, "add", "auto.py")
    git(repo, "commit", "-q", "-m", "auto script")
    assert cli(capsys, "hooks", "install", "--auto-run", f"{sys.executable} auto.py", *options)[0] == 0


def edit_and_commit(repo: Path, env: dict[str, str], content: str, message: str) -> str:
    (repo / "train.py").write_text(content)
    run_git(repo, env, "commit", "-q", "-am", message)
    return git(repo, "rev-parse", "HEAD").strip()


def test_each_auto_run_runs_its_own_commits_code_one_at_a_time(repo: Path, gitexp_env: dict[str, str],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    install(repo, capsys)
    env = {**gitexp_env, "AUTO_SLEEP": "0.3"}
    contents = {}
    for i in range(3):  # commits 0.1 s apart: each auto-run starts while later commits change the tree
        content = "x = 1\n" * (i + 1)
        contents[edit_and_commit(repo, env, content, f"commit {i}")] = content
        time.sleep(0.1)
    found = wait_for(lambda: len(autoruns()) == 3 and autoruns(), "three finished auto-runs")
    assert set(found) == set(contents)
    for commit, record in found.items():
        assert record.status == "FINISHED", record.meta.get("error")
        assert record.meta["git"]["commit"] == commit and record.base_commit == commit
        assert record.meta["code"]["tree"] == git(repo, "rev-parse", f"{commit}^{{tree}}").strip()
        assert record.meta["git"]["dirty"] is False
        assert record.metrics["size"]["last"] == len(contents[commit])
    # exp.autorunMax defaults to 1: one after the other, never two at once.
    spans = sorted((r.metrics["t_start"]["last"], r.metrics["t_end"]["last"]) for r in found.values())
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), spans
    # The temporary checkouts are gone, from the disk and from git's worktree list.
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_history_rewrites_start_no_auto_run_unless_asked(repo: Path, gitexp_env: dict[str, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "auto.py").write_text(AUTO)
    git(repo, "add", "auto.py")
    git(repo, "commit", "-q", "-m", "auto script")
    git(repo, "checkout", "-q", "-b", "feature")
    for i in range(4):
        (repo / f"f{i}.py").write_text(f"F = {i}\n")
        git(repo, "add", f"f{i}.py")
        git(repo, "commit", "-q", "-m", f"feature {i}")
    git(repo, "checkout", "-q", "main")
    assert cli(capsys, "hooks", "install", "--auto-run", f"{sys.executable} auto.py")[0] == 0
    main_commit = edit_and_commit(repo, gitexp_env, "print('main moved on')\n", "main moves")
    wait_for(lambda: main_commit in autoruns(), "the auto-run of an ordinary commit")

    def skipped() -> int:
        return hooks_log().count("auto-run skipped")

    run_git(repo, gitexp_env, "checkout", "-q", "feature")
    run_git(repo, gitexp_env, "rebase", "-q", "main")  # 4 commits rewritten
    wait_for(lambda: skipped() == 4, "4 skipped auto-runs")
    assert "made by a rebase" in hooks_log() and "exp.autorunRewrites" in hooks_log()
    run_git(repo, gitexp_env, "commit", "-q", "--amend", "-m", "feature 3, reworded")
    wait_for(lambda: skipped() == 5 and "made by an amend" in hooks_log(), "the amend skipped")
    run_git(repo, gitexp_env, "checkout", "-q", "main")
    run_git(repo, gitexp_env, "cherry-pick", "feature~1")
    wait_for(lambda: skipped() == 6 and "made by a cherry-pick" in hooks_log(), "the cherry-pick skipped")
    run_git(repo, gitexp_env, "checkout", "-q", "-b", "other", "main~2")
    edit_and_commit(repo, gitexp_env, "print('other')\n", "other")
    wait_for(lambda: len(autoruns()) == 2, "the auto-run of the other commit")
    (repo / "train.py").write_text("print('conflict')\n")
    run_git(repo, gitexp_env, "commit", "-q", "-am", "conflicting")
    wait_for(lambda: len(autoruns()) == 3, "the auto-run of the conflicting commit")
    merge = subprocess.run(["git", "merge", "-q", "main"], cwd=repo, env=gitexp_env, capture_output=True,
                           text=True, timeout=60)
    assert "CONFLICT" in merge.stdout + merge.stderr, merge
    (repo / "train.py").write_text("print('resolved')\n")
    git(repo, "add", "train.py")
    run_git(repo, gitexp_env, "commit", "-q", "--no-edit")  # concludes the merge
    wait_for(lambda: skipped() == 7 and "made by a merge" in hooks_log(), "the merge commit skipped")
    assert len(autoruns()) == 3
    # Asked for: a rewrite starts its run like any commit.
    code, out, _ = cli(capsys, "hooks", "install", "--auto-run-rewrites")
    assert code == 0 and "exp.autorunRewrites" in out
    run_git(repo, gitexp_env, "commit", "-q", "--amend", "-m", "merge, reworded")
    amended = git(repo, "rev-parse", "HEAD").strip()
    record = wait_for(lambda: autoruns().get(amended), "the amend's auto-run")
    assert record.status == "FINISHED" and record.meta["git"]["commit"] == amended


def test_at_most_exp_autorun_max_at_once_and_the_rest_wait(repo: Path, gitexp_env: dict[str, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    install(repo, capsys, "--auto-run-max", "2")
    assert git(repo, "config", "exp.autorunMax").strip() == "2"
    env = {**gitexp_env, "AUTO_SLEEP": "1.5"}
    commits = [edit_and_commit(repo, env, "y = 2\n" * (i + 1), f"commit {i}") for i in range(4)]
    status = wait_for(lambda: (s := cli(capsys, "hooks", "status")[1]) and "2 running" in s and s,
                      "two auto-runs running")
    assert "auto-run: " in status and "at most 2 at once" in status
    found = wait_for(lambda: len(autoruns()) == 4 and autoruns(), "four finished auto-runs")
    assert set(found) == set(commits)
    spans = [(r.metrics["t_start"]["last"], r.metrics["t_end"]["last"]) for r in found.values()]
    most = max(sum(1 for start, end in spans if start <= t < end) for t, _ in spans)
    assert most == 2, spans
    assert cli(capsys, "hooks", "uninstall")[0] == 0
    assert git(repo, "config", "--get", "exp.autorunMax", check=False) == ""


def test_a_bad_auto_run_max_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "hooks", "install", "--auto-run", "true", "--auto-run-max", "0")
    assert code != 0 and "--auto-run-max 0" in err and "at least 1" in err


def test_an_auto_run_from_inside_a_tracked_run_is_its_own_run(repo: Path, gitexp_env: dict[str, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A commit made by a command under `git exp run` (GITEXP_RUN_ID set): the auto-run must not
    attach to that run, nor use the hook's GIT_INDEX_FILE or GIT_DIR."""
    install(repo, capsys)
    with gitexp.start_run(name="outer", system_metrics_interval=0, capture_env=False) as outer:
        env = {**gitexp_env, "GITEXP_RUN_ID": outer.id, "GITEXP_REPO": str(repo / ".git"),
               "GIT_DIR": str(repo / ".git"), "GIT_WORK_TREE": str(repo)}
        head = edit_and_commit(repo, env, "z = 3\n", "from inside a run")
    record = wait_for(lambda: autoruns().get(head), "the auto-run")
    assert record.id != outer.id and record.meta["git"]["commit"] == head
    assert os.environ.get("GITEXP_RUN_ID") is None


def test_a_full_queue_skips_with_a_message_and_dead_waiters_do_not_count(repo: Path) -> None:
    """Real locks, taken here as the workers of other commits would hold them."""
    from gitexp.tracking import runner

    common = repo / ".git"
    root = common / "gitexp" / "autorun"
    (root / "queue").mkdir(parents=True)
    held = [runner._lock(str(root / "slot-0"))]  # one auto-run running; exp.autorunMax 1
    for i in range(runner.AUTORUN_QUEUE_MAX):  # and ten commits waiting before ours
        held.append(runner._lock(str(root / "queue" / f"{i:020d}-0000000001-{'a' * 12}")))
    (root / "queue" / f"{99:020d}-0000000002-{'d' * 12}").write_text("")  # a waiter that died
    assert runner.autorun_state(common) == (1, runner.AUTORUN_QUEUE_MAX)
    assert not (root / "queue" / f"{99:020d}-0000000002-{'d' * 12}").exists()
    lines: list[str] = []
    assert runner._take_slot(common, 1, "b" * 40, 10**19, lines.append) is None
    assert len(lines) == 1 and "auto-run skipped: 10 commits are waiting" in lines[0] and "bbbbbbbbbbbb" in lines[0]
    assert len(list((root / "queue").iterdir())) == runner.AUTORUN_QUEUE_MAX  # its ticket went with it
    # Once the queue is shorter and the slot free, the next in line takes the slot.
    for fd in held:
        assert fd is not None
        os.close(fd)
    slot = runner._take_slot(common, 1, "c" * 40, 10**19, lines.append)
    assert slot is not None and runner.autorun_state(common) == (1, 0)
    os.close(slot)
    assert runner.autorun_state(common) == (0, 0)
