"""A multi-pack-index over the packs, kept by gitexp's upkeep once the run objects are many.

Every git command that looks up an object searches each pack's index in turn, and the user's own
commits, loose until git packs them, are looked up in every one before git finds them loose. At
100,000 runs the settled pack's index alone is 34 MB, and the few packs beside it (the user's, a
sweep's last small ones) each add a search: `git log -20` took 1.22x as long as without runs,
and 0.88x that with one multi-pack-index (git's own means, which `git maintenance` and Scalar use
for large repositories) naming them all (benchmarks/README.md). So the upkeep writes one with
`git multi-pack-index write` once the packs hold MIDX_FROM objects (refresh()).

It stays right by three rules. git removes it itself when `git gc` or `git repack -d` deletes a
pack it names. gitexp's merges leave the packs it names alone (maintenance.py), so they never
make it stale; and settle.py, which may remove packs it names, removes it first (forget()) and
writes it again at the end of its pass, under the same pack lock. git and libgit2 both read
around a stale one (an object found in a pack that is gone is looked for in the others), but
`git fsck` reports it, so none is left.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

from gitexp.git import catfile, packindex

NAME = "multi-pack-index"
MIDX_FROM = 100_000  # objects in the packs from which the upkeep writes one (about 7,000 runs)
_SIGNATURE = b"MIDX"
_PACK_NAMES = b"PNAM"
_memo: tuple[tuple[int, int, int], frozenset[str]] | None = None  # (the file's identity, its packs)


def covered(pack_dir: Path) -> frozenset[str] | None:
    """Base names (pack-<sha>) of the packs the multi-pack-index in *pack_dir* names; None without
    one (or one that cannot be read, which git ignores too)."""
    global _memo
    path = pack_dir / NAME
    try:
        with open(path, "rb") as handle:
            found = os.fstat(handle.fileno())
            identity = (found.st_ino, found.st_size, found.st_mtime_ns)
            if _memo is not None and _memo[0] == identity:
                return _memo[1]
            head = handle.read(12)
            if len(head) != 12 or head[:4] != _SIGNATURE:
                return None
            chunks = head[6]
            table = handle.read(12 * (chunks + 1))
            spans = [(table[i:i + 4], int.from_bytes(table[i + 4:i + 12], "big")) for i in range(0, len(table), 12)]
            for (chunk, start), (_, end) in itertools.pairwise(spans):
                if chunk == _PACK_NAMES and 0 < start <= end <= found.st_size:
                    handle.seek(start)
                    names = handle.read(end - start).split(b"\0")
                    break
            else:
                return None
    except OSError:
        return None
    packs = frozenset(name.decode(errors="replace").removesuffix(".idx") for name in names if name)
    _memo = (identity, packs)
    return packs


def forget(pack_dir: Path, bases: list[str]) -> None:
    """Remove the multi-pack-index when it names one of *bases*, packs about to be removed."""
    names = covered(pack_dir)
    if names is not None and not names.isdisjoint(bases):
        (pack_dir / NAME).unlink(missing_ok=True)


def packs(pack_dir: Path) -> list[str]:
    """Base names of the packs in *pack_dir* (those with an index: the ones git reads)."""
    names = set(os.listdir(pack_dir))
    return sorted(name[:-4] for name in names
                  if name.startswith("pack-") and name.endswith(".idx") and f"{name[:-4]}.pack" in names)


def due(commondir: Path, minimum: int = MIDX_FROM, only_if_absent: bool = False) -> bool:
    """Whether write() should run: the packs hold *minimum* objects or more and the index there (if
    any) does not name exactly them, or, with *only_if_absent*, there is none. One naming a pack
    that is gone is removed here."""
    pack_dir = commondir / "objects" / "pack"
    present = packs(pack_dir)
    names = covered(pack_dir)
    if names is not None and not names <= frozenset(present):
        (pack_dir / NAME).unlink(missing_ok=True)  # stale: names a pack that is gone
        names = None
    if names is not None and (only_if_absent or names == frozenset(present)):
        return False
    return len(present) >= 2 and sum(packindex.object_count(pack_dir, base) for base in present) >= minimum


def write(commondir: Path) -> bool:
    """`git multi-pack-index write`: the index over every pack. The caller holds
    maintenance.pack_lock, and no `git gc` runs. True when one was written."""
    pack_dir = commondir / "objects" / "pack"
    env = catfile.isolated_env()
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    try:
        proc = subprocess.run(["git", f"--git-dir={commondir}", "multi-pack-index", "write"],
                              stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
    except OSError:  # no git: lookups stay as they were
        return False
    written = covered(pack_dir)
    if proc.returncode or written is None:
        return False
    if not written <= frozenset(packs(pack_dir)):  # a pack went meanwhile (the user's git repack)
        (pack_dir / NAME).unlink(missing_ok=True)
        return False
    return True
