"""Distributed training: which process of a job owns its run, and what the other ranks record.

Under torchrun, DDP, Accelerate or a Lightning strategy every rank runs the same script, and each
would start a run of its own. start_run (gitexp/tracking/run.py) asks rank() here: rank 0 owns
the job's one run; any other rank gets a RankRun, whose logging costs a method call and writes
nothing, unless start_run(per_rank=...) chose metrics for it to record. Those reach rank 0's run
prefixed `rank<k>/`, through the journal that processes attached to a `git exp run` use: rank k
appends to a segment of its own and the owner merges it at each flush (gitexp/store/journal.py),
so only ranks on rank 0's machine can.

Rank k learns rank 0's run id from GITEXP_RUN_ID under `git exp run`, else from a rendezvous folder
`<git dir>/gitexp/ranks/<job>/`, named after the job's MASTER_ADDR, MASTER_PORT and
TORCHELASTIC_RUN_ID, where rank 0 writes `run.<n>` ({"id", "pid"}: its n-th run of the job) and
rank k `rank<k>.<n>` ({"pid", "done"}) while it records into that run. Rank 0 waits at the end of
run n, up to WAIT seconds, for every such rank to be done or dead, so that no value of theirs
comes after the final commit.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gitexp.git.repo import Repo
from gitexp.store import journal, names
from gitexp.store.background import worker
from gitexp.store.state import RunState
from gitexp.tracking.launch import ENV_EXPERIMENT, ENV_REPO, ENV_RUN_ID
from gitexp.tracking.liverun import Run, deactivate
from gitexp.warn import warn

WAIT = 30.0  # seconds rank 0 waits for the ranks recording into its run, and they for its run id
_POLL = 0.05
RANKS_DIR = Path("gitexp") / "ranks"

_sequence = itertools.count(1)  # this process's runs in the job: rank k's n-th goes into rank 0's n-th


def _int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else None
    except ValueError:
        return None


def rank() -> int:
    """This process's global rank: RANK (torchrun, Accelerate, DeepSpeed), else from LOCAL_RANK and
    NODE_RANK/GROUP_RANK (Lightning's launcher sets those for the processes it starts); 0 alone."""
    found = _int("RANK")
    if found is not None:
        return found
    local, node = _int("LOCAL_RANK") or 0, _int("NODE_RANK") or _int("GROUP_RANK") or 0
    per_node = _int("LOCAL_WORLD_SIZE") or local + 1
    return node * per_node + local


def local_rank() -> int:
    return _int("LOCAL_RANK") or 0


def world_size() -> int:
    return _int("WORLD_SIZE") or 1


def on_first_node() -> bool:
    """Whether this process runs on rank 0's machine (node 0), where rank 0's journal is."""
    node = _int("GROUP_RANK") or _int("NODE_RANK")
    if node is not None:
        return node == 0
    found = _int("RANK")
    return found is None or found == local_rank()


def job_key() -> str | None:
    """A name for the running job, the same in all its ranks; None outside a distributed launch."""
    port = os.environ.get("MASTER_PORT")
    if not port:
        return None
    parts = (os.environ.get("MASTER_ADDR", ""), port, os.environ.get("TORCHELASTIC_RUN_ID", ""))
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]


def _job_dir(commondir: Path, key: str) -> Path:
    return commondir / RANKS_DIR / key


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)  # readers see the old file or the new one, never half of one


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def announce(run: Run) -> None:
    """On rank 0 of a distributed job: name *run* to the other ranks, and have it wait at its end
    for those that record into it. Costs a small file write; nothing outside such a job."""
    key = job_key()
    if key is None or not run.owner:
        return
    folder = _job_dir(run.repo.commondir, key)
    n = next(_sequence)
    try:
        _write_json(folder / f"run.{n}", {"id": run.id, "pid": os.getpid()})
    except OSError as exc:
        warn(f"gitexp: run {run.id}: the other ranks of this job cannot learn its id ({exc}); their per-rank "
             f"metrics will be missing. Check that {folder} is writable")
        return
    run.before_end.append(lambda: _wait_for_ranks(folder, n, run.id))


def _wait_for_ranks(folder: Path, n: int, run_id: str) -> None:
    deadline = time.monotonic() + WAIT
    waiting: list[str] = []
    while True:
        waiting = []
        for path in folder.glob(f"rank*.{n}"):
            info = _read_json(path)
            if info is not None and not (info.get("done") and info.get("run") == run_id) and _alive(info.get("pid")):
                waiting.append(path.name.split(".")[0])
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(_POLL)
    if waiting:
        warn(f"gitexp: run {run_id} ends without the metrics that {', '.join(sorted(waiting))} may still log: "
             f"they were not done {WAIT:g} s after rank 0 was; end their runs before rank 0's")
    for path in [folder / f"run.{n}", *folder.glob(f"rank*.{n}")]:
        path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # other runs of the job still use it


