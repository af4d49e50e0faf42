"""gitexp's own threads (gitexp/threads.py) leave the signals sent to a process to the other threads."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

import gitexp
from gitexp import threads

needs_masks = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask") or not Path("/proc/self/task").is_dir(),
                                 reason="signal masks read from /proc (Linux)")


def blocked(thread: threading.Thread) -> set[int]:
    """The signals *thread* blocks, as the kernel says (SigBlk of its /proc status)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    return {sig for sig in range(1, 65) if mask >> (sig - 1) & 1}


@needs_masks
def test_a_runs_background_threads_block_what_is_sent_to_the_process(repo: Path) -> None:
    """A SIGTERM that lands in a gitexp thread while the main thread waits in C (a Pool worker's
    queue) waited for the main thread forever: the handler runs there, only."""
    with gitexp.start_run(name="r", system_metrics_interval=0.05) as run:
        run.log_metric("loss", 1.0)
        ours = [t for t in threading.enumerate() if t.name.startswith("gitexp-")]
        assert {t.name for t in ours} >= {"gitexp-flusher", "gitexp-system-sampler"}
        wanted = {int(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        for thread in ours:
            assert wanted <= blocked(thread), thread.name
        assert not wanted & blocked(threading.main_thread())  # the main thread takes them


@needs_masks
def test_the_starting_threads_mask_is_as_it_was() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    done = threading.Event()
    thread = threads.start(done.wait, 5, name="gitexp-test")
    try:
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
        assert {int(s) for s in threads.PROCESS_SIGNALS} <= blocked(thread)
    finally:
        done.set()
        thread.join()



HANDLER = """
import os, signal, sys, threading, time
from gitexp import threads

seen = []


def handler(signum, frame):
    if len(seen) < 50 and threads.inside_holders(frame):
        if not seen:
            threads.raise_again(signum, time.monotonic() + 30, lambda: "handled" in seen)
        seen.append("busy")
        return
    seen.append("handled")


def holding():  # as a function of the runs that takes their locks
    with lock:
        os.kill(os.getpid(), signal.SIGUSR1)  # handled here, inside
        seen.append("let go")


lock = threading.Lock()
threads.holds_locks(holding)
signal.signal(signal.SIGUSR1, handler)
holding()
while "handled" not in seen:
    time.sleep(0.01)  # the handler comes again, now that nothing is held
print(" ".join(dict.fromkeys(seen)))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1") or not hasattr(signal, "pthread_kill"), reason="POSIX signals")
def test_a_handler_that_finds_the_main_thread_holding_a_lock_comes_again_once_it_is_free() -> None:
    """A SIGTERM's handler that ends the runs takes their locks: handled while the main thread held
    one, it waited for itself. It returns instead, and the signal is delivered again a moment later."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", HANDLER], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    assert out.split() == ["busy", "let", "go", "handled"]


def test_every_function_that_takes_a_lock_the_sigterm_handler_needs_is_registered() -> None:
    """The handler ends the runs, which goes through the tracking modules, the background worker and
    the notes queue: a function of theirs that takes a lock and is not registered would make the
    handler wait for its own thread again."""
    import ast
    import importlib

    root = Path(gitexp.__file__).parent
    files = [*sorted((root / "tracking").glob("*.py")), root / "store" / "background.py", root / "store" / "notes.py"]
    taking: set[str] = set()
    for path in files:
        importlib.import_module(".".join(path.relative_to(root.parent).with_suffix("").parts))  # its registrations
        tree = ast.parse(path.read_text())
        scopes = [(node, "") for node in tree.body]
        while scopes:
            node, prefix = scopes.pop()
            if isinstance(node, ast.ClassDef):
                scopes.extend((child, f"{prefix}{node.name}.") for child in node.body)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    isinstance(sub, ast.With) and any("lock" in ast.unparse(item.context_expr).lower()
                                                      for item in sub.items) for sub in ast.walk(node)):
                taking.add(f"{prefix}{node.name}")
    assert taking and taking <= threads.lock_holders(), sorted(taking - threads.lock_holders())
