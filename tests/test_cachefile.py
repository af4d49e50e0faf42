"""The marshal cache files (gitexp/store/cachefile.py): read whole, written whole, never a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gitexp.store import cachefile


def test_what_is_saved_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "gitexp" / "cache" / "x.marshal"  # its folders are made on the first save
    data = {"a": (None, ("name", "FINISHED", None, 1.5, "abc", {"lr": 0.1}, None))}
    assert cachefile.save(path, data)
    assert cachefile.load(path) == data
    assert cachefile.save(path, [1, 2]) and cachefile.load(path) == [1, 2]  # replaced whole
    assert [p.name for p in path.parent.iterdir()] == ["x.marshal"]  # no temporary file is left


@pytest.mark.parametrize("content", [None, b"", b"\x00garbage", b"\xfb\x01\x02"])
def test_a_missing_or_damaged_file_reads_as_nothing(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "x.marshal"
    if content is not None:
        path.write_bytes(content)
    assert cachefile.load(path) is None


def test_a_cut_file_reads_as_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.marshal"
    cachefile.save(path, {str(i): list(range(i)) for i in range(50)})
    path.write_bytes(path.read_bytes()[:100])
    assert cachefile.load(path) is None


def test_what_cannot_be_stored_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "x.marshal"
    assert not cachefile.save(path, {"when": object()})
    assert not path.exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a folder this user cannot write")
def test_a_folder_that_cannot_be_written_only_says_so(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        assert not cachefile.save(tmp_path / "x.marshal", {"a": 1})
        assert list(tmp_path.iterdir()) == []
    finally:
        tmp_path.chmod(0o700)


def test_a_folder_in_the_way_only_says_so(tmp_path: Path) -> None:
    (tmp_path / "x.marshal").mkdir()  # what os.replace cannot replace, whoever runs the test
    assert not cachefile.save(tmp_path / "x.marshal", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["x.marshal"]  # the temporary file went too
