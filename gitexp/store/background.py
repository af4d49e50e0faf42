"""One background thread per process flushes every live run; one sampler feeds them system metrics.

Sharing the threads keeps start_run cheap (starting a thread costs milliseconds under the GIL)
and a sweep of many runs in one process from spawning a thread pair per run. What this module
needs of a run and of the sampler it is described here (Flushable, Sampler); the tracking layer
provides both, so the store layer never imports it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gitexp import threads

# How the sampler hands its readings out: emit(values, timestamp).
Emit = Callable[[dict[str, float], float], None]


class Sampler(Protocol):
    """Samples system metrics from a thread of its own, calling the emit it was made with."""

    def start(self) -> None: ...


# Makes the sampler (gitexp.tracking.system.SystemSampler) for a run that wants system metrics.
SamplerFactory = Callable[[Emit], Sampler]


class Flushable(Protocol):
    flush_interval: float
    next_flush: float  # time.monotonic() at which tick() flushes next
    wants_system_metrics: bool

    def tick(self, now: float) -> None: ...

    def before_read(self, commondir: Path) -> None: ...

    def log_system(self, values: dict[str, float], stamp: float) -> None: ...


class _Worker:
    def __init__(self) -> None:
        self._runs: dict[int, Flushable] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler: Sampler | None = None
        self._chores: list[Callable[[], None]] = []
        self._deadline = 0.0  # when the thread wakes next on its own
        # Set in a forked child (a multiprocessing worker ends with os._exit, skipping exit
        # handlers): work that waits for the thread or for exit must be done at once there.
        self.in_forked_child = False

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threads.start(self._loop, name="gitexp-flusher")

    def add_chore(self, chore: Callable[[], None]) -> None:
        """Call *chore* on every tick from now on (it must not raise; it decides itself whether it is due)."""
        with self._lock:
            if chore not in self._chores:
                self._chores.append(chore)
            self._ensure_thread()

    def add(self, run: Flushable, sampler: SamplerFactory | None = None) -> None:
        """Flush *run* from now on; the first run that wants system metrics has *sampler* make the
        process's sampler, which then feeds every run that wants them."""
        with self._lock:
            self._runs[id(run)] = run
            self._ensure_thread()
            if run.wants_system_metrics and self._sampler is None and sampler is not None:
                self._sampler = sampler(self._broadcast)
                self._sampler.start()
            # Waking the thread costs a thread switch (a quarter of a millisecond, a tenth of a
            # short run): only when it would otherwise sleep past this run's first flush.
            wake = run.next_flush < self._deadline
        if wake:
            self._wake.set()

    def before_read(self, commondir: Path) -> None:
        """Readers of runs call this first, so that a process always sees the runs it started
        (their RUNNING commit may still be waiting for the first flush)."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.before_read(commondir)

    def remove(self, run: Flushable) -> None:
        with self._lock:
            self._runs.pop(id(run), None)

    def _broadcast(self, values: dict[str, float], stamp: float) -> None:
        with self._lock:
            runs = [r for r in self._runs.values() if r.wants_system_metrics]
        for run in runs:
            run.log_system(values, stamp)

    def _loop(self) -> None:
        while True:
            with self._lock:
                runs, chores = list(self._runs.values()), list(self._chores)
                # Each run flushes when it is due, not at the next tick after that: so a run's
                # values reach its journal every flush interval, whenever it started.
                now = time.monotonic()
                self._deadline = min((r.next_flush for r in runs), default=now + 1.0)
                self._deadline = min(self._deadline, now + 1.0)  # chores want a call a second
            self._wake.wait(max(self._deadline - now, 0.001))
            self._wake.clear()
            now = time.monotonic()
            for run in runs:
                run.tick(now)  # never raises: a run handles its own failures
            for chore in chores:
                chore()

    def forget_after_fork(self) -> None:
        """In a forked child no thread of the parent runs: start afresh (chores stay registered)."""
        self._runs, self._lock, self._wake = {}, threading.Lock(), threading.Event()
        self._thread = self._sampler = None
        self.in_forked_child = True


worker = _Worker()
os.register_at_fork(after_in_child=worker.forget_after_fork)


# A SIGTERM's handler ends the runs through this lock: it must not wait for it in the thread that holds it.
threads.holds_locks(_Worker._broadcast, _Worker._loop, _Worker.add, _Worker.add_chore, _Worker.before_read,
                    _Worker.remove)
