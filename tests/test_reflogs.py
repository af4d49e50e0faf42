"""Run reflogs archived into one file (gitexp/git/reflogs.py), read back whole, checked by verify."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.git import reflogs
from gitexp.git.repo import Repo
from gitexp.ops.verify import verify_runs
from tests.conftest import git

QUIET: dict[str, Any] = {"system_metrics_interval": 0}
RUNS = "refs/experiments/"


def make_run(name: str, checkpoint: bool = False) -> gitexp.Run:
    with gitexp.start_run(name=name, params={"lr": 0.1}, **QUIET) as run:
        run.log_metric("acc", 0.5)
        if checkpoint:
            run.checkpoint()  # one more ref move: a log of two entries
    return run


def entries(repo: Path, ref: str) -> list[tuple[str, str, str]]:
    return Repo.discover(repo).reflog(ref)


def problems(repo: Path) -> list[tuple[str, str]]:
    handle = Repo.discover(repo)
    return verify_runs(handle, sorted(handle.refs(RUNS).items()))


def archive(repo: Path) -> int:
    return Repo.discover(repo).archive_reflogs(RUNS, min_age=0)


def archive_text(repo: Path) -> str:
    """The archive as `zcat` shows it (it is gzip members)."""
    return gzip.decompress((repo / ".git" / reflogs.ARCHIVE).read_bytes()).decode()


def test_settled_logs_move_into_the_archive_and_read_back_the_same(repo: Path) -> None:
    runs = [make_run("a"), make_run("b", checkpoint=True)]
    before = {run.ref: entries(repo, run.ref) for run in runs}
    assert [m for _, _, m in before[runs[1].ref]] == [f"gitexp: running {runs[1].id}", f"gitexp: finished {runs[1].id}"]
    assert archive(repo) == 2
    for run in runs:
        assert not (repo / ".git" / "logs" / run.ref).exists()
        assert entries(repo, run.ref) == before[run.ref]
    lines = archive_text(repo).splitlines()
    assert len(lines) == 3 and all(line.startswith(RUNS) and line.count("\t") == 2 for line in lines)
    assert problems(repo) == []
    assert archive(repo) == 0  # nothing left to move


def test_fresh_logs_of_live_runs_stay_files_and_those_of_ended_runs_go(repo: Path) -> None:
    live = gitexp.start_run(name="live", **QUIET)
    live.log_metric("acc", 0.5)
    gitexp.flush()  # its RUNNING commit on the ref: a log that a checkpoint writes to again
    ended = make_run("ended")
    assert Repo.discover(repo).archive_reflogs(RUNS) == 1  # the default waits reflogs.MIN_AGE, but not for an end
    assert (repo / ".git" / "logs" / live.ref).exists() and not (repo / ".git" / "logs" / ended.ref).exists()
    assert [m for _, _, m in entries(repo, ended.ref)] == [f"gitexp: finished {ended.id}"]
    live.end()
    assert Repo.discover(repo).archive_reflogs(RUNS) == 1
    assert [m for _, _, m in entries(repo, live.ref)][-1] == f"gitexp: finished {live.id}"
    assert problems(repo) == []


def test_a_later_move_continues_the_archived_log(repo: Path) -> None:
    run = make_run("first")
    archive(repo)
    with gitexp.start_run(resume=run.id, **QUIET) as again:
        again.log_metric("acc", 0.7)
    said = [m for _, _, m in entries(repo, run.ref)]
    assert said == [f"gitexp: finished {run.id}", f"gitexp: running {run.id}", f"gitexp: finished {run.id}"]
    assert (repo / ".git" / "logs" / run.ref).exists()  # the new entries: a file again
    assert problems(repo) == []
    assert archive(repo) == 1
    assert [m for _, _, m in entries(repo, run.ref)] == said


def test_a_rewritten_ref_keeps_its_log_file_and_verify_reports_it(repo: Path) -> None:
    run = make_run("forged")
    other = make_run("other")
    git(repo, "update-ref", "-m", "forged", run.ref, git(repo, "rev-parse", other.ref).strip())
    assert archive(repo) == 1  # "other" only: "forged"'s log names a commit its tip does not reach
    assert (repo / ".git" / "logs" / run.ref).exists()
    found = problems(repo)
    assert any(run.id in label and "rewritten" in problem for label, problem in found), found


def test_a_move_behind_gitexps_back_after_archiving_is_reported(repo: Path) -> None:
    run = make_run("moved")
    archive(repo)
    tip = git(repo, "rev-parse", run.ref).strip()
    child = git(repo, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "appended").strip()
    git(repo, "update-ref", run.ref, child)  # no log file any more: git writes no entry
    found = problems(repo)
    assert any("moved without a log entry" in problem for _, problem in found), found


def test_rm_and_undo_carry_the_archived_history(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gitexp.cli.main import main

    run = make_run("gone", checkpoint=True)
    history = entries(repo, run.ref)
    archive(repo)
    assert main(["rm", "gone"]) == 0
    trashed = f"refs/experiments-trash/default/{run.id}"
    assert entries(repo, trashed)[:2] == history  # git's own reader sees the file whole too
    assert len(git(repo, "reflog", "show", trashed).splitlines()) == 3
    assert main(["rm", "--undo", "gone"]) == 0
    capsys.readouterr()
    assert [m for _, _, m in entries(repo, run.ref)] == [m for _, _, m in history] + [
        f"gitexp: rm {run.id}", f"gitexp: rm --undo {run.id}"]
    assert problems(repo) == []


def test_lines_archived_by_a_pass_that_died_before_deleting_are_not_doubled(repo: Path) -> None:
    run = make_run("twice")
    log = repo / ".git" / "logs" / run.ref
    line = log.read_text().splitlines()[0]
    (repo / ".git" / reflogs.ARCHIVE).write_text(f"{run.ref}\t{line}\n")  # appended, then the pass died
    assert len(entries(repo, run.ref)) == 1
    assert archive(repo) == 1
    assert archive_text(repo).count(line) == 1
    assert problems(repo) == []


def test_archiving_waits_for_no_writer_and_gives_way(repo: Path) -> None:
    make_run("busy")
    with reflogs.writing(repo / ".git"):  # a ref being moved in another process
        assert archive(repo) == 0
    assert archive(repo) == 1


def test_every_hundredth_new_ref_packs_refs_and_every_thousandth_archives(repo: Path) -> None:
    gitdir = repo / ".git"
    make_run("counted")
    pending = gitdir / reflogs.PENDING
    assert pending.read_bytes() == b"."
    pending.write_bytes(b"." * (reflogs.PACK_EVERY - 1))
    run = make_run("due")  # the hundredth: refmaint starts, detached, and packs the refs
    wait_until(lambda: not (gitdir / run.ref).exists())
    assert run.ref in (gitdir / "packed-refs").read_text()
    assert pending.stat().st_size == reflogs.PACK_EVERY  # counted on toward the archiving pass
    pending.write_bytes(b"." * (reflogs.ARCHIVE_EVERY - 1))
    last = make_run("archiving")
    wait_until(lambda: pending.stat().st_size == 0 and not (gitdir / last.ref).exists())
    wait_until(lambda: not (gitdir / "logs" / last.ref).exists())  # an ended run's log goes at any age
    assert [m for _, _, m in entries(repo, last.ref)] == [f"gitexp: finished {last.id}"]


def test_a_process_that_made_runs_starts_an_archiving_pass_as_it_exits(repo: Path,
                                                                       env_for_subprocess: dict[str, str]) -> None:
    gitdir = repo / ".git"
    (gitdir / reflogs.PENDING).parent.mkdir()
    (gitdir / reflogs.PENDING).write_bytes(b"." * (reflogs.EXIT_FROM - 2))
    script = ("import gitexp\n"
              "with gitexp.start_run(name='a', system_metrics_interval=0) as run:\n"
              "    run.log_metric('acc', 0.5)\n"
              "gitexp.start_run(name='b', system_metrics_interval=0).log_metric('acc', 0.5)\n")  # ended at exit
    subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, check=True, timeout=120)
    # 100 counted: the count starts only pack-refs (archiving waits for 1,000), so a pass that empties
    # the count was started by the process's exit.
    wait_until(lambda: (gitdir / reflogs.PENDING).stat().st_size == 0)
    wait_until(lambda: not any((gitdir / "logs" / "refs" / "experiments").glob("**/*")))
    assert sorted((r.name, r.status) for r in gitexp.load_runs(repo)) == [("a", "FINISHED"), ("b", "FINISHED")]
    assert problems(repo) == []


@pytest.mark.parametrize(("runs", "packed_refs"), [(1, 0), (3, 0), (3, reflogs.PACK_AT_EXIT_MOST + 1)])
def test_a_process_that_made_run_refs_packs_them_as_it_exits(repo: Path, env_for_subprocess: dict[str, str],
                                                             runs: int, packed_refs: int) -> None:
    """Loose run refs slow every `git log --decorate` and `git fetch`: a process that made run refs
    packs them as it exits while packed-refs is small; where it is large they stay loose until the
    next upkeep pass (rewriting the file is then the upkeep's to do)."""
    gitdir = repo / ".git"
    if packed_refs:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        others = "".join(f"create refs/tags/filler-{i:06d} {head}\n" for i in range(packed_refs // 40))
        subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=others, text=True, check=True)
        subprocess.run(["git", "pack-refs", "--all", "--prune"], cwd=repo, check=True)
        assert (gitdir / "packed-refs").stat().st_size > reflogs.PACK_AT_EXIT_MOST
    script = ("import gitexp\n"
              f"for i in range({runs}):\n"
              "    with gitexp.start_run(name=f'r{i}', system_metrics_interval=0) as run:\n"
              "        run.log_metric('acc', i)\n")
    subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, check=True, timeout=120)
    loose = [path for path in (gitdir / "refs" / "experiments").glob("**/*") if path.is_file()]
    packed = (gitdir / "packed-refs").read_text() if (gitdir / "packed-refs").exists() else ""
    if not packed_refs:
        assert loose == [] and packed.count("refs/experiments/") == runs
    else:
        assert len(loose) == runs and "refs/experiments/" not in packed
    assert sorted(r.name for r in gitexp.load_runs(repo)) == sorted(f"r{i}" for i in range(runs))
    assert problems(repo) == []


def wait_until(condition: Callable[[], bool], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the upkeep did not happen"
        time.sleep(0.05)


def test_refs_are_packed_less_often_as_packed_refs_grows(tmp_path: Path) -> None:
    packed = tmp_path / "packed-refs"
    intervals = []
    for size in (0, 1_000_000, 2_000_000, 3_000_000, 4_500_000, 9_300_000, 50_000_000):
        packed.write_bytes(b"x" * size)
        intervals.append(reflogs.pack_interval(tmp_path))
    assert intervals == [100, 100, 200, 200, 500, 1000, 1000]
    assert all(reflogs.ARCHIVE_EVERY % interval == 0 for interval in intervals)  # the archiving pass stays due


_ARCHIVE_REFS = ["refs/experiments/a/1", "refs/experiments/a/10", "refs/experiments/b/1", "x", "refs/é/1"]
_archive_lines = st.one_of(
    st.builds(lambda ref, entry: f"{ref}\t{entry}\n".encode(), st.sampled_from(_ARCHIVE_REFS),
              st.text(alphabet="0a \t:é\r", max_size=6)),  # an entry, or (empty) forget()
    st.binary(max_size=6),  # anything: torn lines, stray tabs and newlines, bytes that are not UTF-8
)


@given(st.lists(_archive_lines, max_size=12), st.sampled_from(_ARCHIVE_REFS))
@settings(max_examples=300, deadline=None)
def test_one_refs_archived_lines_are_those_of_the_whole_archive(lines: list[bytes], ref: str) -> None:
    """entries_of, the byte search `git exp verify RUN` reads one run's archived log with, answers
    as archived()'s parse of every line does."""
    import tempfile

    data = b"".join(lines)
    with tempfile.TemporaryDirectory() as commondir:
        (Path(commondir) / reflogs.ARCHIVE).parent.mkdir()
        (Path(commondir) / reflogs.ARCHIVE).write_bytes(data)
        assert reflogs.entries_of(reflogs.text_of(data), ref) == reflogs.archived(commondir).get(ref, [])
        assert reflogs.archived_of(commondir, ref) == reflogs.archived(commondir).get(ref, [])


def _gzip_member(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


@given(st.lists(st.tuples(st.booleans(), st.lists(_archive_lines, max_size=4)), max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_archive_reads_as_its_members_and_plain_lines_in_order(chunks: list[tuple[bool, list[bytes]]]) -> None:
    """An archive is gzip members, but may hold plain lines (written before they were compressed,
    or by an older gitexp): text_of reads both, in order, a torn plain line ending where a member
    starts."""
    data, expected = b"", b""
    plain = b""
    for compressed, lines in chunks:
        text = b"".join(lines).replace(reflogs.MEMBER, b"")
        if compressed and text:
            expected += plain + (b"\n" if plain and not plain.endswith(b"\n") else b"") + text
            plain = b""
            data += _gzip_member(text)
        else:
            plain += text
            data += text
    expected += plain + (b"\n" if plain and not plain.endswith(b"\n") else b"")
    assert reflogs.text_of(data) == expected


def test_a_member_cut_short_is_passed_over_and_what_follows_reads() -> None:
    first, torn, last = (_gzip_member(f"refs/experiments/a/{i}\tline {i}\n".encode() * 50) for i in range(3))
    for cut in range(len(torn)):
        assert reflogs.text_of(first + torn[:cut] + last) == gzip.decompress(first + last)


def test_a_plain_archive_is_compressed_by_the_next_pass_and_reads_the_same(repo: Path) -> None:
    old = [make_run("a"), make_run("b", checkpoint=True)]
    assert archive(repo) == 2
    path = repo / ".git" / reflogs.ARCHIVE
    path.write_text(archive_text(repo))  # as gitexp wrote it before it compressed it, as text
    before = {run.ref: entries(repo, run.ref) for run in old}
    assert all(before.values())
    new = make_run("c")
    assert archive(repo) == 1
    assert path.read_bytes().startswith(b"\x1f\x8b") and len(archive_text(repo).splitlines()) == 4
    assert {run.ref: entries(repo, run.ref) for run in old} == before and len(entries(repo, new.ref)) == 1
    assert len(path.read_bytes()) < len(archive_text(repo))
    assert problems(repo) == []


def test_log_folders_emptied_by_the_pass_go_and_come_back(repo: Path) -> None:
    with gitexp.start_run(experiment="deep/er", name="one", **QUIET) as run:
        run.log_metric("acc", 0.5)
    folder = repo / ".git" / "logs" / "refs" / "experiments" / "deep" / "er"
    assert folder.is_dir()
    assert archive(repo) == 1
    assert not (repo / ".git" / "logs" / "refs" / "experiments" / "deep").exists()
    assert (repo / ".git" / "logs" / "refs").is_dir()
    with gitexp.start_run(experiment="deep/er", name="two", **QUIET) as again:
        again.log_metric("acc", 0.6)
    assert (folder / again.id).is_file()
    assert [m for _, _, m in entries(repo, run.ref)] == [f"gitexp: finished {run.id}"]
    assert [m for _, _, m in entries(repo, again.ref)] == [f"gitexp: finished {again.id}"]
    assert problems(repo) == []
