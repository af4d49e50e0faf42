"""`git exp hook post-commit`: what git runs on every commit, so it must return at once.

It reads HEAD, forks a detached background process for the real work (gitexp/link.py:
linking runs, the auto-run) and exits 0 whatever happens, with at most one line on stderr.
It imports nothing heavy: the interpreter's start-up is most of its cost.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gitexp.hooks import HOOKS, run_git


def run_hook(name: str, args: list[str]) -> int:
    """`git exp hook NAME`: never fails the git command it runs in; one line on stderr at worst."""
    if name != "post-commit":
        print(f"gitexp: unknown hook {name!r} (gitexp has: {', '.join(HOOKS)}); ignoring it", file=sys.stderr)
        return 0
    try:
        found = _head_from_files(os.getcwd())
        if found is None:  # an unusual layout (reftable, symlinked refs...): ask git
            out = run_git(Path.cwd(), "rev-parse", "HEAD", "--show-toplevel").split("\n")
            found = out[0].strip(), out[1].strip()
        _detached(*found)
    except Exception as exc:  # a hook must not break the user's commit, whatever happens
        print(f"gitexp: post-commit hook: {exc} (the commit is fine)", file=sys.stderr)
    return 0


def _head_from_files(workdir: str) -> tuple[str, str] | None:
    """(HEAD commit, top of the working tree) read straight from the git directory, as git runs hooks
    at the top of the working tree; None when anything is not the plain layout. Spares the hook a
    `git rev-parse` process on every commit."""
    gitdir = os.environ.get("GIT_DIR") or os.path.join(workdir, ".git")
    try:
        if os.path.isfile(gitdir):  # a linked worktree: .git names its git directory
            with open(gitdir) as handle:
                gitdir = os.path.join(workdir, handle.read().strip().removeprefix("gitdir: "))
        with open(os.path.join(gitdir, "HEAD")) as handle:
            head = handle.read().strip()
        common = gitdir
        if os.path.isfile(os.path.join(gitdir, "commondir")):
            with open(os.path.join(gitdir, "commondir")) as handle:
                common = os.path.join(gitdir, handle.read().strip())
        if head.startswith("ref: refs/"):
            ref = head[5:]
            try:
                with open(os.path.join(common, ref)) as handle:
                    head = handle.read().strip()
            except FileNotFoundError:
                with open(os.path.join(common, "packed-refs")) as handle:
                    head = next((line[:-len(ref) - 1].strip() for line in handle.read().splitlines()
                                 if line.endswith(" " + ref)), "")
    except OSError:
        return None
    if len(head) not in (40, 64) or any(c not in "0123456789abcdef" for c in head):
        return None
    return head, os.environ.get("GIT_WORK_TREE") or workdir


def _detached(commit: str, workdir: str) -> None:
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
            from gitexp import link

            code = link.post_commit(commit, workdir)
        except BaseException as exc:
            from gitexp import link

            common = Path(run_git(Path(workdir), "rev-parse", "--git-common-dir").strip())
            link.log_problem((Path(workdir) / common).resolve(), f"post-commit {commit[:12]}: {exc!r}")
        os._exit(0 if code == 0 else 1)
    finally:
        os._exit(1)


def _wait_gone(pid: int, limit: float = 2.0) -> None:
    import time

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.002)
