"""The logging API: Run, start_run, and the module-level verbs acting on the active run."""

from __future__ import annotations

import atexit
import collections
import json
import operator
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from gitexp.errors import GitexpError, InvalidValueError
from gitexp.git.repo import Entry, RefConflictError, Repo
from gitexp.store import codec as fmt
from gitexp.store import journal, names
from gitexp.store import writer as store
from gitexp.store.background import worker
from gitexp.store.state import FINAL_STATUSES, STATUSES, RunState, merge_params, normalize
from gitexp.tracking import env as env_mod
from gitexp.tracking.redact import mask_text

ENV_RUN_ID, ENV_REPO, ENV_PARAMS, ENV_EXPERIMENT = "GITEXP_RUN_ID", "GITEXP_REPO", "GITEXP_PARAMS", "GITEXP_EXPERIMENT"

# Values log_metric keeps in memory before it writes them to the journal itself (a tenth of a second
# of work) rather than leave them to the background thread, which falls behind past ~100,000 a second.
MAX_BUFFERED = 100_000
# An ending run with more values than this not yet journaled journals them before its final commit,
# which then takes long enough for a kill to land in it.
JOURNAL_FIRST = 10_000

_active: list[Run] = []
_registry_lock = threading.Lock()


def _forget_after_fork() -> None:
    """In a forked child (a DataLoader or multiprocessing worker): the parent's runs stay the
    parent's. The child must not log into copies of them that nobody flushes, nor end them at
    its exit; the lock may have been held by a thread that does not exist in the child."""
    global _registry_lock
    _registry_lock = threading.Lock()
    _active.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


