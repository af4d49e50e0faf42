from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator

import psutil
import pytest

from gitexp.tracking import gpu, system

BASE_KEYS = {
    "system/cpu_percent",
    "system/memory_used_mb",
    "system/memory_percent",
    "system/process_rss_mb",
}


@pytest.fixture(autouse=True)
def fresh_nvml_state() -> Iterator[None]:
    gpu._reset()
    yield
    gpu._reset()


class Collector:
    """Counts emitted samples and lets a test wait for N of them with a deadline."""

    def __init__(self, fail: bool = False) -> None:
        self.samples: list[tuple[dict[str, float], float]] = []
        self.fail = fail
        self._cond = threading.Condition()

    def __call__(self, values: dict[str, float], timestamp: float) -> None:
        with self._cond:
            self.samples.append((values, timestamp))
            self._cond.notify_all()
        if self.fail:
            raise RuntimeError("emit broke")

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.samples) >= count, timeout)


def test_sample_keys_and_ranges() -> None:
    values = system.sample()
    assert set(values) >= BASE_KEYS
    assert all(isinstance(v, float) for v in values.values())
    assert 0 <= values["system/cpu_percent"] <= 100 * (psutil.cpu_count() or 1)
    assert 0 < values["system/memory_used_mb"] <= psutil.virtual_memory().total / 2**20
    assert 0 <= values["system/memory_percent"] <= 100
    assert values["system/process_rss_mb"] > 0
    gpu_keys = {k for k in values if k.startswith("system/gpu")}
    assert len(gpu_keys) <= len(gpu.gpu_sample()) * len(system.GPU_FIELDS)


def test_process_rss_includes_children() -> None:
    code = "import sys, time; data = bytearray(64 * 2**20); print('ready', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        own = psutil.Process().memory_info().rss / 2**20
        assert system.sample()["system/process_rss_mb"] >= own + 32
    finally:
        child.kill()
        child.wait()


def test_no_gpu_keys_without_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    values = system.sample()
    assert set(values) == BASE_KEYS


def test_sampler_emits_then_stops_promptly() -> None:
    collector = Collector()
    sampler = system.SystemSampler(collector, interval=0.05)
    sampler.start()
    assert collector.wait_for(3), "sampler did not emit 3 samples within 10 s"
    started = time.monotonic()
    sampler.stop()
    assert time.monotonic() - started < 1.0
    assert not sampler.running
    emitted = len(collector.samples)
    time.sleep(0.3)  # six intervals: a sampler still running would have emitted again
    assert len(collector.samples) == emitted
    values, timestamp = collector.samples[0]
    assert set(values) >= BASE_KEYS
    assert abs(timestamp - time.time()) < 60
    timestamps = [t for _, t in collector.samples]
    assert timestamps == sorted(timestamps)


def test_failing_emit_does_not_kill_the_sampler() -> None:
    collector = Collector(fail=True)
    sampler = system.SystemSampler(collector, interval=0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler.start()
        try:
            assert collector.wait_for(4), "sampler stopped after emit raised"
        finally:
            sampler.stop()
    ours = [w for w in caught if "system metrics" in str(w.message)]
    assert len(ours) == 1, "warn once, not on every sample"
    assert issubclass(ours[0].category, RuntimeWarning)
    assert "emit broke" in str(ours[0].message)


def test_failing_sample_does_not_kill_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = Collector()

    def broken_sample(process: psutil.Process | None = None) -> dict[str, float]:
        attempts({}, 0.0)
        raise psutil.AccessDenied()

    monkeypatch.setattr(system, "sample", broken_sample)
    emitted = Collector()
    sampler = system.SystemSampler(emitted, interval=0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler.start()
        try:
            assert attempts.wait_for(3)
        finally:
            sampler.stop()
    assert emitted.samples == []
    assert len([w for w in caught if "system metrics" in str(w.message)]) == 1


@pytest.mark.parametrize("interval", [0, -1])
def test_non_positive_interval_disables_sampling(interval: float) -> None:
    collector = Collector()
    sampler = system.SystemSampler(collector, interval=interval)
    sampler.start()
    assert not sampler.running
    sampler.stop()
    assert collector.samples == []


def test_stop_without_start_and_restart() -> None:
    collector = Collector()
    sampler = system.SystemSampler(collector, interval=0.02)
    sampler.stop()
    sampler.start()
    sampler.start()  # already running: no second thread
    assert collector.wait_for(2)
    sampler.stop()
    sampler.start()
    count = len(collector.samples)
    assert collector.wait_for(count + 2)
    sampler.stop()
    assert not sampler.running
