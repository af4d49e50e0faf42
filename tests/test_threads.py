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
