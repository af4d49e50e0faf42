"""`git exp run`: run a command as a tracked run, streaming its output into output.log."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from gitexp import threads
from gitexp.errors import GitexpError
from gitexp.tracking import launch, redact
from gitexp.tracking import run as tracking
from gitexp.tracking.outputmetrics import OutputMetrics, compile_patterns

METRICS_META = "metrics_from_output"  # meta: the --metric-pattern patterns a run read its output with


def _pump(source: IO[bytes], sink: IO[bytes], log: IO[bytes], lock: threading.Lock,
          masker: redact.Masker, metrics: OutputMetrics | None = None) -> None:
    """Copy the child's output to the terminal as it comes, and masked, line by line, to the log (and to
    *metrics*, which reads values from the lines: masked, so that no secret becomes a metric)."""
    partial = b""
    while chunk := source.read1(65536) if hasattr(source, "read1") else source.read(65536):
        try:
            sink.write(chunk)
            sink.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not lose the log
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        if lines:
            masked = [masker.text(line.decode(errors="replace")) for line in lines]
            text = b"".join(line.encode() + b"\n" for line in masked)
            with lock:
                log.write(text)
                log.flush()
            if metrics is not None:
                for line in masked:
                    metrics.feed(line)
    if partial:
        last = masker.text(partial.decode(errors="replace"))
        with lock:
            log.write(last.encode())
            log.flush()
        if metrics is not None:
            metrics.feed(last)


def run_command(command: list[str], name: str | None = None, experiment: str | None = None,
                params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                description: str | None = None, meta: dict[str, Any] | None = None,
                metrics_from_output: list[str] | None = None) -> int:
    """Run *command* as a tracked run and return its exit code (128+N when killed by signal N).

    *meta*: extra meta fields of the new run (`git exp rerun` records rerun_of). *metrics_from_output*:
    patterns (gitexp/tracking/outputmetrics.py; [] for the default one) whose matches in the command's
    output are logged as metrics; None reads none.
    """
    if not command:
        raise GitexpError("no command to run; usage: git exp run [OPTIONS] -- COMMAND [ARGS...]")
    patterns = compile_patterns(metrics_from_output) if metrics_from_output is not None else None
    if patterns is not None:  # recorded, so that `git exp rerun` reads the output the same way
        meta = {**(meta or {}), METRICS_META: [p.text for p in patterns]}
    run = tracking.start_run(name=name, experiment=experiment, params=params, tags=tags,
                             description=description, command=command, meta=meta)
    reader = OutputMetrics(run, patterns) if patterns is not None else None
    child_env = dict(os.environ)
    child_env.update({
        launch.ENV_RUN_ID: run.id, launch.ENV_REPO: str(run.repo.gitdir),
        launch.ENV_EXPERIMENT: run.experiment, launch.ENV_PARAMS: json.dumps(run.params),
        "PYTHONUNBUFFERED": "1",
    })
    child_env.pop(launch.ENV_RUN_NAME, None)
    if name is not None:  # the script's start_run(name=...) then says that it renames the run
        child_env[launch.ENV_RUN_NAME] = run.name
    interrupted: list[int] = []
    try:
        child = subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        run.update_meta({"exit_code": 127,
                         "error": {"type": type(exc).__name__, "message": redact.mask_text(str(exc))}})
        run.end("FAILED")
        raise GitexpError(f"cannot run {command[0]!r}: {exc.strerror or exc}; check the command name and "
                          f"PATH (the run {run.id} is recorded as FAILED)") from exc

    def forward(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        # Ctrl-C at a terminal reaches the whole process group, the child included: sending it
        # again would interrupt the child's own cleanup. Signals sent to us alone are forwarded.
        if not (signum == signal.SIGINT and sys.stdin is not None and sys.stdin.isatty()):
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    masker = redact.Masker()
    lock = threading.Lock()
    try:
        with open(run.output_log, "ab") as log:
            pumps = [threads.start(_pump, stream, sink, log, lock, masker, reader, name="gitexp-output-pump")
                     for stream, sink in ((child.stdout, sys.stdout.buffer), (child.stderr, sys.stderr.buffer))]
            code = child.wait()
            for pump in pumps:
                pump.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0 and not interrupted:
        status = "FINISHED"
    elif interrupted or code < 0:
        status = "KILLED"
    else:
        status = "FAILED"
    run.flush_journal()  # take in what the child recorded, its error included
    changes: dict[str, Any] = {"exit_code": code}
    if status != "FINISHED" and "error" not in run.state.meta:
        reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        changes["error"] = {"type": "ExitStatus", "message": f"command {reason}"}
    run.update_meta(changes)
    run.end(status)
    return 128 - code if code < 0 else code


# -- the post-commit auto-run (git config exp.autorun) -------------------------------------------

AUTORUN_KEY = "exp.autorun"
AUTORUN_MAX_KEY = "exp.autorunMax"
AUTORUN_REWRITES_KEY = "exp.autorunRewrites"
AUTORUN_QUEUE_MAX = 10  # commits waiting for a slot; a later one is skipped, with a message
_AUTORUN_DIR = ("gitexp", "autorun")  # in the common git directory: slot-N locks and queue/ tickets
_POLL = 0.2
# Set by git for the hook, or by a `git exp run` the commit was made under: the auto-run's command
# and its git must find the temporary checkout and start a run of their own, not inherit these.
_INHERITED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_REFLOG_ACTION",
              "GIT_EDITOR", "GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE", "GIT_OBJECT_DIRECTORY",
              "GIT_ALTERNATE_OBJECT_DIRECTORIES", launch.ENV_RUN_ID, launch.ENV_REPO, launch.ENV_PARAMS,
              launch.ENV_RUN_NAME)
ENV_AUTORUN_WORKTREE = "GITEXP_AUTORUN_WORKTREE"


def autorun_limit(repo: Any) -> int:
    """git config exp.autorunMax: how many auto-runs may run at once (default 1)."""
    value = repo.config_number(AUTORUN_MAX_KEY, 1)
    if value != int(value) or value < 1:
        raise GitexpError(f"git config {AUTORUN_MAX_KEY} is {value:g}; it must be a whole number, at least 1 "
                          f"(set it with `git config {AUTORUN_MAX_KEY} 2`)")
    return int(value)


def _lock(path: str, block: bool = False) -> int | None:
    """An open descriptor of *path* holding its exclusive lock, or None when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _autorun_dir(commondir: Any) -> str:
    return os.path.join(os.fspath(commondir), *_AUTORUN_DIR)


