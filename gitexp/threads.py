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
import time
from collections.abc import Callable
from types import CodeType, FrameType
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


# -- where a signal handler would wait for its own thread ------------------------------------------
#
# A handler runs in the main thread wherever that thread was: maybe inside code that holds a lock
# the handler's own work takes (gitexp's SIGTERM ends the runs, which takes the runs' locks). With
# `with lock:` on C locks, taking and letting go are atomic to signals and KeyboardInterrupt; a
# Python wrapper that counted them would not be (a Ctrl-C between its lines could leave a lock taken). So
# the handler looks at the frames it interrupted instead: the functions registered here may hold
# such a lock, and the handler comes back a moment later (raise_again) rather than wait.

_holders: set[CodeType] = set()
RETRY = 0.05  # seconds between two deliveries of a signal whose handler found the main thread busy


def holds_locks(*functions: Callable[..., Any]) -> None:
    """Register *functions* as holding, somewhere in their code, a lock that a signal handler takes."""
    _holders.update(f.__code__ for f in functions)


def lock_holders() -> set[str]:
    """The qualified names of the functions of holds_locks()."""
    return {getattr(code, "co_qualname", code.co_name) for code in _holders}  # (co_qualname: Python 3.11)


def inside_holders(frame: FrameType | None) -> bool:
    """Whether *frame* (what a handler interrupted) or a frame under it runs a function of
    holds_locks(): the main thread may hold a lock there."""
    while frame is not None:
        if frame.f_code in _holders:
            return True
        frame = frame.f_back
    return False


def raise_again(signum: int, until: float, done: Callable[[], bool]) -> threading.Thread:
    """A thread that delivers *signum* to the main thread every RETRY seconds (a wait in C there is
    interrupted), until done() or the time.monotonic() *until*, and once more then."""
    def deliver() -> None:
        while not done():
            time.sleep(min(RETRY, max(0.0, until - time.monotonic())))
            if done():
                return
            signal.pthread_kill(threading.main_thread().ident or 0, signum)
            if time.monotonic() >= until:
                return
    return start(deliver, name="gitexp-signal-again")