class RankRun(Run):
    """What start_run returns on a rank other than 0: a Run in type, so it stands wherever one can
    (the active run, ended at exit), that records nothing of its own. With *per_rank* (True: every
    metric; or the keys to keep) its metrics go into rank 0's run as `rank<k>/<key>`."""

    def __init__(self, job_rank: int, per_rank: bool | Iterable[str], name: str | None, experiment: str | None,
                 path: Any) -> None:
        # Run.__init__ is not called: there is no journal or commit of this process's own.
        experiment = experiment or os.environ.get(ENV_EXPERIMENT) or names.DEFAULT_EXPERIMENT
        self.state = RunState(meta={"id": "", "name": name or "", "experiment": experiment, "tags": {}})
        self.owner = False
        self.ended = False
        self._lock = threading.Lock()  # Run's properties (params) read the state under it
        self.rank = job_rank
        self.before_end = []
        self.wants_system_metrics = False  # rank 0 samples the machine, every GPU included
        self.flush_interval = 1.0
        self.next_flush = time.monotonic() + self.flush_interval
        self._chosen: set[str] | None = None if per_rank is True else set(per_rank or ())
        self._recording = bool(per_rank)
        self._steps: dict[str, int] = {}
        self._lines: list[str] = []
        self._segment: journal.Journal | None = None
        self._folder: Path | None = None
        self._n = next(_sequence)
        self._warned: set[str] = set()
        if self._recording:
            self._start(path)

    def _start(self, path: Any) -> None:
        if not on_first_node():
            warn(f"gitexp: rank {self.rank} runs on another machine than rank 0; per-rank metrics are recorded only "
                 "for the ranks on rank 0's machine, where its run's journal is")
            self._recording = False
            return
        attach_id = os.environ.get(ENV_RUN_ID)
        commondir = Repo.discover(os.environ.get(ENV_REPO) if attach_id else path).commondir
        self._commondir = commondir
        if attach_id:
            self._attach(attach_id)
        else:
            key = job_key()
            if key is None:
                warn(f"gitexp: rank {self.rank}: no MASTER_PORT names this distributed job, so rank 0's run cannot be "
                     "found and this rank's metrics are not recorded; launch with torchrun, or log from rank 0")
                self._recording = False
                return
            self._folder = _job_dir(commondir, key)
            self._register(done=False)
        worker.add(self)

    def _register(self, done: bool) -> None:
        assert self._folder is not None
        try:
            _write_json(self._folder / f"rank{self.rank}.{self._n}", {"pid": os.getpid(), "run": self.id,
                                                                      "done": done})
        except OSError as exc:
            self._warn_once("registering with rank 0", exc)

    def _attach(self, run_id: str) -> None:
        self.state.meta["id"] = run_id
        self._segment = journal.Journal.attach(self._commondir, run_id)

    def _find_run(self) -> bool:
        """Whether rank 0's run is known (looked up in the rendezvous folder if not yet)."""
        if self._segment is not None:
            return True
        assert self._folder is not None
        info = _read_json(self._folder / f"run.{self._n}")
        if info is None or not isinstance(info.get("id"), str) or not _alive(info.get("pid")):
            return False  # not announced yet, or a dead job's announcement
        self._attach(info["id"])
        return True

    def _warn_once(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            warn(f"gitexp: rank {self.rank}: {what} failed ({exc}); this rank's metrics may be incomplete")

    # -- logging: nothing unless recording ---------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: float | None = None) -> None:
        if not self._recording or (self._chosen is not None and key not in self._chosen):
            return
        if step is None:
            step = self._steps.get(key, 0)
        self._steps[key] = int(step) + 1
        try:
            line = journal.metric_line(f"rank{self.rank}/{key}", int(step),
                                       time.time() if timestamp is None else float(timestamp), float(value))
        except (TypeError, ValueError) as exc:
            self._warn_once(f"logging metric {key!r}", exc)
            return
        self._lines.append(line)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, timestamp: float | None = None) -> None:
        if self._recording:
            stamp = time.time() if timestamp is None else timestamp
            for key, value in metrics.items():
                self.log_metric(key, value, step, stamp)

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def update_meta(self, changes: dict[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> list[str]:
        return []

    def log_artifacts(self, directory: str | os.PathLike[str], prefix: str | None = None) -> list[str]:
        return []

    def log_text(self, text: str, name: str) -> str | None:
        return None

    def log_dict(self, obj: Any, name: str) -> str | None:
        return None

    def log_figure(self, figure: Any, name: str) -> str | None:
        return None

    def log_model(self, obj: Any, name: str, format: str = "pickle") -> list[str]:
        return []

    def log_input(self, path_or_dataset: Any, name: str | None = None, source: str | None = None,
                  copy: bool = False) -> dict[str, Any] | None:
        return None

    def add_artifacts(self, entries: dict[str, Any]) -> None:
        pass

    def add_inputs(self, entries: dict[str, Any]) -> None:
        pass

    # -- writing -------------------------------------------------------------------------------

    def _write(self) -> None:
        if not self._lines or not self._find_run():
            return
        assert self._segment is not None
        if not self._segment.exists():
            self._lines.clear()
            self._warn_once("recording", RuntimeError(f"rank 0's run {self.id} has ended already"))
            return
        text, self._lines = "".join(self._lines), []
        try:
            self._segment.append(text)
        except OSError as exc:
            self._lines.insert(0, getattr(exc, "remainder", text))
            self._warn_once("writing the journal", exc)

    def tick(self, now: float) -> None:
        if now < self.next_flush or self.ended:
            return
        self.next_flush = now + self.flush_interval
        self._write()

    def flush_journal(self) -> None:
        if self._recording:
            self._write()

    def checkpoint(self) -> None:
        self.flush_journal()

    def before_read(self, commondir: Path) -> None:
        pass

    def log_system(self, values: dict[str, float], stamp: float) -> None:
        pass

    def end(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """Stop; a recording rank writes what it has, waiting up to WAIT s for rank 0's run id,
        then tells rank 0 it is done. Its status is rank 0's to record."""
        if self.ended:
            return
        self.ended = True
        deactivate(self)
        if not self._recording:
            return
        worker.remove(self)
        deadline = time.monotonic() + WAIT
        while self._lines and not self._find_run() and time.monotonic() < deadline:
            time.sleep(_POLL)
        self._write()
        if self._lines:
            self._warn_once("recording", RuntimeError(f"rank 0's run was not announced within {WAIT:g} s"))
        if self._segment is not None:
            self._segment.close()
        if self._folder is not None:
            self._register(done=True)
