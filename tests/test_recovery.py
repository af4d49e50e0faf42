"""Crash safety and concurrency, with real processes: SIGKILL, SIGTERM, exit, parallel writers."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

import gitexp
from gitexp.cli.main import main
from tests.conftest import git


def spawn(repo: Path, env: dict[str, str], body: str) -> subprocess.Popen[str]:
    script = repo / "child.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(script)], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen[str], expected: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith(expected), f"child said {line!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
    return line.split()[-1]


def ref_written(repo: Path, run_id: str) -> bool:
    """Whether the run's ref points at a commit, and no lock of it is held."""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()
    return any(ref.endswith("/" + run_id) for ref in refs) and \
        not list((repo / ".git" / "refs" / "experiments").rglob(f"{run_id}.lock"))


def journal_lines(repo: Path, run_id: str) -> int:
    segments = (repo / ".git" / "gitexp" / "journal").glob(f"{run_id}.*.log")
    return sum(line.startswith("M\t") for path in segments for line in path.read_text().splitlines())


def test_sigkill_mid_run_is_recovered_as_crashed_with_flushed_values(repo: Path,
                                                                    env_for_subprocess: dict) -> None:
    proc = spawn(repo, env_for_subprocess, """
        import time, gitexp
        run = gitexp.start_run(name="doomed", flush_interval=0.01, checkpoint_interval=3600,
                               system_metrics_interval=0)
        for i in range(100):
            run.log_metric("loss", 1.0 / (i + 1))
        print("started", run.id, flush=True)
        time.sleep(600)
    """)
    run_id = wait_for_line(proc, "started")
    deadline = time.monotonic() + 20
    # The values in the journal, and the run's first commit on its ref with the ref's lock let go: a
    # kill while the ref is locked is another case (a young lock is waited out:
    # test_a_run_killed_while_its_ref_was_locked_is_recovered_once_the_lock_is_stale), which this test
    # met now and then under load.
    while journal_lines(repo, run_id) < 100 or not ref_written(repo, run_id):
        assert time.monotonic() < deadline, "the journal never received the 100 values, or the ref its commit"
        time.sleep(0.01)
    proc.kill()
    proc.wait()

    record = gitexp.get_run(run_id)  # reading runs notices the dead process
    assert record.status == "CRASHED"
    assert record.metrics["loss"]["count"] == 100
    assert record.history("loss").values[-1] == 0.01
    assert record.meta["error"]["type"] == "ProcessDied" and record.meta["end"]
    assert list((repo / ".git" / "gitexp" / "journal").glob(f"{run_id}*")) == []
    assert "Status: CRASHED" in git(repo, "log", "-1", "--format=%B", record.ref)


@pytest.mark.parametrize("wait", ["time.sleep(600)", "multiprocessing.Semaphore(0).acquire()"])  # a wait in C too
def test_sigterm_marks_run_killed(repo: Path, env_for_subprocess: dict, wait: str) -> None:
    proc = spawn(repo, env_for_subprocess, f"""
        import multiprocessing, time, gitexp
        run = gitexp.start_run(name="terminated", system_metrics_interval=0.05)
        run.log_metric("x", 1.0)
        print("started", run.id, flush=True)
        {wait}
    """)
    run_id = wait_for_line(proc, "started")
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()  # (one that hung would outlive the tests)
    record = gitexp.get_run(run_id)
    assert record.status == "KILLED" and record.metrics["x"]["count"] == 1


