"""refs/notes/experiments: one sorted, unique line per run on its code commit, read back with real git."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.git.repo import Repo
from gitexp.store import notes
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}


def note_of(repo: Path, rev: str = "HEAD", ref: str = "experiments") -> list[str]:
    gitexp.flush()  # lines of runs that ended in this process are batched until then (or exit)
    return git(repo, "notes", "--ref", ref, "show", rev).splitlines()


def finished(name: str, **metrics: float) -> gitexp.RunRecord:
    with gitexp.start_run(name=name, **QUIET) as run:
        run.log_metrics(metrics)
    return gitexp.get_run(run.id)


def test_ending_a_run_puts_its_line_on_the_base_commit(repo: Path) -> None:
    record = finished("baseline", acc=0.95, loss=0.123456, **{"system/cpu_percent": 3.0})
    assert note_of(repo) == [f"{record.id} default/baseline FINISHED acc=0.95 loss=0.1235"]
    shown = git(repo, "log", "--notes=experiments", "-1")
    assert "Notes (experiments):" in shown and record.id in shown


def test_lines_are_sorted_unique_and_one_per_run(repo: Path) -> None:
    first = finished("one", acc=0.5)
    second = finished("two", acc=0.6)
    lines = note_of(repo)
    assert lines == sorted(lines) and len(lines) == 2
    assert [line.split()[0] for line in lines] == [first.id, second.id]
    with gitexp.start_run(resume=first.id, **QUIET) as run:  # its line is replaced, not duplicated
        run.log_metric("acc", 0.9)
    lines = note_of(repo)
    assert len(lines) == 2 and f"{first.id} default/one FINISHED acc=0.9" in lines


def test_a_note_keeps_the_newest_runs_and_says_where_the_others_are(repo: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Every run of a sweep rewrites the note of its code commit: the note keeps the newest
    exp.noteLines run lines (by run id, which begins with the start time) and a first line saying
    how to list every run, so a sweep's note, and each run's cost of writing it, stays bounded."""
    git(repo, "config", "exp.noteLines", "3")
    ids = []
    for i in range(5):
        with gitexp.start_run(name=f"trial-{i}", **QUIET) as run:
            run.log_metric("acc", i / 10)
        gitexp.flush()  # each trial's note written on its own, as when each ends its own process
        ids.append(run.id)
    head = git(repo, "rev-parse", "HEAD").strip()
    expected = [f"(only the 3 newest runs; every run of this commit: git exp ls --where \"commit = '{head[:12]}'\")",
                *[f"{run_id} default/trial-{i} FINISHED acc={i / 10:.4g}" for i, run_id in enumerate(ids)][2:]]
    assert note_of(repo) == expected
    command = expected[0].split("git exp ", 1)[1].rstrip(")")  # the very command the note names
    assert command == f"ls --where \"commit = '{head[:12]}'\""
    code, out, _ = (main(["ls", "--where", f"commit = '{head[:12]}'", "--format", "csv", "--columns", "name"]),
                    *capsys.readouterr())
    assert code == 0 and len(out.splitlines()) == 1 + 5, "the command the note names lists every run"
    assert main(["notes", "rebuild"]) == 0
    assert note_of(repo) == expected
    git(repo, "config", "exp.noteLines", "10")
    with gitexp.start_run(name="later", **QUIET) as run:
        run.log_metric("acc", 0.9)
    lines = note_of(repo)  # the earlier writer left runs out: the line saying so stays
    assert lines[0].startswith("(only the 10 newest runs") and len(lines) == 1 + 4


def test_runs_ending_together_share_a_notes_commit_and_the_background_writes_it(repo: Path) -> None:
    def notes_commits() -> int:
        return len(git(repo, "rev-list", "refs/notes/experiments", check=False).split())

    ids = [finished(f"sweep-{i}", acc=i / 10).id for i in range(5)]
    assert notes_commits() < 5  # batched (a slow machine may split the batch, never one per run)
    deadline = time.monotonic() + 30
    while notes_commits() == 0 or len(git(repo, "notes", "--ref", "experiments", "show", "HEAD",
                                          check=False).splitlines()) < 5:
        assert time.monotonic() < deadline, "the background thread never wrote the queued notes"
        time.sleep(0.05)
    assert [line.split()[0] for line in note_of(repo)] == ids


def test_headline_metrics_can_be_chosen(repo: Path) -> None:
    git(repo, "config", "exp.noteMetrics", "val/acc,loss")
    record = finished("chosen", acc=0.1, loss=2.0, **{"val/acc": 0.7})
    assert note_of(repo) == [f"{record.id} default/chosen FINISHED val/acc=0.7 loss=2"]


def test_notes_off_and_failed_notes_never_fail_the_run(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "config", "exp.notes", "false")
    finished("silent", acc=1.0)
    assert git(repo, "for-each-ref", "refs/notes/") == ""
    git(repo, "config", "exp.notes", "true")
    lock = repo / ".git" / "refs" / "notes" / "experiments.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("held by another writer\n")
    monkeypatch.setattr(notes, "ATTEMPTS", 2)
    with pytest.warns(RuntimeWarning, match="notes rebuild"):
        record = finished("unlucky", acc=1.0)
        gitexp.flush()
    assert record.status == "FINISHED"
    lock.unlink()
    assert main(["notes", "rebuild"]) == 0
    assert [line.split()[0] for line in note_of(repo)] == sorted(r.id for r in gitexp.load_runs())


