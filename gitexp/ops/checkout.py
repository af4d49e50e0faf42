"""Bringing a run's exact code back (`git exp checkout`) and running it again (`git exp rerun`).

A run's code is its code/ snapshot: the base commit's tree plus the uncommitted and untracked
files it ran with. To give it to git, gitexp makes a commit of that tree whose parent is the
base commit (or uses the base commit itself when the tree was clean).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError
from gitexp.git.lazyrepo import real
from gitexp.git.repo import Repo
from gitexp.store import runs
from gitexp.store.runs import RunRecord


def git(cwd: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise GitexpError(f"cannot run git: {exc}; is git installed and on PATH?") from exc
    if proc.returncode != 0:
        raise GitexpError(f"`git {' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def code_commit(repo: Repo, record: RunRecord) -> str:
    """A commit holding exactly the run's code, its base commit as parent."""
    tree = (record.meta.get("code") or {}).get("tree")
    base = record.base_commit
    if not tree or not repo.has_object(tree):
        where = f"; `git checkout {base[:12]}` gives the commit it started from" if base else ""
        raise GitexpError(f"run {record.id} has no code snapshot (it ran with exp.captureCode false, in a bare "
                          f"repository, or its snapshot was not fetched){where}")
    if base and repo.has_object(base) and repo.tree_of(base) == tree:
        return base  # a clean tree: the base commit is the code
    message = (f"Code of run {record.experiment}/{record.name} ({record.id})\n\n"
               "The code snapshot gitexp recorded for this run, uncommitted and untracked files included.\n\n"
               f"Run-Id: {record.id}\n")
    return repo.commit(tree, [base] if base and repo.has_object(base) else [], message)


def _warn_skipped(record: RunRecord) -> list[str]:
    skipped = (record.meta.get("code") or {}).get("skipped") or []
    if not skipped:
        return []
    return [f"warning: {len(skipped)} file(s) were left out of the snapshot (over exp.snapshotMaxSize, or "
            f"untracked files that look like secrets, such as .env) and are missing: {', '.join(skipped[:5])}"]


def _require_artifacts() -> Any:
    """gitexp.ops.restore.download_artifacts (the artifacts feature), or a clear refusal without it."""
    if importlib.util.find_spec("gitexp.ops.restore") is None:
        raise GitexpError("--artifacts needs gitexp's artifacts support (gitexp/ops/restore.py), which this "
                          "installation does not have; check out the code without --artifacts")
    from gitexp.ops import restore

    download = getattr(restore, "download_artifacts", None)
    if download is None:
        raise GitexpError("--artifacts: gitexp.ops.restore has no download_artifacts() in this installation; "
                          "check out the code without --artifacts")
    return download


def _artifact_folders(record: RunRecord) -> list[str]:
    """artifacts/ and every folder under it that the run's artifacts will be restored into."""
    from gitexp.store.artifacts import list_artifacts

    folders = {"artifacts"}
    for artifact in list_artifacts(record.repo, record.commit):
        parts = artifact.path.split("/")[:-1]
        folders.update("/".join(["artifacts", *parts[:i]]) for i in range(1, len(parts) + 1))
    return sorted(folders)


def _check_artifacts_destination(record: RunRecord) -> None:
    """Refuse, before anything changes, a run whose code has a symlink or a file where --artifacts must
    create a folder: its artifacts would be written wherever that symlink points."""
    from gitexp.git.repo import LINK_MODE, TREE_MODE

    repo = record.repo
    tree = (record.meta.get("code") or {}).get("tree")
    if not tree or not repo.has_object(tree):
        return  # code_commit refuses it
    for folder in _artifact_folders(record):
        parent, _, name = folder.rpartition("/")
        entry = repo.tree_entries(tree, parent).get(name)
        if entry is None or entry.mode == TREE_MODE:
            continue
        if entry.mode == LINK_MODE:
            what = f"a symlink to {repo.read_blob(entry.oid).decode(errors='replace')!r}"
        else:
            what = "a file"
        raise GitexpError(
            f"cannot check out run {record.id} with --artifacts: its code has {folder} as {what}, not a folder, "
            "so its artifacts would be written through it, possibly outside the checkout. Nothing was changed. "
            f"Check the code out without --artifacts and restore the artifacts into a folder you choose with "
            f"`git exp get {record.id} -o DIR`")


