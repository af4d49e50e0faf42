"""Pack index names (gitexp/git/packindex.py): the numpy fast path against a plain set, and git's own indexes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gitexp.git import packindex
from tests.conftest import git


def test_names_and_count_are_those_git_lists(repo: Path) -> None:
    blobs = [git(repo, "hash-object", "-w", "--stdin", input_text=f"blob {i}\n").strip() for i in range(30)]
    base = "pack-" + git(repo, "pack-objects", ".git/objects/pack/pack", input_text="\n".join(blobs) + "\n").strip()
    pack_dir = repo / ".git" / "objects" / "pack"
    names = packindex.object_names((pack_dir / f"{base}.idx").read_bytes())
    with open(pack_dir / f"{base}.idx", "rb") as index:
        shown = subprocess.run(["git", "show-index"], stdin=index, capture_output=True, text=True, check=True).stdout
    listed = sorted(line.split()[1] for line in shown.splitlines())
    assert [names[i:i + 20].hex() for i in range(0, len(names), 20)] == listed == sorted(blobs)
    assert packindex.object_count(pack_dir, base) == 30
    assert packindex.object_count(pack_dir, "pack-absent") == 0


names_20 = st.lists(st.binary(min_size=20, max_size=20) | st.sampled_from([b"\0" * 20, b"\0" * 19 + b"\1",
                                                                            b"\1" + b"\0" * 19, b"\xff" * 20]),
                    unique=True, max_size=40)


@given(names_20, st.lists(names_20, max_size=3))
def test_missing_agrees_with_reference(mine: list[bytes], packs: list[list[bytes]]) -> None:
    names = b"".join(sorted(mine))
    settled = packindex.merged_names([b"".join(sorted(p)) for p in packs]) if packs else b""
    assert settled == b"".join(sorted(n for p in packs for n in p))
    assert packindex.missing(names, settled) == packindex.missing_reference(names, settled)
    assert set(packindex.missing(names, settled)) == {n.hex() for n in mine} - {n.hex() for p in packs for n in p}