def _live_tickets(queue: str) -> list[str]:
    """The waiting tickets, oldest first; those whose process died (their lock is free) are removed."""
    live = []
    for name in sorted(os.listdir(queue)):
        path = os.path.join(queue, name)
        fd = _lock(path)
        if fd is None:
            live.append(name)
            continue
        try:  # nobody holds it: its waiter is gone
            os.unlink(path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
    return live


def autorun_state(commondir: Any) -> tuple[int, int]:
    """(auto-runs running now, commits waiting for a slot), from the locks the workers hold."""
    root = _autorun_dir(commondir)
    try:
        slots = [n for n in os.listdir(root) if n.startswith("slot-")]
    except FileNotFoundError:
        return 0, 0
    running = 0
    for name in slots:
        fd = _lock(os.path.join(root, name))
        if fd is None:
            running += 1
        else:
            os.close(fd)
    queue = os.path.join(root, "queue")
    return running, len(_live_tickets(queue)) if os.path.isdir(queue) else 0


def _take_slot(commondir: Any, limit: int, commit: str, queued_at: int, log: Any) -> int | None:
    """Wait, in commit order (*queued_at*: when the hook ran, in ns), until fewer than *limit* auto-runs
    run; returns the held slot's descriptor, or None when AUTORUN_QUEUE_MAX commits are waiting already
    (skipped, and said so in the log)."""
    root = _autorun_dir(commondir)
    queue = os.path.join(root, "queue")
    os.makedirs(queue, exist_ok=True)
    name = f"{queued_at:020d}-{os.getpid():010d}-{commit[:12]}"
    # Locked under a temporary name, then renamed into the queue: nobody sees it unlocked.
    pending = os.path.join(root, f".{name}.tmp")
    ticket_fd = _lock(pending, block=True)
    assert ticket_fd is not None
    os.rename(pending, os.path.join(queue, name))
    try:
        while True:
            ahead = [t for t in _live_tickets(queue) if t < name]
            if len(ahead) >= AUTORUN_QUEUE_MAX:
                log(f"auto-run skipped: {len(ahead)} commits are waiting for their auto-run already "
                    f"({commit[:12]} would wait behind them); at most {limit} run at once "
                    f"(git config {AUTORUN_MAX_KEY}). Start it by hand with `git exp run` if it matters")
                return None
            if not ahead:  # first in line: take a free slot, if any
                for i in range(limit):
                    slot = _lock(os.path.join(root, f"slot-{i}"))
                    if slot is not None:
                        return slot
            time.sleep(_POLL)
    finally:
        try:
            os.unlink(os.path.join(queue, name))
        except FileNotFoundError:
            pass
        os.close(ticket_fd)


@contextlib.contextmanager
def commit_checkout(commondir: Any, commit: str) -> Iterator[str]:
    """A temporary detached `git worktree` of exactly *commit*, removed (and pruned) afterwards."""
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix=f"gitexp-autorun-{commit[:12]}-")
    path = os.path.join(tmp, "code")
    git = ["git", "--git-dir", os.fspath(commondir)]
    try:
        proc = subprocess.run([*git, "worktree", "add", "-q", "--detach", path, commit], capture_output=True,
                              text=True, check=False, timeout=600)
        if proc.returncode != 0:
            raise GitexpError(f"cannot check out commit {commit[:12]} for its auto-run in {path}: "
                              f"{proc.stderr.strip() or proc.stdout.strip()}")
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", path], capture_output=True, check=False, timeout=600)
        subprocess.run([*git, "worktree", "prune"], capture_output=True, check=False, timeout=600)
        shutil.rmtree(tmp, ignore_errors=True)


