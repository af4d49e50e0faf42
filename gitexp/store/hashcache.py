"""sha256 of files remembered by their stat data, so unchanged files are not read again.

Like git's index: an entry is keyed by device and inode and valid while size, mtime and
ctime (which no user tool can set back) are unchanged. A file changed less than two seconds
before it was hashed is not remembered, because a second change within the same clock tick
would leave its stat data as it was ("racily clean" in git's words).
"""

from __future__ import annotations

import os
from pathlib import Path

from gitexp.store import cachefile

CACHE_FILE = Path("gitexp") / "cache" / "sha256-v1.marshal"
MAX_ENTRIES = 200_000
RACY_SECONDS = 2.0


class HashCache:
    def __init__(self, commondir: Path) -> None:
        self.path = commondir / CACHE_FILE
        self._entries: dict[str, tuple[int, int, int, str]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, tuple[int, int, int, str]]:
        if self._entries is None:
            loaded = cachefile.load(self.path)
            self._entries = loaded if isinstance(loaded, dict) else {}  # none, or not what this code writes
        return self._entries

    @staticmethod
    def _key(info: os.stat_result) -> str:
        return f"{info.st_dev}:{info.st_ino}"

    def get(self, info: os.stat_result) -> str | None:
        entry = self._load().get(self._key(info))
        if entry is not None and entry[:3] == (info.st_size, info.st_mtime_ns, info.st_ctime_ns):
            return entry[3]
        return None

    def put(self, info: os.stat_result, sha256: str, started: float) -> None:
        """Remember *sha256* for the file *info* describes, hashed from time *started* on."""
        if max(info.st_mtime_ns, info.st_ctime_ns) / 1e9 > started - RACY_SECONDS:
            return
        entries = self._load()
        if len(entries) >= MAX_ENTRIES:
            entries.clear()
        entries[self._key(info)] = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, sha256)
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._entries is None:
            return
        if cachefile.save(self.path, self._entries):  # one that cannot be written only costs time
            self._dirty = False

