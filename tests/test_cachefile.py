"""The marshal cache files (gitexp/store/cachefile.py): read whole, written whole, never a failure."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gitexp.store import cachefile


def test_what_is_saved_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "gitexp" / "cache" / "x.marshal"  # its folders are made on the first save
    data = {"a": (None, ("name", "FINISHED", None, 1.5, "abc", {"lr": 0.1}, None))}
    assert cachefile.save(path, data)
    assert cachefile.load(path) == data
    assert cachefile.save(path, [1, 2]) and cachefile.load(path) == [1, 2]  # replaced whole
    assert [p.name for p in path.parent.iterdir()] == ["x.marshal"]  # no temporary file is left


_FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1.0, 1.5, 1e300, float("inf")]), st.floats())
_ONE_KIND = st.one_of(*(st.lists(st.one_of(st.none(), kind), max_size=40) for kind in (
    _FLOATS, st.integers(2**62, 2**62 + 2) | st.integers(-3, 3), st.sampled_from(["", "a", "sweep/lr"]),
    st.booleans())))


@given(_ONE_KIND | st.lists(st.one_of(st.none(), st.booleans(), st.integers(-3, 3), _FLOATS, st.text()), max_size=40),
       st.lists(st.integers(0, 39), max_size=80))
@example([0.0, -0.0, 1.5], [0, 1, 2, 1, 0, 2]).via("equal floats, one of them a zero")
@example([1, 1.0, True, None], [0, 1, 2, 3, 2, 1, 0]).via("equal values of three types")
def test_shared_values_load_as_they_were_and_a_repeated_one_once(pool: list[object], picks: list[int]) -> None:
    """A column written with its repeated values as one object (cachefile.shared) loads as the same
    values of the same types (0.0 beside -0.0, 1 beside 1.0 and True); in a column of one type, each
    value that repeats loads as one object."""
    # Each a new object, as a listing's values are: equal, not the same.
    values = [_copied(pool[k % len(pool)]) for k in picks] if pool else []
    loaded = marshal.loads(marshal.dumps(cachefile.shared(values)))
    assert [(type(v), repr(v)) for v in loaded] == [(type(v), repr(v)) for v in values]
    kinds = {type(v) for v in values} - {type(None)}
    if len(kinds) == 1 and not kinds & {bool} and not (float in kinds and 0.0 in values):
        objects = {id(v) for v in loaded if v is not None and v == v}  # (NaN is never equal: its own)
        assert len(objects) == len({v for v in values if v is not None and v == v})


def _copied(value: object) -> object:
    if type(value) is str:
        return value[:1] + value[1:]
    return value if type(value) in (bool, type(None)) else type(value)(repr(value))  # type: ignore[call-arg]


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


def test_a_large_file_read_in_place_is_what_was_saved_and_a_cut_one_nothing(tmp_path: Path) -> None:
    """Files of MAP_FROM bytes or more are read where they lie (mapped), not copied first."""
    path = tmp_path / "x.marshal"
    data = {f"{i:040x}": ("name", float(i), b"\x00" * (i % 7), [i, None]) for i in range(40_000)}
    assert cachefile.save(path, data) and path.stat().st_size >= cachefile.MAP_FROM
    assert cachefile.load(path) == data
    replaced = {"other": list(range(300_000))}
    assert cachefile.save(path, replaced) and cachefile.load(path) == replaced
    path.write_bytes(path.read_bytes()[:cachefile.MAP_FROM + 10])
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


# -- writing behind ---------------------------------------------------------------------------------


@pytest.fixture
def behind() -> Iterator[None]:
    cachefile.write_behind()  # what `git exp` turns on
    yield
    cachefile.wait()
    cachefile.write_behind(False)


def test_what_is_saved_behind_is_loaded_in_order(tmp_path: Path, behind: None) -> None:
    first, second = tmp_path / "cache" / "a.marshal", tmp_path / "cache" / "b.marshal"
    seen: list[bool] = []
    data = {"rows": [[1, 2], [3]]}
    assert cachefile.save_behind([(first, data), (second, (1, "x"))], then=lambda: seen.append(second.exists()))
    data["rows"].append([4])  # changed after the call: the file holds what was handed over
    assert cachefile.load(second) == (1, "x")  # (load waits for the files written behind)
    assert cachefile.load(first) == {"rows": [[1, 2], [3]]}
    cachefile.wait()
    assert seen == [True]  # *then* ran once both files were written
    assert sorted(p.name for p in first.parent.iterdir()) == ["a.marshal", "b.marshal"]


def test_saving_behind_stops_at_the_first_file_that_cannot_be_written(tmp_path: Path, behind: None) -> None:
    (tmp_path / "a.marshal").mkdir()  # in the way of os.replace
    seen: list[int] = []
    assert cachefile.save_behind([(tmp_path / "a.marshal", 1), (tmp_path / "b.marshal", 2)],
                                 then=lambda: seen.append(1))
    cachefile.wait()
    assert seen == []
    assert [p.name for p in tmp_path.iterdir()] == ["a.marshal"]  # no b, no temporary file


def test_what_cannot_be_stored_is_not_saved_behind(tmp_path: Path, behind: None) -> None:
    assert not cachefile.save_behind([(tmp_path / "a.marshal", 1), (tmp_path / "b.marshal", {"x": object()})])
    cachefile.wait()
    assert list(tmp_path.iterdir()) == []  # not even the first: the data is checked before any is written


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_a_process_waits_at_exit_for_what_it_saved_behind(tmp_path: Path) -> None:
    path = tmp_path / "big.marshal"
    proc = _python(f"""
        from pathlib import Path
        from gitexp.store import cachefile
        cachefile.write_behind()
        assert cachefile.save_behind([(Path({str(path)!r}), list(range(3_000_000)))])
        """)  # and exits at once: 15 MB are still to be written
    assert proc.returncode == 0, proc.stderr
    assert cachefile.load(path) == list(range(3_000_000))
    assert [p.name for p in tmp_path.iterdir()] == ["big.marshal"]


def test_after_finish_a_save_behind_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "late.marshal"
    proc = _python(f"""
        import os
        from pathlib import Path
        from gitexp.store import cachefile
        cachefile.write_behind()
        cachefile.save_behind([(Path({str(path)!r}), 1)])
        cachefile.finish()  # what `git exp` calls as it ends its process without Python's teardown
        assert Path({str(path)!r}).exists()
        cachefile.save_behind([(Path({str(path)!r}), 2)])
        assert cachefile.load(Path({str(path)!r})) == 2
        os._exit(0)  # no atexit callback: what was saved must be on disk already
        """)
    assert proc.returncode == 0, proc.stderr
    assert cachefile.load(path) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_wait_for_its_parents_writer(tmp_path: Path) -> None:
    # The writer thread is held in *then* while the process forks: the child has no such thread,
    # and must neither wait for it nor take its files for pending.
    path = tmp_path / "a.marshal"
    proc = _python(f"""
        import os, signal, threading
        from pathlib import Path
        from gitexp.store import cachefile
        cachefile.write_behind()
        held, release = threading.Event(), threading.Event()
        def hold():
            held.set()
            release.wait()
        cachefile.save_behind([(Path({str(path)!r}), 1)], then=hold)
        held.wait()
        child = os.fork()
        if child == 0:
            signal.alarm(15)  # (a child stuck waiting would outlive the test's timeout)
            cachefile.wait()
            cachefile.save_behind([(Path({str(path)!r} + "-child"), 2)])
            cachefile.wait()
            os._exit(0 if cachefile.load(Path({str(path)!r})) == 1 else 3)
        _, status = os.waitpid(child, 0)
        release.set()
        cachefile.wait()
        assert os.waitstatus_to_exitcode(status) == 0, status
        """, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert cachefile.load(Path(f"{path}-child")) == 2


def test_a_library_caller_saves_at_once(tmp_path: Path) -> None:
    # Without write_behind() (gitexp as a library: maybe a multiprocessing worker, which ends with
    # os._exit and no exit callbacks), the files are written before save_behind returns.
    path = tmp_path / "a.marshal"
    proc = _python(f"""
        import os
        from pathlib import Path
        from gitexp.store import cachefile
        done = []
        cachefile.save_behind([(Path({str(path)!r}), [1, 2])], then=lambda: done.append(1))
        assert done == [1]
        os._exit(0)
        """)
    assert proc.returncode == 0, proc.stderr
    assert cachefile.load(path) == [1, 2]


def test_a_killed_writers_temporary_file_is_swept_by_the_next_big_write(tmp_path: Path) -> None:
    path = tmp_path / "x.marshal"
    stale, fresh = tmp_path / "x.marshal.999-1.tmp", tmp_path / "x.marshal.998-1.tmp"
    stale.write_bytes(b"\0" * 100)
    fresh.write_bytes(b"\0" * 100)  # a live writer's, touched moments ago
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    other = tmp_path / "y.marshal.997-1.tmp"  # another file's: not this write's to judge
    other.write_bytes(b"")
    os.utime(other, (hour_ago, hour_ago))
    assert cachefile.save(path, b"\0" * cachefile.SWEEP_FROM)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.marshal", fresh.name, other.name]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # (the SystemExit below)
def test_a_writer_ended_by_what_it_ran_is_replaced(tmp_path: Path, behind: None) -> None:
    # SystemExit, unlike an error, ends the writer thread: the files handed over after it (or
    # still queued) are written by a new one, and wait() returns rather than join the dead one.
    def leave() -> None:
        raise SystemExit

    assert cachefile.save_behind([(tmp_path / "a.marshal", 1)], then=leave)
    cachefile.wait()
    written = threading.Event()
    assert cachefile.save_behind([(tmp_path / "b.marshal", 2)], then=written.set)
    assert written.wait(30)  # written by a writer of its own, with no wait() to start one
    assert cachefile.load(tmp_path / "b.marshal") == 2
    assert cachefile.save_behind([(tmp_path / "c.marshal", 3)], then=leave)
    assert cachefile.save_behind([(tmp_path / "d.marshal", 4)])  # maybe queued before its writer ended
    cachefile.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.marshal", "b.marshal", "c.marshal", "d.marshal"]


# -- left to a child at exit ------------------------------------------------------------------------


def _locked(folder: Path) -> bool:
    """Whether a child left by detach holds the writing lock of the cache *folder*."""
    import fcntl

    try:
        fd = os.open(folder.with_name(folder.name + ".writing"), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_small_job_or_a_library_callers_runs_at_once(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "a.marshal"
    cachefile.later(lambda: cachefile.save_behind([(path, 1)]), [path], cachefile.DETACH_FROM)
    assert cachefile.load(path) == 1  # (no write_behind(): a library caller's, whatever its weight)
    cachefile.write_behind()
    try:
        cachefile.later(lambda: cachefile.save_behind([(path, 2)]), [path], cachefile.DETACH_FROM - 1)
        cachefile.wait()
        assert cachefile.load(path) == 2
    finally:
        cachefile.write_behind(False)


def test_a_job_left_for_later_runs_before_its_files_are_read_here(tmp_path: Path, behind: None) -> None:
    path, other = tmp_path / "cache" / "a.marshal", tmp_path / "cache" / "b.marshal"
    ran: list[int] = []

    def job() -> None:
        ran.append(1)
        cachefile.save_behind([(path, {"rows": 3})])

    cachefile.later(job, [path], cachefile.DETACH_FROM)
    assert cachefile.load(other) is None and ran == []  # another file: the job waits on
    assert cachefile.load(path) == {"rows": 3} and ran == [1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("ending", [
    "cachefile.finish()\n        sys.stdout.flush()\n        os._exit(0)",  # as `git exp` ends its process
    "sys.exit(0)",  # through Python's exit, as `git exp ls | head` does
])
def test_git_exp_leaves_a_large_job_to_a_child_that_readers_wait_for(tmp_path: Path, ending: str) -> None:
    folder = tmp_path / "gitexp" / "cache"
    path = folder / "big.marshal"
    # The job is slow on purpose: the process must have ended, its pipes closed, with the file
    # still to come, and a reader must get the file, not nothing.
    proc = _python(f"""
        import os, sys, time
        from pathlib import Path
        from gitexp.store import cachefile
        cachefile.write_behind()
        path = Path({str(path)!r})
        def job():
            time.sleep(2)
            cachefile.save_behind([(path, list(range(1000)))])
        cachefile.later(job, [path], cachefile.DETACH_FROM)
        print("table")
        {ending}
        """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "table\n"  # printed once: the child prints nothing and holds no pipe
    assert _locked(folder) and not path.exists()
    assert cachefile.load(path) == list(range(1000))  # (waited for the child)
    assert not _locked(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["big.marshal"]


def test_a_reader_gives_up_on_a_writer_that_hangs(tmp_path: Path) -> None:
    import fcntl

    folder = tmp_path / "cache"
    folder.mkdir()
    cachefile.save(folder / "a.marshal", 1)
    fd = os.open(folder.with_name("cache.writing"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        waited = threading.Thread(target=cachefile.wait_detached, args=(folder, 0.2))
        waited.start()
        waited.join(10)
        assert not waited.is_alive()  # it gave up after its timeout, lock still held
        assert _locked(folder)
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_while_another_child_writes_there_a_process_writes_its_own_files(tmp_path: Path) -> None:
    import fcntl

    folder = tmp_path / "gitexp" / "cache"
    folder.mkdir(parents=True)
    path = folder / "big.marshal"
    fd = os.open(folder.with_name("cache.writing"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # (as a child left by another process holds it)
        proc = _python(f"""
            import os
            from pathlib import Path
            from gitexp.store import cachefile
            cachefile.write_behind()
            path = Path({str(path)!r})
            cachefile.later(lambda: cachefile.save(path, 7), [path], cachefile.DETACH_FROM)
            cachefile.finish()
            os._exit(0)
            """)
        assert proc.returncode == 0, proc.stderr
        assert path.exists()  # written before the process ended, not left to a child of its own
    finally:
        os.close(fd)
    assert cachefile.load(path) == 7
