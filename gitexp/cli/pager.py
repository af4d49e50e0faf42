"""Output for a person at a terminal: how wide it is, and paging long output the way git does.

Git decides both for its own commands, and for `git exp` too when asked (`git -p exp ls`,
`pager.exp`): it then pages our output itself, and tells us so with GIT_PAGER_IN_USE and the
terminal's width in COLUMNS. Otherwise `git exp` pages itself, with the pager git would use
(`git var GIT_PAGER`: $GIT_PAGER, core.pager, $PAGER, less), with LESS=FRX and LV=-c unless set,
as git does. Nothing is paged, and nothing is fitted to a width, when stdout is not a terminal:
pipes and files get the whole output, the same every time.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple, TextIO

_TRUE = ("1", "true", "yes", "on")


class Screen(NamedTuple):
    columns: int
    lines: int


def _stream_is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a stand-in without isatty, or a closed stream
        return False


def screen(stream: TextIO | None = None) -> Screen | None:
    """The size of the terminal where a person reads *stream* (stdout): directly, or through the pager
    git started for us; None when it goes to a pipe or a file (or nowhere a person reads it).

    The size is COLUMNS and LINES when set (git sets COLUMNS for the commands it pages), else the
    terminal's own, else 80x24: git's term_columns().
    """
    stream = sys.stdout if stream is None else stream
    tty = _stream_is_tty(stream)
    if not tty and os.environ.get("GIT_PAGER_IN_USE", "").lower() not in _TRUE:
        return None
    size: os.terminal_size | None = None
    if tty:
        try:
            size = os.get_terminal_size(stream.fileno())
        except (OSError, ValueError, AttributeError):
            size = None
    return Screen(_dimension("COLUMNS", size.columns if size else 0, 80),
                  _dimension("LINES", size.lines if size else 0, 24))


def _dimension(variable: str, measured: int, fallback: int) -> int:
    try:
        value = int(os.environ.get(variable, ""))
    except ValueError:
        value = 0
    return value if value > 0 else measured if measured > 0 else fallback


def pager_command() -> str | None:
    """The pager git would use here (`git var GIT_PAGER` answers with $GIT_PAGER, core.pager, also
    from `git -c`, $PAGER or less), or None for none ("cat", or empty)."""
    import subprocess

    try:
        found = subprocess.run(["git", "var", "GIT_PAGER"], capture_output=True, text=True, check=False)
    except OSError:  # no git: what `git var` would have read from the environment
        command = os.environ.get("GIT_PAGER") or os.environ.get("PAGER") or "less"
    else:
        command = found.stdout.strip() if found.returncode == 0 else "less"
    return None if command in ("", "cat") else command


def _fits(text: str, size: Screen) -> bool:
    """Whether *text* fills less than one screen (what `less -F` shows without paging)."""
    lines = text.count("\n") + (not text.endswith("\n"))
    if lines >= size.lines:
        return False
    return max(map(len, text.splitlines()), default=0) <= size.columns


def page(text: str, stream: TextIO | None = None) -> None:
    """Write *text* to *stream* (stdout): through the pager when that is a terminal and *text* is
    longer than its screen, else as is. A person quitting the pager early is no error."""
    stream = sys.stdout if stream is None else stream
    if not text or not _stream_is_tty(stream) or _fits(text, screen(stream) or Screen(80, 24)):
        stream.write(text)
        return
    command = pager_command()
    if command is None:
        stream.write(text)
        return
    _run_pager(command, text, stream)


def _run_pager(command: str, text: str, stream: TextIO) -> None:
    import subprocess

    env = dict(os.environ)
    # git's PAGER_ENV: less quits when everything fits (F), shows colours (R) and leaves the
    # screen as it was (X); lv shows colours (-c). A value the user set stays.
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    stream.flush()
    # Through the shell, as git runs it: core.pager may hold options, pipes, variables.
    pager = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=stream.fileno(), env=env)
    assert pager.stdin is not None
    data = text.encode(getattr(stream, "encoding", None) or "utf-8", "replace")
    try:
        pager.stdin.write(data)
        pager.stdin.close()
    except BrokenPipeError:  # the person quit the pager before reading everything
        try:
            pager.stdin.close()
        except BrokenPipeError:
            pass
    while True:
        try:
            pager.wait()
            return
        except KeyboardInterrupt:
            # Ctrl-C reaches the pager too, which decides what it means (less stops reading
            # and stays): its terminal is left as it was only if we wait for it.
            continue
