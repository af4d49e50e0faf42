#!/usr/bin/env python
"""How long gitexp's post-commit hook holds up a commit (target: the hook returns in < 100 ms).

    python benchmarks/bench_hooks.py            # 0, 200 and 1000 runs in the repository
    python benchmarks/bench_hooks.py --quick    # 0 and 100 runs, fewer repetitions

Prints one table: measurement | runs in repo | median | min | p90 | target | ok?

Everything runs in temporary repositories with HOME pointed at a temporary folder and git's
system config ignored. `git exp` is this Python's gitexp (the source tree this script sits
in comes first on PYTHONPATH). The hook's real work runs in a detached background process;
between measurements the script waits until no such process is left, so one measurement's
background work does not slow the next. "python -c pass" is the interpreter's own start-up
on this machine, a floor under anything written in Python. Bytecode is cached (in a temporary
PYTHONPYCACHEPREFIX, even where PYTHONDONTWRITEBYTECODE is set), as pip's install compiles it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "GIT_TERMINAL_PROMPT": "0"}
TARGET_MS = 100.0


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GITEXP_"))}
    env.update(GIT_ENV)
    env["HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    return env


def git(repo: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def background_idle(timeout: float = 300) -> None:
    """Wait until no detached post-commit worker (a fork of `git-exp hook post-commit`) is left."""
    deadline = time.monotonic() + timeout
    me = os.getpid()
    while time.monotonic() < deadline:
        busy = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if proc.info["pid"] != me and "hook" in cmdline and "post-commit" in cmdline:
                busy.append(proc)
        if not busy:
            return
        psutil.wait_procs(busy, timeout=1)
    raise RuntimeError("post-commit workers still running after the timeout")


def timed(command: list[str], repo: Path, env: dict[str, str], reps: int, between: list[str] | None = None,
          idle: bool = True) -> list[float]:
    out = []
    for _ in range(reps):
        if idle:
            background_idle()
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=repo, env=env, capture_output=True)
        out.append((time.perf_counter() - started) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"{command} failed: {proc.stderr.decode(errors='replace')}")
        if between:
            subprocess.run(between, cwd=repo, env=env, check=True, capture_output=True)
    return out


def make_repo(base: Path, env: dict[str, str], runs: int) -> Path:
    repo = base / f"repo-{runs}"
    repo.mkdir()
    git(repo, env, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print('train')\n")
    git(repo, env, "add", ".")
    git(repo, env, "commit", "-q", "-m", "initial")
    if runs:
        script = ("import gitexp, sys\n"
                  "for i in range(int(sys.argv[1])):\n"
                  "    with gitexp.start_run(system_metrics_interval=0, capture_env=False) as r:\n"
                  "        r.log_metric('acc', i)\n")
        subprocess.run([sys.executable, "-c", script, str(runs)], cwd=repo, env=env, check=True)
    return repo


def row(name: str, runs: int | str, values: list[float], target: float | None) -> list[str]:
    values = sorted(values)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    median = statistics.median(values)
    ok = "" if target is None else ("yes" if median < target else "NO")
    return [name, str(runs), f"{median:.1f} ms", f"{values[0]:.1f} ms", f"{p90:.1f} ms",
            "" if target is None else f"< {target:.0f} ms", ok]


def link_scan(repo: Path, env: dict[str, str], reps: int) -> list[float]:
    """The background half's cost: scanning every run for one whose snapshot is the new commit."""
    code = ("import sys, time; from gitexp.ops import link; from gitexp.git.repo import Repo\n"
            "repo = Repo.discover('.'); head = repo.resolve_commit('HEAD')\n"
            "for _ in range(int(sys.argv[1])):\n"
            "    t = time.perf_counter(); link.link_runs(repo, head); print((time.perf_counter() - t) * 1000)\n")
    out = subprocess.run([sys.executable, "-c", code, str(reps)], cwd=repo, env=env, check=True,
                         capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (0, 100) if args.quick else (0, 200, 1000)
    reps = 5 if args.quick else 15
    rows = []
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-hooks-") as tmp:
        base = Path(tmp)
        (base / "home").mkdir()
        env = environment(base / "home")
        git_exp = [os.path.join(os.path.dirname(sys.executable), "git-exp")]
        rows.append(row("python -c pass (interpreter start-up)", "-", timed([sys.executable, "-c", "pass"], base,
                                                                             env, reps, idle=False), None))
        for runs in sizes:
            repo = make_repo(base, env, runs)
            empty = ["git", "commit", "-q", "--allow-empty", "-m", "bench"]
            rows.append(row("git commit, no hooks", runs, timed(empty, repo, env, reps), None))
            subprocess.run([*git_exp, "hooks", "install"], cwd=repo, env=env, check=True, capture_output=True)
            rows.append(row("git exp hook post-commit (what the hook waits for)", runs,
                            timed([*git_exp, "hook", "post-commit"], repo, env, reps), TARGET_MS))
            rows.append(row("git commit, gitexp hook installed", runs, timed(empty, repo, env, reps), None))
            rows.append(row("background: scan runs for a link (not on the commit's path)", runs,
                            link_scan(repo, env, reps), None))
            git(repo, env, "config", "exp.autorun", f"{sys.executable} -c pass")
            rows.append(row("git exp hook post-commit, with --auto-run", runs,
                            timed([*git_exp, "hook", "post-commit"], repo, env, reps), TARGET_MS))
            git(repo, env, "config", "--unset", "exp.autorun")
            background_idle()
    header = ["measurement", "runs", "median", "min", "p90", "target", "ok?"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"gitexp hook benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.executable}")
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
