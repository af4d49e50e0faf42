"""Object names read from pack indexes (git's .idx, version 2), and which of one pack's objects
others hold: what settle.py needs to tell a redundant pack, at 1.6 million objects a pack.

A version 2 index is a header (8 bytes), a fan-out table of 256 counts (its last: the number
of objects), then the sorted 20-byte names (Documentation/gitformat-pack.txt in git).
"""

from __future__ import annotations

from pathlib import Path


def object_count(pack_dir: Path, base: str) -> int:
    """The number of objects in a pack, from its index's fan-out table (0 when unreadable)."""
    try:
        with open(pack_dir / f"{base}.idx", "rb") as handle:
            head = handle.read(8 + 1024)
    except OSError:
        return 0
    return int.from_bytes(head[8 + 255 * 4:], "big") if head[:8] == b"\377tOc\0\0\0\2" and len(head) == 1032 else 0


def object_names(index: bytes) -> bytes:
    """The sorted 20-byte object names of a v2 pack index, as one bytes string."""
    if index[:8] != b"\377tOc\0\0\0\2" or len(index) < 8 + 1024:
        raise ValueError("not a version 2 pack index")
    count = int.from_bytes(index[8 + 255 * 4:8 + 256 * 4], "big")
    return index[8 + 1024:8 + 1024 + 20 * count]


def merged_names(parts: list[bytes]) -> bytes:
    """The object_names of several packs as one sorted run of 20-byte names."""
    if len(parts) == 1:
        return parts[0]
    try:
        import numpy as np
    except ImportError:
        return b"".join(sorted(p[i:i + 20] for p in parts for i in range(0, len(p), 20)))
    return np.sort(np.concatenate([np.frombuffer(p, dtype="S20") for p in parts])).tobytes() if parts else b""


def missing(names: bytes, settled: bytes) -> list[str]:
    """The hex ids of *names* (object_names of one pack) that *settled* (merged_names of other
    packs) does not hold; the fast path (numpy's sorted search) of missing_reference."""
    try:
        import numpy as np
    except ImportError:  # numpy comes with matplotlib; without it, the reference
        return missing_reference(names, settled)
    if not names or not settled:
        return missing_reference(names, settled)
    mine = np.frombuffer(names, dtype="S20")
    # Fixed-width byte strings of one width compare as their bytes do (numpy strips trailing
    # NULs of both before comparing, which keeps that order), so an index's sorted names stay sorted.
    theirs = np.frombuffer(settled, dtype="S20")
    at = np.minimum(np.searchsorted(theirs, mine), len(theirs) - 1)
    missing = np.flatnonzero(theirs[at] != mine)
    return [names[20 * int(i):20 * int(i) + 20].hex() for i in missing]


def missing_reference(names: bytes, settled: bytes) -> list[str]:
    known = {settled[i:i + 20] for i in range(0, len(settled), 20)}
    return [names[i:i + 20].hex() for i in range(0, len(names), 20) if names[i:i + 20] not in known]
