"""`git exp logs`: a run's output.log as committed, and a live run's output as it grows (-f)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.ops import logs
from gitexp.store.names import handles

QUIET = {"system_metrics_interval": 0}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def git_exp_run(repo: Path, env: dict[str, str], name: str, code: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gitexp", "run", "--name", name, "--", sys.executable, "-c", code],
                          cwd=repo, env=env, capture_output=True, check=True)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll *check* until it is true: another process's progress has no signal to wait on."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_logs_prints_the_output_of_an_ended_run(repo: Path, env_for_subprocess: dict[str, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    git_exp_run(repo, env_for_subprocess, "talky", "print('epoch 1 loss=0.5'); print('done')")
    run_id = gitexp.get_run("talky").id
    for text in ("talky", run_id, handles([run_id])[run_id]):
        assert cli(capsys, "logs", text) == (0, "epoch 1 loss=0.5\ndone\n", "")


def test_logs_shows_control_characters_escaped_unless_raw(repo: Path, env_for_subprocess: dict[str, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # A teammate's fetched run may print anything: a title-setting escape, colours, a progress bar
    # redrawn with carriage returns, a Windows line end, and a last line without a newline.
    printed = "\x1b]0;owned\x07\x1b[31mred\x1b[0m\n\tindented\nbar  10%\rbar  50%\rbar 100%\nwin\r\nlast"
    git_exp_run(repo, env_for_subprocess, "noisy", f"import sys; sys.stdout.write({printed!r})")
    code, out, err = cli(capsys, "logs", "noisy")
    assert (code, err) == (0, "")
    assert out == "\\x1b]0;owned\\x07\\x1b[31mred\\x1b[0m\n\tindented\nbar 100%\nwin\nlast\n"
    assert main(["logs", "--raw", "noisy"]) == 0
    assert capsys.readouterr().out == printed


def test_logs_of_a_run_without_output(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="api", **QUIET):
        pass
    code, out, err = cli(capsys, "logs", "api", "-f")
    assert (code, out) == (0, "")
    assert "has no output.log: only `git exp run` records a command's output" in err


def test_logs_of_an_unknown_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "logs", "nope")
    assert (code, out) == (1, "") and "no run matches 'nope'" in err


def test_follow_log_reads_a_live_run_until_it_ends(repo: Path) -> None:
    """The library half: the journal's live output, then (the run ended) what its final commit holds."""
    run = gitexp.start_run(name="live", **QUIET)
    output = run.output_log  # what `git exp run` appends the command's output to
    output.write_bytes("step 1 é".encode()[:-1])  # a character cut in two, as a write may leave it
    gitexp.flush()
    record = gitexp.get_run("live")
    assert logs.is_live_here(record)
    assert logs.log_state(record) == logs.LogState(len("step 1 é".encode()) - 1, True)
    assert logs.read_log(record) == "step 1 é".encode()[:-1]

    waits = []

    def next_poll(seconds: float) -> None:  # the run moves on while the reader waits
        waits.append(seconds)
        with open(output, "ab") as handle:
            handle.write(b"\xa9\n" if len(waits) == 1 else b"step 2\n")
        if len(waits) == 2:
            run.end()

    chunks = list(logs.follow_log(record, poll=0.01, sleep=next_poll))
    assert b"".join(chunks) == "step 1 é\nstep 2\n".encode()
    assert waits == [0.01, 0.01]
    assert not logs.is_live_here(record)
    assert gitexp.get_run("live").read("output.log") == "step 1 é\nstep 2\n".encode()
    text = logs.LogText()
    assert "".join(text.feed(c) for c in chunks) + text.end() == "step 1 é\nstep 2\n"


def test_logs_follow_prints_a_live_run_until_it_ends(repo: Path, env_for_subprocess: dict[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "train.py").write_text(textwrap.dedent("""
        import os, time
        print("epoch 1", flush=True)
        while not os.path.exists("go"):  # the test says when
            time.sleep(0.01)
        print("epoch 2", flush=True)
    """))
    trainer = subprocess.Popen([sys.executable, "-m", "gitexp", "run", "--name", "live", "--", sys.executable,
                                "train.py"], cwd=repo, env=env_for_subprocess, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert trainer.stdout is not None and trainer.stdout.readline() == b"epoch 1\n"
        wait_until(lambda: "live" in {r.name for r in gitexp.load_runs()}, "the run's first commit")
        code, out, err = cli(capsys, "show", "live")
        assert (code, err) == (0, "")
        (line,) = [line for line in out.splitlines() if line.startswith("output")]
        assert "so far" in line and "`git exp logs -f " in line
        assert cli(capsys, "logs", "live") == (0, "epoch 1\n", "")  # what it wrote, not yet committed

        follower = subprocess.Popen([sys.executable, "-m", "gitexp", "logs", "-f", "live"], cwd=repo,
                                    env=env_for_subprocess, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert follower.stdout is not None and follower.stdout.readline() == b"epoch 1\n"
        (repo / "go").touch()
        rest, errors = follower.communicate(timeout=120)
        assert (follower.returncode, rest, errors) == (0, b"epoch 2\n", b"")
        assert trainer.wait(timeout=120) == 0
    finally:
        trainer.kill()
        trainer.wait()
    assert cli(capsys, "logs", "live") == (0, "epoch 1\nepoch 2\n", "")


def test_logs_follow_stops_quietly_on_ctrl_c(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    trainer = subprocess.Popen([sys.executable, "-m", "gitexp", "run", "--name", "endless", "--", sys.executable,
                                "-c", "import time; print('working', flush=True); time.sleep(600)"],
                               cwd=repo, env=env_for_subprocess, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert trainer.stdout is not None and trainer.stdout.readline() == b"working\n"
        wait_until(lambda: "endless" in {r.name for r in gitexp.load_runs()}, "the run's first commit")
        follower = subprocess.Popen([sys.executable, "-m", "gitexp", "logs", "-f", "endless"], cwd=repo,
                                    env=env_for_subprocess, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert follower.stdout is not None and follower.stdout.readline() == b"working\n"
        follower.send_signal(signal.SIGINT)
        rest, errors = follower.communicate(timeout=120)
        assert (follower.returncode, rest, errors) == (130, b"", b"")
    finally:
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(timeout=120)