def test_rebuild_regenerates_the_notes_from_the_runs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    finished("a", acc=0.1)
    finished("b", acc=0.2)
    before = note_of(repo)
    git(repo, "notes", "--ref", "experiments", "append", "-m", "stale line of a deleted run", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "notes", "--ref", "experiments", "add", "-m", "20000101-000000000000000 gone/x FINISHED", "HEAD")
    assert main(["notes", "rebuild"]) == 0
    assert "wrote 2 run line(s)" in capsys.readouterr().out
    assert note_of(repo, "HEAD~1") == before
    assert git(repo, "notes", "--ref", "experiments", "list").count("\n") == 1  # HEAD's note is gone
    git(repo, "update-ref", "-d", "refs/notes/experiments")
    assert main(["notes", "rebuild"]) == 0
    assert note_of(repo, "HEAD~1") == before


def test_merge_notes_is_the_union_git_cat_sort_uniq_makes(repo: Path, tmp_path: Path) -> None:
    handle = Repo.discover(repo)
    finished("shared", acc=0.5)
    gitexp.flush()
    git(repo, "update-ref", "refs/notes/theirs", "refs/notes/experiments")  # both sides start equal
    mine = finished("mine", acc=0.6)
    gitexp.flush()
    their_line = "20261127-0fffffffffffffff other-machine/run FINISHED acc=0.7"
    git(repo, "notes", "--ref", "theirs", "append", "-m", their_line, "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    git(repo, "notes", "--ref", "theirs", "add", "-m", "20261127-0eeeeeeeeeeeeeee x/y FINISHED", "HEAD")
    # The same merge made by git itself, in a copy of the repository.
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True)
    git(copy, "notes", "--ref", "experiments", "merge", "-q", "-s", "cat_sort_uniq", "refs/notes/theirs")

    ours_before = handle.ref(notes.NOTES_REF)
    theirs = handle.ref("refs/notes/theirs")
    merged = notes.merge_notes(handle, "refs/notes/theirs")
    assert merged is not None and handle.commit_info(merged)[0] == [ours_before, theirs]
    for rev in ("HEAD", "HEAD~1"):
        assert note_of(repo, rev) == note_of(copy, rev)
    assert their_line in note_of(repo, "HEAD~1") and any(mine.id in x for x in note_of(repo, "HEAD~1"))
    assert notes.merge_notes(handle, theirs) == merged  # already merged: nothing to do
    git(repo, "update-ref", "-d", "refs/notes/experiments")
    assert notes.merge_notes(handle, theirs) == theirs  # nothing here: a fast-forward


def test_notes_written_by_git_with_fanout_are_read_and_kept(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input="from git fanout\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    inner = subprocess.run(["git", "mktree"], cwd=repo, input=f"100644 blob {blob}\t{head[2:]}\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    outer = subprocess.run(["git", "mktree"], cwd=repo, input=f"040000 tree {inner}\t{head[:2]}\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    commit = git(repo, "commit-tree", outer, "-m", "fanned out notes").strip()
    git(repo, "update-ref", "refs/notes/experiments", commit)
    assert note_of(repo) == ["from git fanout"]
    record = finished("after-fanout", acc=0.3)
    assert note_of(repo) == sorted(["from git fanout", f"{record.id} default/after-fanout FINISHED acc=0.3"])


WRITER = """
import sys, gitexp
count = int(sys.argv[1])
for i in range(count):
    with gitexp.start_run(name=f"w{sys.argv[2]}-{i}", system_metrics_interval=0, capture_env=False) as run:
        run.log_metric("acc", i)
    if i < count - 1:
        gitexp.flush()  # a notes commit per run, to make the writers collide; exit writes the last
"""


def test_concurrent_writers_lose_no_line(repo: Path, gitexp_env: dict[str, str]) -> None:
    git(repo, "config", "exp.noteLines", "100")  # room for all 24 lines: none may be lost to a race
    (repo / "writer.py").write_text(WRITER)
    git(repo, "add", "writer.py")
    git(repo, "commit", "-q", "-m", "writer")
    procs = [subprocess.Popen([sys.executable, "writer.py", "4", str(n)], cwd=repo, env=gitexp_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(6)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "notes" not in err, err  # not even a warning: every writer got its line in
    ids = sorted(r.id for r in gitexp.load_runs())
    assert len(ids) == 24
    assert [line.split()[0] for line in note_of(repo)] == ids
    # Every notes commit builds on the previous one: compare-and-swap, never an overwrite.
    history = git(repo, "rev-list", "--parents", "refs/notes/experiments").splitlines()
    assert len(history) >= 24 and all(len(line.split()) <= 2 for line in history)


def test_a_crashed_run_gets_its_line_when_recovered(repo: Path, gitexp_env: dict[str, str]) -> None:
    dies = ("import os, gitexp\n"
            "run = gitexp.start_run(name='dies', system_metrics_interval=0, capture_env=False)\n"
            "run.log_metric('acc', 0.3)\n"
            "run.flush_journal()\n"
            "os._exit(9)  # like kill -9: no chance to end the run\n")
    proc = subprocess.run([sys.executable, "-c", dies], cwd=repo, env=gitexp_env, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    record = gitexp.get_run("dies")  # reading runs recovers it
    assert record.status == "CRASHED"
    assert note_of(repo) == [f"{record.id} default/dies CRASHED acc=0.3"]


@pytest.mark.parametrize("prefix", ["123456789012", "1234e5678901", "0123456789ab"])
def test_the_command_a_note_names_reads_any_commit_as_text(repo: Path, prefix: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A commit whose 12-character prefix is all digits (or digits, an e, digits) was read as a
    number by the command the note names, which then failed."""
    import shlex

    from gitexp.store import notes

    finished("one", acc=0.5)
    line = notes.EARLIER.format(count=3, commit=prefix)
    words = shlex.split(line[line.index("git exp ") + len("git exp "):-1])
    assert main(words) == 0, capsys.readouterr().err
    assert "no runs match" in capsys.readouterr().err