def checkout(record: RunRecord, branch: str | None, worktree: str | None, artifacts: bool = False) -> list[str]:
    """Recreate the run's code on a new branch (switched to) and/or in a new worktree."""
    repo = real(record.repo)  # code_commit writes a commit
    restore = _require_artifacts() if artifacts else None  # refuse before changing anything
    if not branch and not worktree:
        raise GitexpError("say where the code should go: -b BRANCH (a new branch here) or --worktree DIR")
    if branch and repo.ref(f"refs/heads/{branch}") is not None:
        raise GitexpError(f"branch {branch!r} exists already; pick another name for the run's code")
    if restore is not None:
        _check_artifacts_destination(record)
    commit = code_commit(repo, record)
    cwd = repo.workdir or repo.gitdir
    done = []
    if worktree:
        target = Path(worktree).resolve()
        if target.exists() and any(target.iterdir()):
            raise GitexpError(f"{target} exists and is not empty; give --worktree a new folder")
        git(cwd, "worktree", "add", "-q", *(["-b", branch] if branch else ["--detach"]), str(target), commit)
        done.append(f"checked out the code of run {record.id} in {target}" + (f" on branch {branch}" if branch
                                                                                  else f" (detached at {commit[:12]})"))
        dest = target
    else:
        assert branch
        if repo.workdir is None:
            git(cwd, "branch", branch, commit)
            return [f"created branch {branch} at {commit[:12]} (a bare repository has no working tree to switch)"]
        dest = repo.workdir
        changed = [line for line in git(dest, "status", "--porcelain", "--untracked-files=no").splitlines() if line]
        if changed:
            files = ", ".join(line[3:] for line in changed[:5]) + (" ..." if len(changed) > 5 else "")
            raise GitexpError(f"you have uncommitted changes ({files}); checking out run {record.id} would mix them "
                              "with its code. Commit or stash them first, or use --worktree DIR to get the run's "
                              "code in a separate folder")
        git(dest, "branch", branch, commit)
        try:
            git(dest, "checkout", "-q", branch)  # git itself refuses to overwrite untracked files
        except GitexpError:
            git(dest, "branch", "-D", branch)
            raise
        done.append(f"switched to the new branch {branch} with the code of run {record.id} ({commit[:12]})")
    if restore is not None:
        # Into artifacts/ of the checkout, as the run's tree holds them; an existing different file
        # there is refused, never overwritten. The checkout's files came from the run (or are
        # untracked files of yours): from its top down, no symlink is followed.
        target = restore(record, dst=dest / "artifacts", within=dest,
                         advice=f"move it away and check again, or restore the artifacts into a folder you "
                                f"choose with `git exp get {record.id} -o DIR`")
        done.append(f"restored the artifacts of run {record.id} into {target}")
    return done + _warn_skipped(record)


@contextmanager
def code_worktree(record: RunRecord) -> Iterator[Path]:
    """A temporary worktree holding the run's code as it ran: HEAD at its base commit, with its
    uncommitted and untracked files as changes; removed (and pruned) afterwards."""
    repo = real(record.repo)  # code_commit writes a commit
    cwd = repo.workdir or repo.gitdir
    commit = code_commit(repo, record)
    tmp = Path(tempfile.mkdtemp(prefix="gitexp-rerun-"))
    path = tmp / "code"
    try:
        git(cwd, "worktree", "add", "-q", "--detach", str(path), commit)
        base = record.base_commit
        if commit != base and base and repo.has_object(base):
            git(path, "reset", "-q", base)  # back to the base commit, the snapshot's files left as changes
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=cwd, capture_output=True, check=False)
        subprocess.run(["git", "worktree", "prune"], cwd=cwd, capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _override(params: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(params)
    for key, value in changes.items():
        merged[key] = _override(merged[key], value) if isinstance(merged.get(key), dict) and isinstance(
            value, dict) else value
    return merged


def _output_patterns(record: RunRecord) -> list[str] | None:
    """The --metric-pattern patterns the run read metrics from its output with (None: it read none)."""
    from gitexp.tracking.runner import METRICS_META

    patterns = record.meta.get(METRICS_META)
    if isinstance(patterns, list) and all(isinstance(p, str) for p in patterns):
        return patterns
    return None


def rerun(record: RunRecord, overrides: dict[str, Any], name: str | None = None,
          experiment: str | None = None) -> tuple[int, RunRecord | None]:
    """Run the run's command again, in a clean worktree of its code, as a new run recording
    `rerun_of`. Returns (the command's exit code, the new run)."""
    from gitexp.tracking.runner import run_command

    command = record.meta.get("command")
    if not command or not isinstance(command, list):
        raise GitexpError(f"run {record.id} recorded no command to run again")
    if "****" in command:
        raise GitexpError(f"run {record.id}'s command had secret values, recorded masked as ****: "
                          f"{' '.join(command)}; rerun cannot know them. Run it with `git exp run` instead")
    before = os.getcwd()
    with code_worktree(record) as path:
        cwd = path / ((record.meta.get("code") or {}).get("cwd") or ".")
        os.chdir(cwd if cwd.is_dir() else path)
        try:
            code = run_command(list(command), name=name, experiment=experiment or record.experiment,
                               params=_override(record.params, overrides), tags=record.tags,
                               description=f"rerun of {record.id} ({record.experiment}/{record.name})",
                               meta={"rerun_of": record.id}, metrics_from_output=_output_patterns(record))
        finally:
            os.chdir(before)
    reruns = [r for r in runs.load_runs(record.repo) if r.meta.get("rerun_of") == record.id]
    return code, (reruns[0] if reruns else None)