def test_sigterm_in_a_logging_loop_ends_the_process(repo: Path, env_for_subprocess: dict) -> None:
    """A SIGTERM handled inside log_metric, whose locks ending the run takes, waited for itself
    forever (then, for SIGTERM_WAIT, ending the run CRASHED). It now waits until the loop lets go
    of the locks: the run ends KILLED, with every value the loop had handed over."""
    body = """
        import gitexp
        run = gitexp.start_run(name="looping", system_metrics_interval=0, capture_env=False)
        print("started", run.id, flush=True)
        step = 0
        while True:
            run.log_metric("x", float(step), step=step)
            step += 1
    """
    for delay in (0.3, 0.6, 0.9):  # a few moments in the loop: most of its time is inside log_metric
        proc = spawn(repo, env_for_subprocess, body)
        run_id = wait_for_line(proc, "started")
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=60) == -signal.SIGTERM
        finally:
            proc.kill()  # (one that hung would outlive the tests)
        record = gitexp.get_run(run_id)
        assert record.status == "KILLED", record.status
        history = record.history("x")
        assert record.metrics["x"]["count"] == len(history.values) > 0
        assert list(history.steps) == list(range(len(history.values)))  # nothing lost in between


def test_sigterm_ends_the_run_while_the_environment_capture_cannot_finish(repo: Path, env_for_subprocess: dict) -> None:
    """A SIGTERM handled during an import (the main thread holding the import lock) waited forever
    for the environment capture, whose thread waited for that lock: here the capture's import of
    pynvml never returns, and the run ends without its environment."""
    proc = spawn(repo, env_for_subprocess, """
        import importlib.machinery, sys, threading, time
        sys.modules.pop("pynvml", None)

        class Stuck:  # the capture's import of pynvml never ends, holding that module's lock as a stalled one does
            def find_spec(self, name, path=None, target=None):
                return importlib.machinery.ModuleSpec(name, self) if name == "pynvml" else None

            def create_module(self, spec):
                return None

            def exec_module(self, module):
                threading.Event().wait()

        sys.meta_path.insert(0, Stuck())
        import gitexp
        run = gitexp.start_run(name="terminated", system_metrics_interval=0)
        run.log_metric("x", 1.0)
        print("started", run.id, flush=True)
        time.sleep(600)
    """)
    guard = threading.Timer(60, proc.kill)  # a child that never says it started ends the test, not the suite
    guard.start()
    try:
        run_id = wait_for_line(proc, "started")
    finally:
        guard.cancel()
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        proc.kill()  # (one that hung would outlive the tests)
    assert proc.stderr is not None and "ends without its environment" in proc.stderr.read()
    record = gitexp.get_run(run_id)
    assert record.status == "KILLED" and record.metrics["x"]["count"] == 1
    assert record.read("env.yaml") is None and record.env == {}


@pytest.mark.parametrize(("ending", "status"), [("pass", "FINISHED"), ("raise ValueError('boom')", "FAILED")])
def test_run_without_with_ends_at_interpreter_exit(repo: Path, env_for_subprocess: dict, ending: str,
                                                   status: str) -> None:
    proc = spawn(repo, env_for_subprocess, f"""
        import gitexp
        run = gitexp.start_run(name="no-with", system_metrics_interval=0)
        gitexp.log_metric("x", 2.0)
        print("started", run.id, flush=True)
        {ending}
    """)
    run_id = wait_for_line(proc, "started")
    proc.wait(timeout=60)
    record = gitexp.get_run(run_id)
    assert record.status == status and record.metrics["x"]["last"] == 2.0
    if status == "FAILED":
        assert record.meta["error"] == {**record.meta["error"], "type": "ValueError", "message": "boom"}