def auto_run(repo: Any, commit: str, workdir: str, rewrite: str | None, log: Any,
             queued_at: int | None = None) -> int:
    """Run git config exp.autorun as a tracked run of *commit*: in a temporary checkout of exactly that
    commit, after waiting for a slot (exp.autorunMax). A commit made by a history rewrite (*rewrite*
    says which) starts none unless exp.autorunRewrites is true. Returns the command's exit code (0
    when nothing ran); *log* takes one line for hooks.log; *queued_at* (ns) orders the waiting ones."""
    command = repo.config(AUTORUN_KEY)
    if not command:
        return 0
    argv = shlex.split(command)
    if not argv:
        raise GitexpError(f"git config {AUTORUN_KEY} is blank; set a command or `git exp hooks uninstall`")
    if rewrite and not repo.config_bool(AUTORUN_REWRITES_KEY, False):
        log(f"auto-run skipped: {commit[:12]} was made by {rewrite}, which starts no auto-run per rewritten "
            f"commit; set git config {AUTORUN_REWRITES_KEY} true to run on those too")
        return 0
    limit = autorun_limit(repo)
    for variable in _INHERITED:
        os.environ.pop(variable, None)
    slot = _take_slot(repo.commondir, limit, commit, time.time_ns() if queued_at is None else queued_at, log)
    if slot is None:
        return 0
    before = os.getcwd()
    try:
        with commit_checkout(repo.commondir, commit) as path:
            os.chdir(path)
            os.environ[ENV_AUTORUN_WORKTREE] = workdir
            try:
                code = run_command(argv, description=f"auto-run by the post-commit hook for commit {commit[:12]}",
                                   tags={"autorun": commit})
            finally:
                os.chdir(before)
                tracking.flush()  # its note: this process ends with os._exit, which skips atexit
    finally:
        os.close(slot)
    if code:
        log(f"auto-run `{command}` exited with {code}")
    return code


# Under these locks a signal handler would wait for its own thread (gitexp/threads.py).
threads.holds_locks(_pump)
