"""Run: a live run of this process, and the stack of the active ones.

gitexp/tracking/launch.py builds a Run (start_run in gitexp/tracking/run.py chooses how); that
module's docstring lists what of a Run other gitexp modules may call. Run is the logging API;
its base, Recorder (gitexp/tracking/recorder.py), journals and commits what is logged.
"""

from __future__ import annotations

import json
import operator
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from gitexp import threads
from gitexp.errors import GitexpError, InvalidValueError
from gitexp.git.repo import Entry, Repo
from gitexp.store import journal, names
from gitexp.store import writer as store
from gitexp.store.background import Emit, Sampler, worker
from gitexp.store.state import FINAL_STATUSES, STATUSES, RunState, merge_params, normalize
from gitexp.tracking import env as env_mod
from gitexp.tracking.commits import FirstCommit
from gitexp.tracking.recorder import Recorder
from gitexp.tracking.redact import mask_text
from gitexp.tracking.settings import RunSettings

# Values log_metric keeps in memory before it writes them to the journal itself (a tenth of a second
# of work) rather than leave them to the background thread, which falls behind past ~100,000 a second.
MAX_BUFFERED = 100_000

# The active runs of this process, the current one last: gitexp.log_metric and mlflow.log_metric log
# to it. Changed only through activate() and deactivate(), which hold the lock.
stack: list[Run] = []
_stack_lock = threading.Lock()


def activate(run: Run) -> None:
    """Make *run* the current run (start_run does; mlflow.start_run(run_id=...) too)."""
    with _stack_lock:
        if run not in stack:
            stack.append(run)


def deactivate(run: Run) -> None:
    """Take *run* off the stack (it ends, or an MlflowClient run is logged to by id only)."""
    with _stack_lock:
        if run in stack:
            stack.remove(run)


def _forget_after_fork() -> None:
    """In a forked child (a DataLoader or multiprocessing worker): the parent's runs stay the
    parent's. The child must not log into copies of them that nobody flushes, nor end them at
    its exit; the lock may have been held by a thread that does not exist in the child."""
    global _stack_lock
    _stack_lock = threading.Lock()
    stack.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


