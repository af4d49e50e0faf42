"""`git exp run` as a user drives it: a real process tree, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gitexp


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_is_forwarded_and_run_is_killed(repo: Path, env_for_subprocess: dict, sig: int) -> None:
    (repo / "slow.py").write_text(textwrap.dedent("""
        import signal, sys, time, gitexp
        with gitexp.start_run() as run:
            run.log_metric("step", 1.0)
            print("ready", flush=True)
            time.sleep(600)
    """))
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "run", "--name", "slow", "--", sys.executable,
                             "slow.py"], cwd=repo, env=env_for_subprocess, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    # The child dies of the forwarded signal (or of KeyboardInterrupt for SIGINT: exit 1).
    assert code in (128 + sig, 1)
    record = gitexp.get_run("slow")
    assert record.status == "KILLED"
    assert record.meta["exit_code"] in (-sig, 1)
    assert "ready" in (record.read("output.log") or b"").decode()


def test_exit_code_and_output_are_recorded(repo: Path, env_for_subprocess: dict) -> None:
    proc = subprocess.run([sys.executable, "-m", "gitexp", "run", "--name", "fails", "--", sys.executable, "-c",
                           "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"],
                          cwd=repo, env=env_for_subprocess, capture_output=True, text=True)
    assert proc.returncode == 4
    assert proc.stdout == "out\n" and proc.stderr == "err\n", "output still reaches the terminal"
    record = gitexp.get_run("fails")
    assert record.status == "FAILED" and record.meta["exit_code"] == 4
    assert sorted((record.read("output.log") or b"").decode().splitlines()) == ["err", "out"]
    assert record.duration is not None and record.duration >= 0