def test_a_run_killed_before_its_first_commit_is_kept_from_its_lock(repo: Path,
                                                                   env_for_subprocess: dict) -> None:
    (repo / "train.py").write_text("print('edited')\n")  # a dirty tree: the snapshot must survive
    proc = spawn(repo, env_for_subprocess, """
        import time, gitexp
        run = gitexp.start_run(name="early", params={"lr": 0.5, "model": {"depth": 3}}, tags={"k": "v"},
                               flush_interval=3600, system_metrics_interval=0)
        print("started", run.id, flush=True)
        time.sleep(600)
    """)
    run_id = wait_for_line(proc, "started")
    assert git(repo, "for-each-ref", "refs/experiments/") == ""  # nothing on a ref yet
    proc.kill()
    proc.wait()

    record = gitexp.get_run(run_id)
    assert record.status == "CRASHED" and record.name == "early"
    assert record.params == {"lr": 0.5, "model": {"depth": 3}} and record.tags == {"k": "v"}
    commits = git(repo, "rev-list", "--parents", record.ref).splitlines()
    assert len(commits) == 3 and commits[1].split()[1] == git(repo, "rev-parse", "HEAD").strip()  # + HEAD
    assert "Status: RUNNING" in git(repo, "log", "-1", "--format=%B", commits[1].split()[0])
    assert git(repo, "show", f"{record.ref}:code/train.py") == "print('edited')\n"
    assert "+print('edited')" in git(repo, "show", f"{record.ref}:code.patch")


def test_a_process_reuses_one_lock_file_and_leaves_none_behind(repo: Path, env_for_subprocess: dict) -> None:
    proc = spawn(repo, env_for_subprocess, """
        import os, time, gitexp
        for i in range(3):
            with gitexp.start_run(name=f"seq-{i}", system_metrics_interval=0):
                pass
        print("ended", *sorted(os.listdir(".git/gitexp/journal")), flush=True)
        time.sleep(600)
    """)
    assert proc.stdout is not None
    listing = proc.stdout.readline().split()
    assert listing == ["ended", f"spare.{proc.pid}.lock"]  # the ended runs' lock, emptied and kept
    assert [r.status for r in gitexp.load_runs()] == ["FINISHED"] * 3  # a live spare is nobody's run
    proc.kill()
    proc.wait()
    assert main(["recover"]) == 0  # a dead process's spare is removed, and is no run either
    assert os.listdir(repo / ".git" / "gitexp" / "journal") == []
    assert len(gitexp.load_runs()) == 3

    done = spawn(repo, env_for_subprocess, """
        import gitexp
        with gitexp.start_run(name="clean-exit", system_metrics_interval=0):
            pass
    """)
    assert done.wait(timeout=60) == 0
    assert os.listdir(repo / ".git" / "gitexp" / "journal") == []  # exit removes the spare


def test_forked_children_keep_to_their_own_runs(repo: Path, env_for_subprocess: dict) -> None:
    proc = spawn(repo, env_for_subprocess, """
        import multiprocessing, os, sys, gitexp

        def worker(name):
            with gitexp.start_run(name=name, system_metrics_interval=0) as run:
                run.log_metric("acc", 0.5)

        parent = gitexp.start_run(name="parent", system_metrics_interval=0)
        parent.log_metric("loss", 1.0)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a plain child exiting normally: its exit handlers must leave "parent" alone
        os.waitpid(pid, 0)
        # multiprocessing's forked workers end with os._exit, skipping exit handlers.
        workers = [multiprocessing.get_context("fork").Process(target=worker, args=(f"worker-{k}",))
                   for k in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        parent.log_metric("loss", 0.5)
        parent.end()
        print("done", *[w.exitcode for w in workers], flush=True)
    """)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    records = {r.name: r for r in gitexp.load_runs()}
    assert sorted(records) == ["parent", "worker-0", "worker-1"]
    assert records["parent"].status == "FINISHED" and records["parent"].metrics["loss"]["count"] == 2
    assert all(records[f"worker-{k}"].status == "FINISHED" for k in range(2))
    noted = {line.split()[0] for line in git(repo, "notes", "--ref", "experiments", "show", "HEAD").splitlines()}
    assert noted == {r.id for r in records.values()}  # the workers' lines too, though they skip exit handlers
    assert os.listdir(repo / ".git" / "gitexp" / "journal") == []  # no lock or spare left by anyone


