"""The logging API: start_run, the module-level verbs acting on the active run, and ending runs at exit.

The Run class lives in gitexp/tracking/liverun.py and is imported from here (gitexp.Run). Other
gitexp modules may use these operations of a Run, besides the documented ones (users need not):

- update_meta(changes): set meta fields, journaled (exit_code, MLflow's run-name and parent tags);
- add_artifacts(entries), add_inputs(entries): record artifacts stored (gitexp/store/artifacts.py)
  or inputs described (gitexp/tracking/inputs.py), journaled before they return;
- flush_journal(): journal what is buffered and bring run.state up to date, the records of
  processes attached to the run included; commits nothing (checkpoint() commits);
- output_log: the file `git exp run` appends its command's output to;
- repo, state, owner, ended: read them; change the state only through the methods above;
- tick(now), before_read(commondir), log_system(values, stamp): for gitexp/store/background.py.

A Run is built by gitexp/tracking/launch.py through its constructor. This module's stack holds the
active runs (the current one last); activate(run) and deactivate(run) change it.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from gitexp import threads
from gitexp.store import journal
from gitexp.tracking import env as env_mod
from gitexp.tracking import launch, ranks
from gitexp.tracking.launch import ENV_PARAMS, ENV_RUN_ID
from gitexp.tracking.liverun import Run, activate, deactivate, stack
from gitexp.tracking.settings import Overrides

__all__ = [
    "Run", "activate", "active_run", "deactivate", "end_run", "flush", "log_artifact", "log_artifacts", "log_dict",
    "log_figure", "log_input", "log_metric", "log_metrics", "log_model", "log_param", "log_params", "log_text",
    "params", "set_tag", "set_tags", "stack", "start_run",
]


def start_run(name: str | None = None, experiment: str | None = None, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, description: str | None = None,
              repo: str | os.PathLike[str] | None = None, *, command: list[str] | None = None,
              capture_env: bool | None = None, capture_code: bool | None = None,
              system_metrics_interval: float | None = None, checkpoint_interval: float | None = None,
              flush_interval: float | None = None, resume: Any = None, fork: Any = None,
              meta: dict[str, Any] | None = None, rank: int | None = None,
              per_rank: bool | Iterable[str] = False) -> Run:
    """Start a run (or, inside `git exp run`, attach to the run it started) and make it active.

    Attached, the run takes the name, params, tags, description and meta given here; its experiment,
    repository and the settings its owner applies (checkpoint_interval, system_metrics_interval,
    capture_env, capture_code) are those of `git exp run`, and a different choice here is warned of
    (launch.attach).

    resume=RUN continues an ended run on its own ref; fork=RUN starts a new run whose first
    commit has RUN's commit as a second parent (RUN: id, id prefix, name, Run or RunRecord).
    meta: extra meta fields of a new run (`git exp rerun` records rerun_of).

    In a distributed job (torchrun, DDP, Accelerate: RANK, else LOCAL_RANK; or *rank* given by a
    framework) only rank 0 starts a run; another rank gets a run whose logging writes nothing,
    unless *per_rank* (True, or the metric keys to keep) has it record its metrics into rank 0's
    run as `rank<k>/<key>`, for the ranks on rank 0's machine (gitexp/tracking/ranks.py).
    """
    job_rank = ranks.rank() if rank is None else rank
    if job_rank > 0:
        quiet = ranks.RankRun(job_rank, per_rank, name, experiment, repo)
        activate(quiet)
        _install_exit_handlers()
        return quiet
    attach_id = os.environ.get(ENV_RUN_ID)
    overrides: Overrides = {"capture_env": capture_env, "capture_code": capture_code,
                            "system_interval": system_metrics_interval, "checkpoint_interval": checkpoint_interval,
                            "flush_interval": flush_interval}
    if resume is not None:
        run = launch.resume(resume, repo, overrides, params, tags)
    elif attach_id and not any(r.id == attach_id for r in stack):
        run = launch.attach(attach_id, params, tags, description, name=name, experiment=experiment, path=repo,
                            overrides=overrides, meta=meta)
        if fork is not None:  # the run exists already: the fork is in meta, without the extra parent
            run.update_meta({"forked_from": launch.source(run.repo, fork).id})
    else:
        run = launch.create(name, experiment, params, tags, description, repo, command, overrides, fork, meta)
        ranks.announce(run)
    activate(run)
    _install_exit_handlers()
    return run


# -- module-level verbs on the active run ----------------------------------------------------


def active_run() -> Run | None:
    return stack[-1] if stack else None


def _current() -> Run:
    return stack[-1] if stack else start_run()


def end_run(status: str = "FINISHED") -> None:
    if stack:
        stack[-1].end(status)


def log_metric(key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
    _current().log_metric(key, value, step, timestamp)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    _current().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: dict[str, Any]) -> None:
    _current().log_params(params)


def set_tag(key: str, value: Any) -> None:
    _current().set_tag(key, value)


def set_tags(tags: dict[str, Any]) -> None:
    _current().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> list[str]:
    return _current().log_artifact(path, name)


def log_artifacts(directory: str | os.PathLike[str], prefix: str | None = None) -> list[str]:
    return _current().log_artifacts(directory, prefix)


def log_text(text: str, name: str) -> str | None:
    return _current().log_text(text, name)


def log_dict(obj: Any, name: str) -> str | None:
    return _current().log_dict(obj, name)


def log_figure(figure: Any, name: str) -> str | None:
    return _current().log_figure(figure, name)


def log_model(obj: Any, name: str, format: str = "pickle") -> list[str]:
    return _current().log_model(obj, name, format)


def log_input(path_or_dataset: Any, name: str | None = None, source: str | None = None,
              copy: bool = False) -> dict[str, Any] | None:
    return _current().log_input(path_or_dataset, name, source, copy)


def params() -> dict[str, Any]:
    """The active run's params; inside `git exp run`, the -p params given on its command line."""
    if stack:
        return stack[-1].params
    return json.loads(os.environ.get(ENV_PARAMS) or "{}")


