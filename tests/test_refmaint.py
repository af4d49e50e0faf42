"""Ref upkeep (gitexp/git/refmaint.py): refs packed by git pack-refs, settled run reflogs archived."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import gitexp
from gitexp.git import reflogs, refmaint
from gitexp.git.repo import Repo
from gitexp.ops.verify import verify_runs


def test_upkeep_packs_refs_and_archives(repo: Path) -> None:
    with gitexp.start_run(name="kept", system_metrics_interval=0) as run:
        run.log_metric("acc", 0.5)
    (repo / ".git" / reflogs.PENDING).write_bytes(b"." * reflogs.ARCHIVE_EVERY)
    assert refmaint.upkeep(repo / ".git", min_age=0) == 1
    assert (repo / ".git" / reflogs.PENDING).read_bytes() == b""
    assert subprocess.run(["git", "show-ref", "--verify", run.ref], cwd=repo, capture_output=True).returncode == 0
    assert not (repo / ".git" / run.ref).exists() and not (repo / ".git" / "logs" / run.ref).exists()
    handle = Repo.discover(repo)
    assert [m for _, _, m in handle.reflog(run.ref)] == [f"gitexp: finished {run.id}"]
    assert verify_runs(handle, sorted(handle.refs(refmaint.RUN_REFS).items())) == []


def test_upkeep_leaves_young_logs_of_live_runs_by_default(repo: Path) -> None:
    run = gitexp.start_run(name="young", system_metrics_interval=0)
    run.log_metric("acc", 0.5)
    gitexp.flush()
    assert refmaint.upkeep(repo / ".git", archive=True) == 0
    assert (repo / ".git" / "logs" / run.ref).exists()
    run.end()


def test_upkeep_only_packs_until_enough_new_refs(repo: Path) -> None:
    with gitexp.start_run(name="packed", system_metrics_interval=0) as run:
        run.log_metric("acc", 0.5)
    assert refmaint.upkeep(repo / ".git", min_age=0) == 0  # one new ref counted: pack-refs only
    assert not (repo / ".git" / run.ref).exists() and (repo / ".git" / "logs" / run.ref).exists()
    assert (repo / ".git" / reflogs.PENDING).read_bytes() == b"."


def _config(repo: Path, key: str) -> str:
    return subprocess.run(["git", "config", "--get", key], cwd=repo, capture_output=True, text=True).stdout.strip()


def test_upkeep_of_many_run_refs_spares_git_gc_the_info_refs_file(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refmaint, "SHELVE_FROM", 1 << 40)  # refs that stay refs (tests/test_shelving.py: shelved)
    with gitexp.start_run(name="many", system_metrics_interval=0) as run:
        run.log_metric("acc", 0.5)
    commit = Repo.discover(repo).refs(run.ref)[run.ref]
    # 12,000 refs named as runs are: packed, a little over SERVER_INFO_FROM
    lines = "".join(f"create refs/experiments/bulk/20261204-{k:015x} {commit}\n" for k in range(12_000))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    subprocess.run(["git", "gc", "--quiet"], cwd=repo, check=True)
    info_refs = repo / ".git" / "info" / "refs"
    assert (repo / ".git" / "packed-refs").stat().st_size >= refmaint.SERVER_INFO_FROM
    assert len(info_refs.read_text().splitlines()) > 12_000  # what every `git gc` wrote again
    refmaint.upkeep(repo / ".git", min_age=0, archive=True)
    assert _config(repo, refmaint.SERVER_INFO) == "false"
    assert not info_refs.exists()
    subprocess.run(["git", "gc", "--quiet"], cwd=repo, check=True)
    assert not info_refs.exists()
    assert subprocess.run(["git", "show-ref", "--verify", run.ref], cwd=repo, capture_output=True).returncode == 0


def test_spare_server_info_leaves_small_repositories_and_the_users_choice(repo: Path) -> None:
    with gitexp.start_run(name="few", system_metrics_interval=0) as run:
        run.log_metric("acc", 0.5)
    subprocess.run(["git", "gc", "--quiet"], cwd=repo, check=True)
    gitdir = repo / ".git"
    assert not refmaint.spare_server_info(gitdir)  # a packed-refs of a few refs
    assert _config(repo, refmaint.SERVER_INFO) == "" and (gitdir / "info" / "refs").exists()
    subprocess.run(["git", "config", refmaint.SERVER_INFO, "true"], cwd=repo, check=True)
    assert not refmaint.spare_server_info(gitdir, from_size=0)
    assert _config(repo, refmaint.SERVER_INFO) == "true" and (gitdir / "info" / "refs").exists()
    subprocess.run(["git", "config", "--unset", refmaint.SERVER_INFO], cwd=repo, check=True)
    assert refmaint.spare_server_info(gitdir, from_size=0)
    assert _config(repo, refmaint.SERVER_INFO) == "false" and not (gitdir / "info" / "refs").exists()
