"""Ref upkeep (gitexp/git/refmaint.py): refs packed by git pack-refs, settled run reflogs archived."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
