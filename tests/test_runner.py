"""`git exp run` as a user drives it: a real process tree, real signals."""

from __future__ import annotations

import math
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


# -- --metrics-from-output: metrics of a script that does not import gitexp ---------------------

PLAIN = r'''
import sys
for epoch in range(3):
    print(f"epoch {epoch} loss={1 / (epoch + 1):.4f} acc: {0.5 + epoch / 10}")
print("eta: 12:30:05 date: 2026-12-02 version=1.2.3 host=10.0.0.1 --lr=9", flush=True)
print("10/10 [00:01<00:00, loss=0.3]\r10/10 [00:02<00:00, loss=0.2]")
print({"learning_rate": 5e-05, "grad_norm": float("nan")})
print("val/acc: 0.9 overflow=-inf", file=sys.stderr)
'''


def git_exp(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitexp", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)


def history(record: gitexp.RunRecord, key: str) -> tuple[list[int], list[float]]:
    series = record.history(key)
    return series.steps, series.values


def test_metrics_from_output_reads_name_value_pairs_a_plain_script_prints(repo: Path, env_for_subprocess: dict) -> None:
    from gitexp.tracking.outputmetrics import DEFAULT_PATTERN

    (repo / "plain.py").write_text(PLAIN)
    proc = git_exp(repo, env_for_subprocess, "run", "--metrics-from-output", "--name", "plain", "--", sys.executable,
                   "plain.py")
    assert proc.returncode == 0 and proc.stderr == "val/acc: 0.9 overflow=-inf\n"
    assert proc.stdout.startswith("epoch 0 loss=1.0000 acc: 0.5\n"), "the output reaches the terminal as printed"
    record = gitexp.get_run("plain")
    assert sorted(record.metrics) == ["acc", "grad_norm", "learning_rate", "loss", "overflow", "val/acc"]
    # Each occurrence is the next step; a progress bar's redraws (\r) are occurrences too.
    assert history(record, "loss") == ([0, 1, 2, 3, 4], [1.0, 0.5, 0.3333, 0.3, 0.2])
    assert history(record, "acc") == ([0, 1, 2], [0.5, 0.6, 0.7])
    assert history(record, "learning_rate") == ([0], [5e-05])
    assert math.isnan(record.metrics["grad_norm"]["last"]) and record.metrics["overflow"]["last"] == -math.inf
    assert record.metrics["val/acc"]["last"] == 0.9, "stderr is read too"
    assert record.meta["metrics_from_output"] == [DEFAULT_PATTERN], "recorded, for `git exp rerun`"

    proc = git_exp(repo, env_for_subprocess, "rerun", "plain", "--name", "again")
    assert proc.returncode == 0, proc.stderr
    assert history(gitexp.get_run("again"), "loss") == ([0, 1, 2, 3, 4], [1.0, 0.5, 0.3333, 0.3, 0.2])

    proc = git_exp(repo, env_for_subprocess, "run", "--name", "off", "--", sys.executable, "plain.py")
    assert proc.returncode == 0 and gitexp.get_run("off").metrics == {}, "only when asked for"


def test_a_step_on_the_line_is_the_step_of_its_values(repo: Path, env_for_subprocess: dict) -> None:
    (repo / "steps.py").write_text("for s in (100, 200):\n    print(f'step={s} loss={1000 / s}')\n"
                                   "print('step=2.5 loss=0.1')\n")
    proc = git_exp(repo, env_for_subprocess, "run", "--metrics-from-output", "--name", "steps", "--", sys.executable,
                   "steps.py")
    assert proc.returncode == 0
    record = gitexp.get_run("steps")
    assert sorted(record.metrics) == ["loss"], "the step is no metric of its own"
    assert history(record, "loss") == ([100, 200, 201], [10.0, 5.0, 0.1])
    assert "step '2.5' is not a whole number" in proc.stderr


def test_metric_patterns_of_ones_own(repo: Path, env_for_subprocess: dict) -> None:
    (repo / "log.py").write_text(
        "for e in range(2):\n    print(f'Epoch {e + 1}: train {0.5 - e / 10} / valid {0.6 - e / 10}')\n"
        "for word in ('loss is 0.25', 'mood is good', 'mood is bad', '/x is 3'):\n    print(word)\n")
    proc = git_exp(repo, env_for_subprocess, "run", "--name", "own",
                   "--metric-pattern", r"Epoch (?P<step>\d+): train (?P<train>\S+) / valid (?P<valid>\S+)",
                   "--metric-pattern", r"(?P<name>\S+) is (?P<value>\S+)", "--", sys.executable, "log.py")
    assert proc.returncode == 0, proc.stderr
    record = gitexp.get_run("own")
    assert sorted(record.metrics) == ["loss", "train", "valid"]
    assert history(record, "valid") == ([1, 2], [0.6, 0.5])
    assert history(record, "loss") == ([0], [0.25])
    assert proc.stderr.count("metric 'mood': 'good' is not a number; such values are skipped (said once)") == 1
    assert "'bad'" not in proc.stderr
    assert "invalid metric key '/x'" in proc.stderr


@pytest.mark.parametrize(("pattern", "said"), [
    ("(", "is not a regular expression"),
    (r"loss (\S+)", "captures no metric"),
    (r"loss (?P<value>\S+)", "has a `value` group but no `name` group"),
])
def test_a_metric_pattern_that_cannot_work_is_refused_before_the_run(repo: Path, env_for_subprocess: dict,
                                                                     pattern: str, said: str) -> None:
    proc = git_exp(repo, env_for_subprocess, "run", "--metric-pattern", pattern, "--", sys.executable, "-c", "1")
    assert proc.returncode == 1 and proc.stderr.startswith(f"git exp: error: --metric-pattern {pattern!r} {said}")
    assert gitexp.load_runs() == []