# -- process exit ------------------------------------------------------------------------------

_handlers_installed = False
_uncaught: list[BaseException] = []


def _install_exit_handlers() -> None:
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    # What ending a run at exit uses, imported now: an import at exit can wait forever on a module
    # lock that a background thread held when the interpreter began to shut down.
    from gitexp.store import notes  # noqa: F401
    atexit.register(_end_all_at_exit)
    previous_hook = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        _uncaught.append(exc)
        previous_hook(kind, exc, tb)

    sys.excepthook = hook
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
            signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


SIGTERM_ENV_WAIT = 5.0  # seconds a SIGTERM's end of a run waits for the environment capture under way
SIGTERM_WAIT = 10.0  # seconds a SIGTERM waits for the runs to end before the process dies anyway


_sigterm_at: float | None = None  # when the first SIGTERM was handled
_ending = False  # a SIGTERM's handler is ending the runs


def _on_sigterm(signum: int, frame: Any) -> None:
    # The handler runs in the main thread wherever it was: maybe inside log_metric, holding the locks
    # that ending the run takes (it waited for itself forever), or inside an import. Inside a
    # function that may hold a run's lock, it returns at once and comes again a moment later
    # (threads.raise_again), for at most SIGTERM_WAIT. Then the runs are ended by another thread
    # while this one waits, at most SIGTERM_WAIT seconds: a run it could not end (an import the
    # ending needs waits for this thread) is left as a kill would leave it, its journal whole,
    # finished as CRASHED by the next reader.
    global _sigterm_at, _ending
    if _ending:
        return  # (delivered again while the first ends the runs, which is what this one would do)
    now = time.monotonic()
    if _sigterm_at is None:
        _sigterm_at = now
        if hasattr(signal, "pthread_kill") and threads.inside_holders(frame):  # (no pthread_kill: Windows)
            threads.raise_again(signum, now + SIGTERM_WAIT, lambda: _ending)
            return
    elif now - _sigterm_at < SIGTERM_WAIT and threads.inside_holders(frame):
        return
    _ending = True
    ender = threads.start(_end_killed, name="gitexp-sigterm")
    ender.join(SIGTERM_WAIT)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _end_killed() -> None:
    with env_mod.bounded(SIGTERM_ENV_WAIT):
        for run in reversed(list(stack)):
            try:
                run.end("KILLED", None)
            except Exception as error:  # the process dies next: report, never raise
                sys.stderr.write(f"gitexp: could not end run {run.id}: {error}\n")


def _end_all_at_exit() -> None:
    env_mod.settle()  # no environment capture importing modules while the runs end
    exc = _uncaught[-1] if _uncaught else None
    status = "FINISHED" if exc is None else "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    for run in reversed(list(stack)):
        try:
            run.end(status, exc)
        except Exception as error:  # interpreter exit: report, never raise
            print(f"gitexp: could not end run {run.id}: {error}", file=sys.stderr)
    flush()
    journal.release_spares()


def flush() -> None:
    """Write now what gitexp would otherwise write within a few seconds: a checkpoint of every
    live run of this process (Run.checkpoint) and the notes of ended runs.

    Ending a run writes the run itself; its line in refs/notes/experiments is batched with
    other runs ending meanwhile. Process exit flushes too, so scripts need not call this.
    """
    for run in list(stack):
        run.checkpoint()
    notes = sys.modules.get("gitexp.store.notes")
    if notes is not None:
        notes.flush_pending()

