"""`git exp hook post-commit`: what git runs on every commit, so it must return at once.

It reads HEAD and what made the commit (a rebase, an amend...) from git's files through
gitexp/git/gitfiles.py, forks a detached background process for the real work (linking runs:
gitexp/ops/link.py; the auto-run: gitexp/tracking/runner.py auto_run) and exits 0 whatever happens,
with at most one line on stderr. It imports nothing heavy (gitfiles neither: no pygit2): the
interpreter's start-up is most of its cost.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from gitexp.git import gitfiles
from gitexp.ops.hooks import HOOKS, run_git


def run_hook(name: str, args: list[str]) -> int:
    """`git exp hook NAME`: never fails the git command it runs in; one line on stderr at worst."""
    if name != "post-commit":
        print(f"gitexp: unknown hook {name!r} (gitexp has: {', '.join(HOOKS)}); ignoring it", file=sys.stderr)
        return 0
    try:
        queued_at = time.time_ns()  # orders the auto-runs that wait for a slot
        found = _head_from_files(os.getcwd())
        if found is None:  # an unusual layout (reftable, symlinked refs...): ask git
            out = run_git(Path.cwd(), "rev-parse", "HEAD", "--show-toplevel", "--absolute-git-dir").split("\n")
            found = (out[0].strip(), out[1].strip(), out[2].strip())
        commit, workdir, gitdir = found
        # Read now: a rebase's state is gone by the time the background work would look.
        rewrite = gitfiles.rewrite_kind(gitdir, commit) if gitdir else None
        _detached(commit, workdir, rewrite, queued_at)
    except Exception as exc:  # a hook must not break the user's commit, whatever happens
        print(f"gitexp: post-commit hook: {exc} (the commit is fine)", file=sys.stderr)
    return 0


def _head_from_files(workdir: str) -> tuple[str, str, str] | None:
    """(HEAD commit, top of the working tree, git directory) read straight from the git directory,
    as git runs hooks at the top of the working tree; None when anything is not the plain layout.
    Spares the hook a `git rev-parse` process on every commit."""
    gitdir = gitfiles.worktree_gitdir(workdir)
    head = gitfiles.head_commit(gitdir) if gitdir is not None else None
    if gitdir is None or head is None:
        return None
    return head, os.environ.get("GIT_WORK_TREE") or workdir, gitdir


def _detached(commit: str, workdir: str, rewrite: str | None = None, queued_at: int | None = None) -> None:
    """Do the post-commit work in a grandchild in its own session, with no tie to git's terminal or
    pipes, so that the commit returns at once and nothing waits for the work."""
    sys.stdout.flush()
    sys.stderr.flush()
    hook = os.getpid()
    child = os.fork()
    if child:
        os.waitpid(child, 0)  # the child forks and exits at once
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _wait_gone(hook)  # leave the CPU to the exiting hook and commit before the heavy imports
        code = 1
        try:
            code = _post_commit(commit, workdir, rewrite, queued_at)
        except BaseException as exc:
            from gitexp.ops import link

            common = Path(run_git(Path(workdir), "rev-parse", "--git-common-dir").strip())
            link.log_problem((Path(workdir) / common).resolve(), f"post-commit {commit[:12]}: {exc!r}")
        os._exit(0 if code == 0 else 1)
    finally:
        os._exit(1)


def _post_commit(commit: str, workdir: str, rewrite: str | None, queued_at: int | None) -> int:
    """The background half: link runs to the commit, then the auto-run (gitexp/tracking/runner.py auto_run);
    returns the auto-run's exit code (0 without one)."""
    import warnings

    from gitexp.errors import GitexpError
    from gitexp.git.repo import Repo
    from gitexp.ops import link
    from gitexp.tracking import runner

    os.chdir(workdir)  # where git ran the hook: the top of the working tree the commit was made in
    repo = Repo.discover(workdir)
    warnings.simplefilter("ignore")  # no terminal to warn on; problems are logged instead
    try:
        link.link_runs(repo, commit)
    except GitexpError as exc:
        link.log_problem(repo.commondir, f"post-commit {commit[:12]}: linking runs failed: {exc}")

    def log(line: str) -> None:
        link.log_problem(repo.commondir, f"post-commit {commit[:12]}: {line}")

    return runner.auto_run(repo, commit, workdir, rewrite, log, queued_at)


def _wait_gone(pid: int, limit: float = 2.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.002)
