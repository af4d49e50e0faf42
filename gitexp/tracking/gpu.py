"""The only module that talks to NVML; any failure there means "no GPU", never an exception."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gitexp import threads

_MB = 2**20

_lock = threading.Lock()
_tried = False
_nvml: Any = None


def _nvml_module() -> Any:
    """pynvml, initialised once per process, or None when there is no usable driver."""
    global _tried, _nvml
    # _nvml is always set before _tried, so the unlocked read never sees a half-done init.
    if _tried:
        return _nvml
    with _lock:
        if not _tried:
            try:
                import pynvml

                pynvml.nvmlInit()
            except Exception:
                _nvml = None
            else:
                _nvml = pynvml
            _tried = True
    return _nvml


def _reset() -> None:
    """Forget the cached init result (tests swap pynvml in and out)."""
    global _tried, _nvml
    with _lock:
        _tried = False
        _nvml = None


def _query(fn: Callable[..., Any], *args: Any) -> Any:
    # One failing query (unsupported on this card, MIG, permissions) must not hide the others.
    try:
        return fn(*args)
    except Exception:
        return None


def _text(value: Any) -> str | None:
    # Older pynvml releases return bytes, newer ones str.
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _format_cuda_version(version: int) -> str:
    """NVML encodes CUDA 12.4 as 12040."""
    return f"{version // 1000}.{version % 1000 // 10}"


def _cuda_version(nv: Any) -> str | None:
    for name in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        fn = getattr(nv, name, None)
        if fn is None:
            continue
        version = _query(fn)
        if isinstance(version, int) and version > 0:
            return _format_cuda_version(version)
    return None


def gpu_info() -> list[dict[str, Any]]:
    """Static description of each GPU (nothing volatile, so identical machines compare equal)."""
    nv = _nvml_module()
    if nv is None:
        return []
    try:
        driver = _text(_query(nv.nvmlSystemGetDriverVersion))
        cuda = _cuda_version(nv)
        devices = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            memory = _query(nv.nvmlDeviceGetMemoryInfo, handle)
            devices.append(
                {
                    "index": index,
                    "name": _text(_query(nv.nvmlDeviceGetName, handle)),
                    "uuid": _text(_query(nv.nvmlDeviceGetUUID, handle)),
                    "memory_total_mb": int(memory.total) // _MB if memory is not None else None,
                    "driver_version": driver,
                    "cuda_version": cuda,
                }
            )
        return devices
    except Exception:
        return []


def gpu_sample() -> list[dict[str, Any]]:
    """Current utilisation of each GPU; a field NVML cannot report is left out."""
    nv = _nvml_module()
    if nv is None:
        return []
    try:
        samples = []
        for index in range(nv.nvmlDeviceGetCount()):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            values: dict[str, Any] = {"index": index}
            util = _query(nv.nvmlDeviceGetUtilizationRates, handle)
            if util is not None:
                values["util"] = float(util.gpu)
            memory = _query(nv.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                values["memory_used_mb"] = memory.used / _MB
                if memory.total:
                    values["memory_percent"] = 100.0 * memory.used / memory.total
            temperature = _query(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
            if temperature is not None:
                values["temperature_c"] = float(temperature)
            power_mw = _query(nv.nvmlDeviceGetPowerUsage, handle)
            if power_mw is not None:
                values["power_w"] = power_mw / 1000.0
            samples.append(values)
        return samples
    except Exception:
        return []


# A SIGTERM's handler ends the runs, whose environment capture takes this lock.
threads.holds_locks(_nvml_module)
