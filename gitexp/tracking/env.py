"""Capture the environment a run executed in, for the run's env.yaml."""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import re
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from gitexp import threads
from gitexp.errors import InvalidNameError
from gitexp.tracking import gpu
from gitexp.tracking.redact import filter_environ

DEFAULT_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_CPP_MIN_LOG_LEVEL",
    "NCCL_DEBUG",
    "CUBLAS_WORKSPACE_CONFIG",
    "TOKENIZERS_PARALLELISM",
    "PYTORCH_CUDA_ALLOC_CONF",
    "LANG",
)

_VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The static part (everything but environment variables) does not change within a process and
# listing the installed packages is slow, so it is computed once, possibly in the background.
_lock = threading.Lock()
_static: Future[dict[str, Any]] | None = None
_last: tuple[tuple[Any, ...], dict[str, Any]] | None = None


def parse_variable_list(value: str | None) -> list[str]:
    """Split `git config exp.envVariables` ("A, B,C") into names, dropping blanks and repeats."""
    names: list[str] = []
    for name in re.split(r"[,\s]+", value or ""):
        if not name or name in names:
            continue
        if not _VARIABLE_NAME_RE.fullmatch(name):
            raise InvalidNameError(
                f"invalid environment variable name {name!r} in exp.envVariables; "
                "use letters, digits and underscores, separated by commas"
            )
        names.append(name)
    return names


def _normalise(name: str) -> str:
    # PEP 503, so "PyYAML" and "pyyaml" or "typing_extensions" and "typing-extensions" agree.
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages() -> dict[str, str]:
    from importlib import metadata

    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        # A broken install can lack metadata; the first one on sys.path is what imports would use.
        if name:
            found.setdefault(_normalise(name), str(dist.version))
    return dict(sorted(found.items()))


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _cpu_and_memory() -> tuple[dict[str, Any], int | None]:
    try:
        import psutil
    except ImportError:
        return {"model": _cpu_model(), "cores_logical": os.cpu_count(), "cores_physical": None}, None
    cpu = {
        "model": _cpu_model(),
        "cores_logical": psutil.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
    }
    return cpu, int(psutil.virtual_memory().total) // 2**20


def _static_capture() -> dict[str, Any]:
    cpu, memory_total_mb = _cpu_and_memory()
    devices = gpu.gpu_info()
    in_venv = sys.prefix != sys.base_prefix
    return {
        "cpu": cpu,
        "gpu": {"count": len(devices), "devices": devices},
        "host": socket.gethostname(),
        "memory_total_mb": memory_total_mb,
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "kernel": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
        },
        "packages": _packages(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "virtualenv": os.path.basename(sys.prefix.rstrip(os.sep)) if in_venv else None,
    }


def _fill(future: Future[dict[str, Any]]) -> None:
    try:
        future.set_result(_static_capture())
    except BaseException as exc:
        future.set_exception(exc)


def _static_future(background: bool) -> Future[dict[str, Any]]:
    global _static
    with _lock:
        if _static is not None:
            return _static
        future = _static = Future()
    if background:
        threads.start(_fill, future, name="gitexp-env-prefetch")
    else:
        _fill(future)
    return future


def _reset(only: Future[dict[str, Any]] | None = None) -> None:
    """Forget the cached capture (tests change what it would see; a failed one is retried)."""
    global _static
    with _lock:
        if only is None or _static is only:
            _static = None


def _after_fork() -> None:
    """In a forked child the thread filling a pending capture does not exist: it would never
    finish, and a run ending there would wait for it forever. Start afresh."""
    global _lock, _static, _last
    _lock = threading.Lock()
    if _static is not None and not _static.done():
        _static, _last = None, None


def settle() -> None:
    """Let a capture under way finish. Its thread imports modules (importlib.metadata reads every
    package's metadata through the email package): a module lock held by a thread at fork time
    stays held in the child, which would hang on its first import of that module (forked workers
    starting runs did), and at interpreter exit one held while the main thread imports hung the
    exit after a Ctrl-C."""
    future = _static
    if future is not None and not future.done():
        try:
            future.exception(timeout=10)
        except TimeoutError:
            pass  # a capture stuck this long: fork anyway rather than hang the parent


os.register_at_fork(before=settle, after_in_child=_after_fork)


def prefetch() -> None:
    """Start the slow part of capture_env in a background thread; calling it again does nothing."""
    _static_future(background=True)


def ready() -> bool:
    """True once the slow part of the capture is done, so capture_env() will not block."""
    future = _static
    return future is not None and future.done()


def capture_env(variables: Sequence[str] | None = None) -> dict[str, Any]:
    """The environment as plain data; *variables* are recorded in addition to DEFAULT_VARIABLES.

    Secret-looking variable names are never recorded, even when asked for.
    """
    return copy.deepcopy(shared_env(variables))


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Within it, shared_env waits at most *seconds* for a capture under way, then raises TimeoutError.

    For a SIGTERM's handler: it runs in the main thread wherever that thread was, maybe in the
    middle of an import, holding the import lock that the capture's thread waits for to import
    what it reads (a run ended there waited for the capture forever, and the process never died).
    """
    global _bound
    before, _bound = _bound, seconds
    try:
        yield
    finally:
        _bound = before


_bound: float | None = None  # bounded()'s


def shared_env(variables: Sequence[str] | None = None) -> dict[str, Any]:
    """capture_env without the copy: one object for every equal capture (a sweep's runs), which
    lets the YAML of it be written once per process. Read-only."""
    global _last
    future = _static_future(background=False)
    try:
        static = future.result(_bound)
    except TimeoutError:
        raise  # (bounded(): the capture goes on)
    except BaseException:
        _reset(only=future)
        raise
    names = dict.fromkeys([*DEFAULT_VARIABLES, *(variables or ())])
    conda = os.environ.get("CONDA_DEFAULT_ENV") or None
    chosen = dict(sorted(filter_environ(os.environ, names).items()))
    key = (future, conda, tuple(chosen.items()))  # the future itself: an id could be reused
    last = _last
    if last is not None and last[0] == key:
        return last[1]
    env = copy.deepcopy(static)
    env["conda_env"] = conda
    env["variables"] = chosen
    env = dict(sorted(env.items()))
    _last = (key, env)
    return env


def env_yaml(env: dict[str, Any]) -> bytes:
    """Serialise a capture; identical environments give identical bytes."""
    import yaml  # only needed when a run is written, not for `import gitexp`

    return yaml.safe_dump(env, sort_keys=True, default_flow_style=False, allow_unicode=True).encode()


# A SIGTERM's handler ends the runs, which takes this lock: it must not wait for it in the thread that holds it.
threads.holds_locks(_reset, _static_future)
