"""The marshal files under `<common git dir>/gitexp/cache/`: read in one piece, written whole or not at all.

Each cache there (the listing's runcache, the parsed histories, the hashes of artifact files) holds
derived data that git can give again, so a file that is missing, damaged or written by another
version reads as nothing (None), and one that cannot be written costs only time: no caller ever
fails because of its cache. A write goes to a temporary file renamed over the old one, so that a
reader never sees half of it, even while several processes write the same cache.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import threading
from pathlib import Path
from typing import Any


def load(path: Path) -> object:
    """What the marshal file at *path* holds; None when it is absent or unreadable."""
    try:
        # loads of the bytes: marshal.load on a file reads piecemeal through Python calls (5x slower).
        return marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None


def save(path: Path, data: Any) -> bool:
    """Write *data* to *path* with marshal, replacing the file at once; False when it could not be
    written (a read-only repository) or holds what marshal cannot store."""
    try:
        content = marshal.dumps(data)
    except ValueError:
        return False
    # One temporary file per process and thread: two writers never write into the same one.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # a folder that is not writable holds no such file
            tmp.unlink(missing_ok=True)
        return False
    return True