def test_locked_ref_never_raises_into_the_script_and_loses_nothing(repo: Path) -> None:
    run = gitexp.start_run(name="locked", system_metrics_interval=0, checkpoint_interval=3600)
    lock = repo / ".git" / f"{run.ref}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)  # the run's ref is not written yet
    lock.write_text("held by another process\n")
    for i in range(50):
        run.log_metric("loss", float(i))
    with pytest.warns(RuntimeWarning, match="git exp recover"):
        run.end()  # must not raise although the ref cannot be created
    lock.unlink()
    assert main(["recover"]) == 0
    record = gitexp.get_run("locked")
    assert record.status == "FINISHED", "the status the script ended with is kept"
    assert record.metrics["loss"]["count"] == 50


def test_a_run_killed_while_its_ref_was_locked_is_recovered_once_the_lock_is_stale(
        repo: Path, env_for_subprocess: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """kill -9 between taking a ref's lock and renaming it leaves `<ref>.lock`. While it is young,
    a listing says which file holds the run (and waits 0.6 s, not five retries); once it is older
    than any ref write takes (refwrite.STALE_LOCK), it is removed with a warning and the run is
    recovered as CRASHED with what it logged."""
    from gitexp.git import refwrite

    proc = spawn(repo, env_for_subprocess, """
        import os, gitexp
        run = gitexp.start_run(name="dies", system_metrics_interval=0, checkpoint_interval=3600)
        run.log_metric("acc", 0.3)
        run.checkpoint()
        run.flush_journal()
        open(os.path.join(".git", run.ref + ".lock"), "w").close()  # as if killed while writing it
        print("locked", run.ref, flush=True)
        os._exit(9)
    """)
    ref = wait_for_line(proc, "locked")
    proc.wait(timeout=60)
    lock = repo / ".git" / f"{ref}.lock"
    def listed() -> tuple[dict[str, str], str]:
        assert main(["ls", "--format", "csv"]) == 0
        out, err = capsys.readouterr()
        (row,) = csv.DictReader(io.StringIO(out))
        return row, err

    row, err = listed()
    assert row["status"] == "RUNNING" and f"{ref}.lock" in err and "delete that file" in err
    old = time.time() - refwrite.STALE_LOCK - 5
    os.utime(lock, (old, old))
    row, err = listed()
    assert (row["name"], row["status"], row["metrics.acc"]) == ("dies", "CRASHED", "0.3")
    assert f"removed {lock}" in err and not lock.exists()


def test_parallel_writers_lose_no_run(repo: Path, env_for_subprocess: dict) -> None:
    body = """
        import sys, gitexp
        for i in range(8):
            with gitexp.start_run(name=f"w{sys.argv[1]}-{i}", params={"worker": int(sys.argv[1])},
                                  system_metrics_interval=0) as run:
                run.log_metric("loss", float(i))
    """
    (repo / "worker.py").write_text(textwrap.dedent(body))
    procs = [subprocess.Popen([sys.executable, "worker.py", str(w)], cwd=repo, env=env_for_subprocess)
             for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    records = gitexp.load_runs()
    assert len(records) == 32 and len({r.id for r in records}) == 32
    assert sorted(r.name for r in records) == sorted(f"w{w}-{i}" for w in range(4) for i in range(8))
    assert {r.status for r in records} == {"FINISHED"}
    assert os.listdir(repo / ".git" / "gitexp" / "journal") == []


def test_recover_command_reports_nothing_to_do(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recover"]) == 0
    assert "no interrupted runs" in capsys.readouterr().out


def test_journal_is_in_the_git_directory_never_the_working_tree(repo: Path) -> None:
    run = gitexp.start_run(system_metrics_interval=0)
    run.log_metric("x", 1.0)
    assert (repo / ".git" / "gitexp" / "journal" / f"{run.id}.lock").exists()
    assert git(repo, "status", "--porcelain") == ""
    run.end()
    meta = yaml.safe_load(git(repo, "show", f"{run.ref}:meta.yaml"))
    assert meta["status"] == "FINISHED"
