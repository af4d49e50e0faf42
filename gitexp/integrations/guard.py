"""An error inside a callback never reaches training: it is reported once as a warning, and the
callback's later calls go on logging."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from gitexp.warn import warn

F = TypeVar("F", bound=Callable[..., Any])


def report(owner: object, what: str, exc: BaseException) -> None:
    """Warn of *exc*, raised while *owner* was doing *what*, the first time only."""
    seen: set[str] | None = getattr(owner, "_gitexp_warned", None)
    if seen is None:
        seen = set()
        try:
            owner._gitexp_warned = seen  # type: ignore[attr-defined]
        except AttributeError:
            pass
    if what in seen:
        return
    seen.add(what)
    warn(f"gitexp: {type(owner).__name__}.{what} failed ({type(exc).__name__}: {exc}); training goes on and "
         "so does logging, but this part of the run may be missing")


def guarded(method: F) -> F:
    """Wrap a callback method so that an exception in it is reported (report) instead of raised."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            report(self, method.__name__, exc)
            return None

    return call  # type: ignore[return-value]
