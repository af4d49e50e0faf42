"""New files made from spares: the same files os.open(O_CREAT) makes, and none left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.git import maintenance, spares
from tests.conftest import git


def _spares_of(commondir: Path) -> list[str]:
    try:
        return sorted(os.listdir(commondir / spares.FOLDER))
    except FileNotFoundError:
        return []


def _ready(commondir: Path, wanted: int = 1) -> None:
    """Ask for new files until the filler has made *wanted* spares (it runs beside the caller)."""
    junk = commondir / "junk"
    junk.mkdir(exist_ok=True)
    for k in range(200):
        if len(_spares_of(commondir)) >= wanted:
            return
        os.close(spares.open_new(str(commondir), str(junk / f"f{k}"), replace=True))
        time.sleep(0.01)
    raise AssertionError(f"no spares were made in {commondir / spares.FOLDER}")


def _plain(path: str, replace: bool) -> int:
    """The reference: what open_new stands for."""
    return os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL), 0o666)


def _outcome(opener: Callable[[str, bool], int], path: str, replace: bool) -> tuple[str, bytes | None, int | None]:
    """What the call answered, and the file at *path* after it (written to, where it was made)."""
    try:
        fd = opener(path, replace)
    except OSError as exc:
        answer = type(exc).__name__
    else:
        answer = "made"
        try:
            os.write(fd, b"written")
        finally:
            os.close(fd)
    try:
        return answer, Path(path).read_bytes(), stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return answer, None, None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "sub/c", "gone/d"]), st.booleans(), st.booleans()),
                min_size=1, max_size=12))
def test_open_new_makes_what_os_open_makes(tmp_path_factory: pytest.TempPathFactory,
                                           steps: list[tuple[str, bool, bool]]) -> None:
    """Same answers as O_CREAT | O_EXCL (or O_TRUNC), on names taken or free, in folders there or
    not: the file taken, the same error raised, the same content and mode left."""
    fast, slow = tmp_path_factory.mktemp("fast"), tmp_path_factory.mktemp("slow")
    for top in (fast, slow):
        (top / "sub").mkdir()
    _ready(fast, 3)
    for name, replace, exists in steps:
        for top in (fast, slow):
            if exists and os.path.isdir(top / os.path.dirname(name) or top):
                (top / name).write_bytes(b"before")
        got = _outcome(lambda p, r: spares.open_new(str(fast), p, r), str(fast / name), replace)
        want = _outcome(_plain, str(slow / name), replace)
        assert got == want, (name, replace, exists)


def test_a_run_leaves_no_spare_and_sound_files(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    """A process making runs makes them from spares, and removes the spares left as it exits."""
    script = ("import gitexp\n"
              "for k in range(12):\n"
              "    with gitexp.start_run(experiment='sweep', params={'k': k}) as run:\n"
              "        run.log_metric('loss', 1 / (k + 1))\n")
    subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, check=True)
    gitdir = repo / ".git"
    assert _spares_of(gitdir) == []
    git(repo, "fsck", "--strict", "--no-dangling")
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/sweep/").split()
    assert len(refs) == 12
    for ref in refs:
        assert (gitdir / "logs" / ref).stat().st_size > 0  # its reflog, written
    for pack in (gitdir / "objects" / "pack").glob("*.pack"):
        assert stat.S_IMODE(pack.stat().st_mode) & 0o222 == 0  # read-only, as git makes packs


def test_a_lock_made_from_an_old_spare_is_not_stale(tmp_path: Path) -> None:
    # A lock older than refwrite.STALE_LOCK is taken for a killed writer's and removed.
    _ready(tmp_path, 2)
    for name in _spares_of(tmp_path):
        os.utime(tmp_path / spares.FOLDER / name, (time.time() - 7200, time.time() - 7200))
    os.close(spares.open_new(str(tmp_path), str(tmp_path / "ref.lock")))
    assert time.time() - (tmp_path / "ref.lock").stat().st_mtime < 60


def test_a_taken_name_keeps_its_file_and_the_spare(tmp_path: Path) -> None:
    _ready(tmp_path, 2)
    (tmp_path / "ref.lock").write_bytes(b"another writer's")
    before = _spares_of(tmp_path)
    with pytest.raises(FileExistsError):
        spares.open_new(str(tmp_path), str(tmp_path / "ref.lock"))
    assert (tmp_path / "ref.lock").read_bytes() == b"another writer's"
    assert set(before) <= set(_spares_of(tmp_path))  # (the filler may have made more meanwhile)


def test_a_forked_child_never_takes_its_parents_spares(tmp_path: Path) -> None:
    """One spare taken by two processes would be one file under two names, written by both."""
    _ready(tmp_path, spares.FIRST)
    spares.wait_idle()  # (all made: none comes meanwhile)
    theirs = {(tmp_path / spares.FOLDER / name).stat().st_ino for name in _spares_of(tmp_path)}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its new files, then whether any is one of the parent's spares
        try:
            os.close(read)
            made = []
            for k in range(6):
                fd = spares.open_new(str(tmp_path), str(tmp_path / f"child{k}"))
                made.append(os.fstat(fd).st_ino)
                os.close(fd)
            os.write(write, b"shared" if theirs & set(made) else b"own")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    assert said == b"own"
    mine = spares.open_new(str(tmp_path), str(tmp_path / "parent"))
    os.close(mine)
    assert (tmp_path / "parent").stat().st_ino in theirs  # the parent still has its own


def test_spares_of_a_dead_process_are_removed(repo: Path) -> None:
    gitdir = repo / ".git"
    folder = gitdir / spares.FOLDER
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (folder / f"{dead}.1").write_bytes(b"")
    (folder / f"{os.getpid()}.999999").write_bytes(b"")  # (a live process's: kept)
    maintenance.compact(gitdir)
    assert f"{dead}.1" not in _spares_of(gitdir)
    assert f"{os.getpid()}.999999" in _spares_of(gitdir)


def test_spares_on_another_file_system_give_way_to_plain_files(tmp_path: Path) -> None:
    """Spares that cannot be moved into place (another file system: no rename, no hard link)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system at /dev/shm")
    elsewhere = Path(os.path.join(shm, f"gitexp-spares-test-{os.getpid()}"))
    elsewhere.mkdir()
    try:
        (tmp_path / "gitexp").mkdir()
        (tmp_path / spares.FOLDER).symlink_to(elsewhere)
        _ready(tmp_path, 1)  # (made there: the filler can make them, not move them)
        for k in range(4):
            fd = spares.open_new(str(tmp_path), str(tmp_path / f"file{k}"))
            os.write(fd, b"x")
            os.close(fd)
            assert (tmp_path / f"file{k}").read_bytes() == b"x"
    finally:
        spares.wait_idle()
        for name in os.listdir(elsewhere):
            os.unlink(elsewhere / name)
        elsewhere.rmdir()
