"""`git exp hook post-commit`: what git runs on every commit, so it must return at once.

It reads HEAD and what made the commit (a rebase, an amend...: rewrite_kind), forks a detached
background process for the real work (linking runs: gitexp/ops/link.py; the auto-run:
gitexp/tracking/runner.py auto_run) and exits 0 whatever happens, with at most one line on stderr.
It imports nothing heavy: the interpreter's start-up is most of its cost.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

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
            found, gitdir = (out[0].strip(), out[1].strip()), out[2].strip()
        else:
            gitdir = _gitdir(os.getcwd())
        # Read now: a rebase's state is gone by the time the background work would look.
        rewrite = rewrite_kind(gitdir, found[0]) if gitdir else None
        _detached(*found, rewrite, queued_at)
    except Exception as exc:  # a hook must not break the user's commit, whatever happens
        print(f"gitexp: post-commit hook: {exc} (the commit is fine)", file=sys.stderr)
    return 0


def _gitdir(workdir: str) -> str | None:
    """The git directory of the working tree at *workdir* (a linked worktree's own), or None."""
    gitdir = os.environ.get("GIT_DIR") or os.path.join(workdir, ".git")
    try:
        if os.path.isfile(gitdir):  # a linked worktree: .git names its git directory
            with open(gitdir) as handle:
                gitdir = os.path.join(workdir, handle.read().strip().removeprefix("gitdir: "))
    except OSError:
        return None
    return gitdir if os.path.isdir(gitdir) else None


# What made a commit, from the HEAD reflog's message ("rebase (pick): ...", "commit (amend): ...").
_REWRITE_ACTIONS = (("commit (amend)", "an amend"), ("commit (merge)", "a merge"), ("merge", "a merge"),
                    ("cherry-pick", "a cherry-pick"), ("am", "git am"))
# The same, from the state files git keeps while it works, where the reflog says nothing.
_REWRITE_STATE = (("rebase-merge", "a rebase"), ("rebase-apply", "a rebase or git am"),
                  ("CHERRY_PICK_HEAD", "a cherry-pick"), ("MERGE_HEAD", "a merge"))


def rewrite_kind(gitdir: str, commit: str) -> str | None:
    """Which history rewrite made *commit* ("a rebase", "an amend", "a cherry-pick", "a merge",
    "git am"), or None for an ordinary commit. Reads the last line of HEAD's reflog (whose message
    says what moved HEAD), else git's in-progress state files; a few file reads, no process."""
    try:
        with open(os.path.join(gitdir, "logs", "HEAD"), "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4096))
            last = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode(errors="replace")
    except OSError:
        last = ""
    who, _, message = last.partition("\t")
    fields = who.split(" ")
    if len(fields) > 1 and fields[1] == commit:
        action = message.split(":", 1)[0]
        if "rebase" in action:  # rebase (pick), rebase -i (squash), pull --rebase ...
            return "a rebase"
        for prefix, what in _REWRITE_ACTIONS:
            if action == prefix or action.startswith(prefix + " "):
                return what
        return None
    for name, what in _REWRITE_STATE:  # no reflog entry for this commit (core.logAllRefUpdates off)
        if os.path.exists(os.path.join(gitdir, name)):
            return what
    return None


def _head_from_files(workdir: str) -> tuple[str, str] | None:
    """(HEAD commit, top of the working tree) read straight from the git directory, as git runs hooks
    at the top of the working tree; None when anything is not the plain layout. Spares the hook a
    `git rev-parse` process on every commit."""
    gitdir = _gitdir(workdir)
    if gitdir is None:
        return None
    try:
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
