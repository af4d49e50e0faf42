"""The only stand-in allowed here is a missing GPU; a working GPU is never faked."""

from __future__ import annotations

import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitexp.tracking import gpu


@pytest.fixture(autouse=True)
def fresh_nvml_state() -> Iterator[None]:
    gpu._reset()
    yield
    gpu._reset()


def _driver_available() -> bool:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    return True


def _failing_pynvml(calls: list[int]) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def nvmlInit() -> None:
        calls.append(1)
        raise NVMLError("Driver Not Loaded")

    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.nvmlInit = nvmlInit  # type: ignore[attr-defined]
    return module


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert gpu.gpu_info() == []
    assert gpu.gpu_sample() == []


def test_nvml_init_error_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setitem(sys.modules, "pynvml", _failing_pynvml(calls))
    assert gpu.gpu_info() == []
    assert gpu.gpu_sample() == []
    assert gpu.gpu_info() == []
    assert len(calls) == 1, "a failed init is remembered, not retried on every sample"


def test_init_happens_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setitem(sys.modules, "pynvml", _failing_pynvml(calls))
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        gpu.gpu_sample()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1


def test_importing_does_not_load_pynvml_or_psutil() -> None:
    # Both are slow to import and NVML init can take seconds: only a call may pay for them.
    code = (
        "import sys, gitexp.tracking.gpu, gitexp.tracking.env, gitexp.tracking.system, gitexp.tracking.redact; "
        "print(sorted({'pynvml', 'psutil'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    out = proc.stdout
    assert out.strip() == "[]"


def test_real_pynvml_on_this_machine() -> None:
    info = gpu.gpu_info()
    samples = gpu.gpu_sample()
    if not _driver_available():
        assert info == []
        assert samples == []
        return
    assert [d["index"] for d in info] == list(range(len(info)))
    for device in info:
        assert set(device) == {"index", "name", "uuid", "memory_total_mb", "driver_version", "cuda_version"}
        assert isinstance(device["name"], str)
        assert isinstance(device["memory_total_mb"], int)
    assert gpu.gpu_info() == info, "gpu_info holds no volatile values"
    assert len(samples) == len(info)


@pytest.mark.parametrize(
    ("raw", "text"), [(12040, "12.4"), (11080, "11.8"), (12020, "12.2"), (10010, "10.1")]
)
def test_cuda_version_format(raw: int, text: str) -> None:
    assert gpu._format_cuda_version(raw) == text


def test_bytes_from_old_pynvml_become_str() -> None:
    assert gpu._text(b"NVIDIA H100") == "NVIDIA H100"
    assert gpu._text("NVIDIA H100") == "NVIDIA H100"
    assert gpu._text(None) is None