class Run:
    """A live run. Created by start_run(); ends with end() or at the end of a `with` block."""

    def __init__(self, repo: Repo, state: RunState, owner: bool, journal_: journal.Journal,
                 tip: str | None, settings: dict[str, float]) -> None:
        self.repo = repo
        self.state = state
        self.owner = owner
        self.ended = False
        self._journal = journal_
        self._tip = tip
        # The run as it started, while its RUNNING commit is not yet on the ref: the background
        # thread writes it at the first flush, or end() writes it with the final commit (one
        # pack, one ref update), so a short run costs one commit's I/O instead of two.
        self._initial: RunState | None = None
        self._first: str | None = None
        self._extra_parents: tuple[str, ...] = ()
        self._settings = settings
        self._buf: collections.deque[tuple[str, int, float, float]] = collections.deque()
        self._steps: dict[str, int] = {}
        self._keys: set[str] = set()
        self._lock = threading.Lock()  # guards params, tags and pending journal lines
        self._flush_lock = threading.Lock()  # one flush at a time: the flusher thread or end()
        self._pending: list[str] = []
        self._warned: set[str] = set()
        self._last_checkpoint = time.monotonic()
        self.flush_interval = float(settings["flush_interval"])
        self.next_flush = self._last_checkpoint + self.flush_interval
        self.wants_system_metrics = owner and settings["system_interval"] > 0

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
        self._meta({"description": str(text)})

    def _meta(self, changes: dict[str, Any]) -> None:
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

    def _add_artifacts(self, entries: dict[str, Entry]) -> None:
        """Record stored artifacts, journaled before returning so that a crash right after keeps them."""
        from gitexp.store.artifacts import check_conflicts

        if self.ended:
            raise GitexpError(f"run {self.id} has ended; artifacts {', '.join(entries)} were not logged")
        with self._lock:
            check_conflicts({p: e for p, e in self.state.artifacts.items() if p not in entries}, entries)
            self.state.artifacts.update(entries)
            self._pending.append(journal.record_line("A", {p: [e.oid, e.mode] for p, e in entries.items()}))
        self._flush(checkpoint=False)

    def _add_inputs(self, entries: dict[str, Any]) -> None:
        with self._lock:
            self.state.inputs.update(entries)
            self._pending.append(journal.record_line("I", entries))
        self._flush(checkpoint=False)

    # -- background work ---------------------------------------------------------------------

    def _start_background(self) -> None:
        worker.add(self, self._settings["system_interval"])

    def log_system(self, values: dict[str, float], stamp: float) -> None:
        if not self.ended:
            for key, value in values.items():
                self.log_metric(key, value, timestamp=stamp)

    def tick(self, now: float) -> None:
        """Called by the shared background thread; flushes when this run's interval is due."""
        if now < self.next_flush or self.ended:
            return
        self.next_flush = now + self.flush_interval
        try:
            self._flush(checkpoint=True)
        except Exception as exc:  # the background thread serves every run: never let one kill it
            self._warn_once("flushing", exc)

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(f"gitexp: run {self.id}: {what} failed ({exc}); the data is kept in memory "
                          "and will be written on the next attempt", RuntimeWarning, stacklevel=2)

    def _flush(self, checkpoint: bool, to_journal: bool = True) -> None:
        """Move buffered values into the state and the journal; commit a checkpoint when due."""
        with self._flush_lock:
            if checkpoint and self.ended:
                # A tick that began as end() was called: end() wrote the final commit, and the Repo
                # may serve the next run by now.
                return
            self._flush_locked(checkpoint, to_journal)

    def _drain(self) -> None:
        """Move the buffered values into the state and the pending journal text (flush lock held)."""
        buf, lines = self._buf, []
        add = self.state.add_metric
        for _ in range(len(buf)):
            key, step, stamp, value = buf.popleft()
            add(key, step, stamp, value)
            lines.append(journal.metric_line(key, step, stamp, value))
        with self._lock:
            self._pending.extend(lines)

    def _flush_locked(self, checkpoint: bool, to_journal: bool) -> None:
        self._drain()
        with self._lock:
            text, self._pending = "".join(self._pending), []
            if not to_journal:
                self._pending.insert(0, text)
                text = ""
        if text:
            try:
                self._journal.append(text)
            except OSError as exc:
                with self._lock:
                    self._pending.insert(0, getattr(exc, "remainder", text))
                self._warn_once("writing the journal", exc)
        if not self.owner:
            return
        try:
            journal.apply(self.state, self._journal.read_others())
            if self.state.env is None and self._settings["capture_env"] and env_mod.ready():
                self._set_env(env_mod.shared_env(self._settings["env_variables"]))
        except Exception as exc:  # a bad record from a child must not stop the run
            self._warn_once("reading attached processes' journals", exc)
        if not checkpoint:
            return
        if time.monotonic() - self._last_checkpoint >= self._settings["checkpoint_interval"]:
            self._commit()  # with the RUNNING commit under it, if that is not written yet
        elif self._initial is not None:
            self._write_first()

    def _set_env(self, captured: dict[str, Any]) -> None:
        self.state.env = captured
        with self._lock:
            self._pending.append(journal.record_line("E", captured))

    def checkpoint(self) -> None:
        """Commit everything logged so far now, so other processes (`git exp ls`, a push) see it.

        The background thread does this on its own every exp.checkpointInterval seconds, and
        puts a new run's RUNNING commit on its ref within exp.flushInterval of its start.
        """
        if self.ended:
            return
        if not self.owner:
            self._flush(checkpoint=False)  # the owner commits what attached processes journal
            return
        with self._flush_lock:
            self._flush_locked(checkpoint=False, to_journal=True)
            self._commit()

    def before_read(self, commondir: Path) -> None:
        """A reader in this process is about to list the runs of *commondir*: be on the ref by then."""
        if self._initial is not None and self.repo.commondir == commondir:
            self._write_first()

    def _write_first(self) -> None:
        """Put the RUNNING commit (the run as it started) on the ref."""
        try:
            with self._lock:
                if self._initial is None:
                    return
                self._tip = store.put_first(self.repo, self._initial, self._stage_first())
                self._initial = None
        except (GitexpError, OSError) as exc:
            self._warn_once("writing the first commit", exc)

    def _stage_first(self) -> str:
        """The RUNNING commit's id, staged once; the journal records it before it is written."""
        if self._first is None:
            assert self._initial is not None
            self._first = store.stage_first(self.repo, self._initial, self._extra_parents)
            self._journal.write_info({**self._journal.info, "base": self._first})
        return self._first

    def _commit(self) -> bool:
        started = time.monotonic()
        try:
            with self._lock:
                files = store.output_log_entry(self.repo, self._journal.output)
                first = self._stage_first() if self._initial is not None else None
                try:
                    self._tip = store.commit_state(self.repo, self.state, self._tip, files=files, first=first)
                except RefConflictError:
                    # Someone moved our ref (e.g. `git exp rm`): build on what is there now.
                    self._tip = self.repo.ref(self.ref)
                    self._tip = store.commit_state(self.repo, self.state, self._tip, files=files,
                                                   first=first if self._tip is None else None)
                self._initial = None
        except (GitexpError, OSError) as exc:
            self._warn_once("committing a checkpoint", exc)
            return False
        finally:
            # A checkpoint of a huge run costs more: never spend more than 2% of the time on them.
            cost = time.monotonic() - started
            self._settings["checkpoint_interval"] = max(self._settings["checkpoint_interval"], cost * 50)
            self._last_checkpoint = time.monotonic()
        return True

    # -- ending ------------------------------------------------------------------------------

    def end(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """Finish the run: flush everything, record the status, write the final commit."""
        if self.ended:
            return
        if status not in STATUSES:
            raise InvalidValueError(f"invalid run status {status!r}; use one of {', '.join(FINAL_STATUSES)}")
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
            changes.update({"status": status, "end": store.iso(now),
                            # A monotonic clock read at the start (launch.create) gives it, whatever the
                            # system clock did; a resumed run counts from its first start.
                            "duration": round(max(0.0, time.monotonic() - self._clock_start
                                                  if hasattr(self, "_clock_start")
                                                  else now - store.parse_iso(self.state.meta["start"])), 3)})
            if self.state.env is None and self._settings["capture_env"]:
                self._set_env(env_mod.shared_env(self._settings["env_variables"]))
        if changes:
            self._meta(changes)
        self._finish()
        with _registry_lock:
            if self in _active:
                _active.remove(self)

    def _finish(self) -> None:
        # The final commit makes the tail of the journal redundant, so a short run does not write it
        # (creating the journal file would cost more than the run). A run that journals already, or
        # has many values waiting, writes them first: its final commit takes long enough to be killed in.
        with self._lock:
            waiting = len(self._pending)
        self._flush(checkpoint=False, to_journal=not self.owner or self._journal.is_open() or waiting > JOURNAL_FIRST)
        if not self.owner:
            self._journal.close()
            return
        for attempt in range(5):
            if self._commit():
                self._journal.remove()
                _add_note(self)
                self.repo.give_back()
                return
            time.sleep(0.05 * 2**attempt)
        with self._lock:
            self._pending.append(journal.COMPLETE)  # after all data and the status: it stands
        self._flush(checkpoint=False)
        self._journal.close()
        self.repo.release_all()
        warnings.warn(f"gitexp: run {self.id} could not be committed; its journal is kept in "
                      f"{self._journal.root} and `git exp recover` will finish it", RuntimeWarning,
                      stacklevel=3)

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


def start_run(name: str | None = None, experiment: str | None = None, params: dict[str, Any] | None = None,
              tags: dict[str, Any] | None = None, description: str | None = None,
              repo: str | os.PathLike[str] | None = None, *, command: list[str] | None = None,
              capture_env: bool | None = None, capture_code: bool | None = None,
              system_metrics_interval: float | None = None, checkpoint_interval: float | None = None,
              flush_interval: float | None = None, resume: Any = None, fork: Any = None,
              meta: dict[str, Any] | None = None) -> Run:
    """Start a run (or, inside `git exp run`, attach to the run it started) and make it active.

    resume=RUN continues an ended run on its own ref; fork=RUN starts a new run whose first
    commit has RUN's commit as a second parent (RUN: id, id prefix, name, Run or RunRecord).
    meta: extra meta fields of a new run (`git exp rerun` records rerun_of).
    """
    attach_id = os.environ.get(ENV_RUN_ID)
    overrides = {"capture_env": capture_env, "capture_code": capture_code, "system_interval":
                 system_metrics_interval, "checkpoint_interval": checkpoint_interval, "flush_interval": flush_interval}
    from gitexp.tracking import launch

    if resume is not None:
        run = launch.resume(resume, repo, overrides, params, tags)
    elif attach_id and not any(r.id == attach_id for r in _active):
        run = launch.attach(attach_id, params, tags, description)
        if fork is not None:  # the run exists already: the fork is in meta, without the extra parent
            run._meta({"forked_from": launch.source(run.repo, fork).id})
    else:
        run = launch.create(name, experiment, params, tags, description, repo, command, overrides, fork, meta)
    with _registry_lock:
        _active.append(run)
    _install_exit_handlers()
    return run


def _add_note(run: Run) -> None:
    """Queue the run's line in refs/notes/experiments (written within notes.NOTE_DELAY, with the
    lines of other runs ending meanwhile); derived data, so a failure only warns."""
    try:
        if run.repo.config_bool("exp.notes", True):
            from gitexp.store import notes

            notes.queue_run_note(run.repo, run.state.meta, fmt.summaries(run.state))
            worker.add_chore(notes.flush_due)
    except Exception as exc:
        warnings.warn(f"gitexp: run {run.id} is saved, but its note in refs/notes/experiments was not written "
                      f"({exc}); `git exp notes rebuild` writes it", RuntimeWarning, stacklevel=4)


# -- module-level verbs on the active run ----------------------------------------------------


def active_run() -> Run | None:
    return _active[-1] if _active else None


def _current() -> Run:
    return _active[-1] if _active else start_run()


def end_run(status: str = "FINISHED") -> None:
    if _active:
        _active[-1].end(status)


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
    if _active:
        return _active[-1].params
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


def _on_sigterm(signum: int, frame: Any) -> None:
    for run in reversed(list(_active)):
        run.end("KILLED", None)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _end_all_at_exit() -> None:
    env_mod.settle()  # no environment capture importing modules while the runs end
    exc = _uncaught[-1] if _uncaught else None
    status = "FINISHED" if exc is None else "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    for run in reversed(list(_active)):
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
    for run in list(_active):
        run.checkpoint()
    notes = sys.modules.get("gitexp.store.notes")
    if notes is not None:
        notes.flush_pending()

