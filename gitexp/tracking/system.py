"""Background sampling of CPU, memory and GPU use while a run is active."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from gitexp import threads
from gitexp.tracking import gpu

if TYPE_CHECKING:
    import psutil

_MB = 2**20
GPU_FIELDS = ("util", "memory_used_mb", "memory_percent", "temperature_c", "power_w")

_process: psutil.Process | None = None


def _own_process() -> psutil.Process:
    import psutil

    global _process
    # After a fork the cached Process would describe the parent.
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
    return _process


def _tree_rss(process: psutil.Process) -> int:
    import psutil

    rss = int(process.memory_info().rss)
    try:
        children = process.children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        # Children come and go (data loader workers); one that just exited is simply not counted.
        with contextlib.suppress(psutil.Error):
            rss += int(child.memory_info().rss)
    return rss


def sample(process: psutil.Process | None = None) -> dict[str, float]:
    """One reading of system metrics; process RSS includes the process's children."""
    import psutil

    memory = psutil.virtual_memory()
    values = {
        "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
        # total - available matches how psutil computes memory.percent, unlike memory.used.
        "system/memory_used_mb": (memory.total - memory.available) / _MB,
        "system/memory_percent": float(memory.percent),
        "system/process_rss_mb": _tree_rss(process if process is not None else _own_process()) / _MB,
    }
    for position, device in enumerate(gpu.gpu_sample()):
        index = device.get("index", position)
        for field in GPU_FIELDS:
            if field in device:
                values[f"system/gpu{index}/{field}"] = float(device[field])
    return values


class SystemSampler:
    """Calls emit(values, timestamp) every *interval* seconds from a daemon thread until stop()."""

    def __init__(self, emit: Callable[[dict[str, float], float], None], interval: float = 10.0) -> None:
        self.interval = float(interval)
        self._emit = emit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.interval <= 0 or self.running:
            return
        import psutil

        # psutil's first cpu_percent call has no baseline and returns 0.0; this makes it the baseline.
        psutil.cpu_percent(interval=None)
        self._stop = threading.Event()
        self._thread = threads.start(self._loop, self._stop, _own_process(), name="gitexp-system-sampler")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self, stop: threading.Event, process: psutil.Process) -> None:
        while not stop.wait(self.interval):
            try:
                values = sample(process)
                # stop() may have been called while sampling; nothing is emitted once it returns.
                if stop.is_set():
                    break
                self._emit(values, time.time())
            except Exception as exc:
                # System metrics are a convenience: they must never take the training script down.
                self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"gitexp: system metrics sampling failed ({exc!r}); continuing without stopping the run",
            RuntimeWarning,
            stacklevel=2,
        )
