"""gitexp's own threads, started with the signals a process is sent blocked: the other threads take them.

A signal sent to a process (SIGTERM from a scheduler or `Pool.terminate()`, SIGINT from Ctrl-C)
goes to one of its threads that does not block it. Python runs the handler in the main thread,
but only once that thread runs Python again: if the signal lands in a background thread while the
main thread waits in C (a semaphore, a multiprocessing queue, a lock), the handler waits as long,
and a SIGTERM that would have ended the process at once under the default action can wait
forever (seen once: a Pool worker that had made runs never died). gitexp's background threads
block these signals, so they reach a thread that can act on them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

# The signals sent to a whole process that a Python handler (gitexp's SIGTERM, the user's) waits for.
PROCESS_SIGNALS = frozenset(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1",
                                                              "SIGUSR2") if hasattr(signal, name))


def start(target: Callable[..., Any], *args: Any, name: str | None = None) -> threading.Thread:
    """A daemon thread running target(*args), started: it inherits the starting thread's signal mask
    with PROCESS_SIGNALS blocked (where the platform has signal masks), from its first instruction."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:  # (Windows: no signal masks, and no signals sent to a thread)
        thread.start()
        return thread
    before = mask(signal.SIG_BLOCK, PROCESS_SIGNALS)
    try:
        thread.start()
    finally:
        mask(signal.SIG_SETMASK, before)  # a signal sent meanwhile is taken here, now
    return thread
