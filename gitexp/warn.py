"""Warnings that point at the user's code, never at gitexp's.

warnings.warn with a fixed stacklevel prints a line of gitexp's own source when the call comes
through more or fewer gitexp frames than the level assumed (or from a background thread), which
tells the user nothing. warn() attributes the warning to the nearest frame outside the package,
and to no source line at all when there is none (a background thread).
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        # "gitexp" names no file, so no source line is printed under the message.
        warnings.warn_explicit(message, category, "gitexp", 0, module="gitexp")
        return
    registry = frame.f_globals.setdefault("__warningregistry__", {})
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                           module=frame.f_globals.get("__name__", "gitexp"), registry=registry,
                           module_globals=frame.f_globals)
