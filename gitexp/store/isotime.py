"""ISO 8601 times as gitexp writes them (2026-11-27T00:49:28.930Z): a module of its own, so
that listing runs can read them without importing the writing side."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float) -> str:
    """*ts* (Unix time) in UTC, to the millisecond, with a Z."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """Unix time of an ISO 8601 time; a trailing Z means UTC (which Python 3.10 does not read)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