class Run(Recorder):
    """A live run. Created by start_run(); ends with end() or at the end of a `with` block."""

    def __init__(self, repo: Repo, state: RunState, owner: bool, journal_: journal.Journal, settings: RunSettings,
                 *, tip: str | None = None, first: FirstCommit | None = None,
                 clock_start: float | None = None) -> None:
        """The run whose state so far is *state*, journaled to *journal_* and flushed by the background
        thread from now on. owner: this process commits the run (False: a process attached to the run
        of a `git exp run`, which journals only). tip: the commit on the run's ref, if any; first: a new
        run's RUNNING commit, not yet on the ref; clock_start: time.monotonic() at the start (None: the
        duration counts from meta.start, as a resumed run's does)."""
        super().__init__(repo, state, owner, journal_, settings, tip, first)
        self._clock_start = clock_start
        # A resumed run's metrics go on from the step after their last one.
        self._keys: set[str] = set(state.metrics)
        self._steps: dict[str, int] = {key: max(series.steps) + 1 for key, series in state.metrics.items()
                                       if series.steps}
        self.wants_system_metrics = owner and settings["system_interval"] > 0
        # Called first thing in end(): rank 0 of a distributed job waits there for the other ranks
        # recording into the run (gitexp/tracking/ranks.py).
        self.before_end: list[Callable[[], None]] = []
        worker.add(self, self._system_sampler)

    # -- identity ----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.meta.get("name", "")

    @property
    def experiment(self) -> str:
        return self.state.meta["experiment"]

    @property
    def ref(self) -> str:
        return store.run_ref(self.experiment, self.id)

    @property
    def status(self) -> str:
        return self.state.meta.get("status", "RUNNING")

    @property
    def params(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.state.params))

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.state.meta.get("tags", {}))

    def __repr__(self) -> str:
        return f"<gitexp.Run {self.id} name={self.name!r} experiment={self.experiment!r} status={self.status}>"

    # -- logging -----------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
        if key not in self._keys:
            self._new_key(key)
        if type(value) is not float:
            value = _to_float(key, value)
        if step is None:
            step = self._steps.get(key, 0)
        elif type(step) is not int:
            step = _to_step(key, step)
        self._steps[key] = step + 1
        self._buf.append((key, step, time.time() if timestamp is None else float(timestamp), value))
        if len(self._buf) > MAX_BUFFERED:
            self._relieve()

    def _relieve(self) -> None:
        """More values wait than the background thread keeps up with: journal them in this thread,
        so the journal never lags the logging by more than MAX_BUFFERED values (docs/format.md)."""
        try:
            self._flush(checkpoint=False)
        except Exception as exc:  # logging never raises into training
            self._warn_once("writing the journal", exc)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, timestamp: float | None = None) -> None:
        stamp = time.time() if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step, stamp)

    def _new_key(self, key: str) -> None:
        if self.ended:
            raise GitexpError(f"run {self.id} has ended; metric {key!r} was not logged. Start a new run, "
                              "or log inside the `with gitexp.start_run(...)` block")
        names.check_key(key, "metric")
        self._keys.add(key)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        if not isinstance(params, dict):
            raise InvalidValueError(f"params must be a dict of key -> value, not {type(params).__name__}")
        for key in params:
            names.check_key(key, "param")
        clean = normalize(params)
        with self._lock:
            self.state.params = merge_params(self.state.params, clean)
            self._pending.append(journal.record_line("P", clean))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        clean = {names.check_key(k, "tag"): str(v) for k, v in tags.items()}
        with self._lock:
            self.state.set_tags(clean)
            self._pending.append(journal.record_line("T", clean))

    def set_description(self, text: str) -> None:
        self.update_meta({"description": str(text)})

    def update_meta(self, changes: dict[str, Any]) -> None:
        """Change meta fields (journaled with the rest); gitexp modules' own, not checked here."""
        with self._lock:
            self.state.update_meta(changes)
            self._pending.append(journal.record_line("S", changes))

    # -- artifacts and inputs (gitexp/store/artifacts.py, gitexp/tracking/inputs.py) --------------------------

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> list[str]:
        """Store a file (or a folder) as artifacts/<name> (default: its file name)."""
        from gitexp.store import artifacts

        return artifacts.log_artifact(self, path, name)

    def log_artifacts(self, directory: str | os.PathLike[str], prefix: str | None = None) -> list[str]:
        from gitexp.store import artifacts

        return artifacts.log_artifacts(self, directory, prefix)

    def log_text(self, text: str, name: str) -> str | None:
        from gitexp.store import artifacts

        return artifacts.log_text(self, text, name)

    def log_dict(self, obj: Any, name: str) -> str | None:
        from gitexp.store import artifacts

        return artifacts.log_dict(self, obj, name)

    def log_figure(self, figure: Any, name: str) -> str | None:
        from gitexp.store import artifacts

        return artifacts.log_figure(self, figure, name)

    def log_model(self, obj: Any, name: str, format: str = "pickle") -> list[str]:
        from gitexp.store import artifacts

        return artifacts.log_model(self, obj, name, format)

    def log_input(self, path_or_dataset: Any, name: str | None = None, source: str | None = None,
                  copy: bool = False) -> dict[str, Any] | None:
        from gitexp.tracking import inputs

        return inputs.log_input(self, path_or_dataset, name, source, copy)

    def add_artifacts(self, entries: dict[str, Entry]) -> None:
        """Record stored artifacts, journaled before returning so that a crash right after keeps them."""
        from gitexp.store.artifacts import check_conflicts

        if self.ended:
            raise GitexpError(f"run {self.id} has ended; artifacts {', '.join(entries)} were not logged")
        with self._lock:
            check_conflicts({p: e for p, e in self.state.artifacts.items() if p not in entries}, entries)
            self.state.artifacts.update(entries)
            self._pending.append(journal.record_line("A", {p: [e.oid, e.mode] for p, e in entries.items()}))
        self._flush(checkpoint=False)

    def add_inputs(self, entries: dict[str, Any]) -> None:
        """Record described inputs (name -> inputs.yaml entry), journaled before returning."""
        with self._lock:
            self.state.inputs.update(entries)
            self._pending.append(journal.record_line("I", entries))
        self._flush(checkpoint=False)

    # -- background work (gitexp/store/background.py) -------------------------------------------

    def _system_sampler(self, emit: Emit) -> Sampler:
        from gitexp.tracking.system import SystemSampler

        return SystemSampler(emit, self._settings["system_interval"])

    def log_system(self, values: dict[str, float], stamp: float) -> None:
        if not self.ended:
            for key, value in values.items():
                self.log_metric(key, value, timestamp=stamp)


    # -- ending ------------------------------------------------------------------------------

    def end(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """Finish the run: flush everything, record the status, write the final commit."""
        if self.ended:
            return
        if status not in STATUSES:
            raise InvalidValueError(f"invalid run status {status!r}; use one of {', '.join(FINAL_STATUSES)}")
        for hook in self.before_end:
            try:
                hook()
            except Exception as exc:  # ending must go on: the run's data matters more
                self._warn_once("getting ready to end", exc)
        self.ended = True
        worker.remove(self)
        with self._flush_lock:
            # Every value logged goes ahead of the status record: a journal replayed after a kill
            # never holds a status with data missing before it.
            self._drain()
        changes: dict[str, Any] = {}
        if error is not None:
            # masked as output.log is: URL passwords, tokens, KEY=...
            tb = mask_text("".join(traceback.format_exception(type(error), error, error.__traceback__)))
            changes["error"] = {"type": type(error).__name__, "message": mask_text(str(error)),
                                "traceback": tb[-8000:]}
        if self.owner:
            now = time.time()
            # A monotonic clock read at the start gives the duration, whatever the system clock did;
            # a resumed run counts from its first start.
            elapsed = (time.monotonic() - self._clock_start if self._clock_start is not None
                       else now - store.parse_iso(self.state.meta["start"]))
            changes.update({"status": status, "end": store.iso(now), "duration": round(max(0.0, elapsed), 3)})
            if self.state.env is None and self._settings["capture_env"]:
                try:
                    self._set_env(env_mod.shared_env(self._settings["env_variables"]))
                except TimeoutError:  # only within env_mod.bounded(): a SIGTERM's handler (run.py)
                    # (A plain write: a warning would import linecache, which may be what waits.)
                    sys.stderr.write(f"gitexp: run {self.id} ends without its environment (env.yaml): its "
                                     "capture did not finish in time\n")
        if changes:
            self.update_meta(changes)
        self._finish()
        deactivate(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.end("FINISHED")
        elif isinstance(exc, KeyboardInterrupt):
            self.end("KILLED", exc)
        else:
            self.end("FAILED", exc)


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, (str, bytes)):
        raise InvalidValueError(f"metric {key!r}: value {value!r} is a string; metrics must be numbers "
                                "(log text with set_tag or log_param)")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(f"metric {key!r}: value {value!r} of type {type(value).__name__} is not a "
                                "number; pass an int, a float or a numpy/torch scalar") from None


def _to_step(key: str, step: Any) -> int:
    try:
        return operator.index(step)
    except TypeError:
        raise InvalidValueError(f"metric {key!r}: step {step!r} is not an integer") from None


# A SIGTERM's handler ends the runs through these locks: it must not wait for them in the thread that holds one.
threads.holds_locks(activate, deactivate, Run.add_artifacts, Run.add_inputs, Run.end, Run.log_params, Run.set_tags,
                    Run.update_meta, Run.__dict__["params"].fget)
