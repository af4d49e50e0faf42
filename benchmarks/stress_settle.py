#!/usr/bin/env python
"""Settling beside everything else that moves packs: nothing may be lost.

    python benchmarks/stress_settle.py            # 2 processes x 200 runs
    python benchmarks/stress_settle.py --runs 50

Two processes make runs (5 steps of one metric each) in a fresh repository while one process
settles run objects in a loop (gitexp/git/settle.py, without its size threshold) and another
runs `git gc --prune=now`, `git repack -a -d` and `git gc` in turn. Then: `git fsck
--connectivity-only`, `git exp verify`, and every run's history read back. Prints what it saw
and exits 1 on any loss.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import isolate, log


def make(repo: str, tag: str, n: int) -> None:
    import gitexp

    os.chdir(repo)
    for i in range(n):
        with gitexp.start_run(name=f"{tag}{i}", params={"i": i}, system_metrics_interval=0) as run:
            for step in range(5):
                run.log_metric("loss", 1.0 / (i + step + 1), step=step)
    gitexp.flush()


def settling(repo: str, stop: Any, passes: Any) -> None:
    from gitexp.git import settle

    while not stop.is_set():
        settle.settle(Path(repo) / ".git", minimum=0)
        passes.value += 1


def collecting(repo: str, stop: Any, passes: Any, failures: Any) -> None:
    commands = (["gc", "-q", "--prune=now"], ["repack", "-a", "-d", "-q"], ["gc", "-q"])
    while not stop.is_set():
        proc = subprocess.run(["git", *commands[passes.value % 3]], cwd=repo, capture_output=True, check=False)
        if proc.returncode:
            failures.value += 1
            print(f"git {' '.join(commands[passes.value % 3])} failed: {proc.stderr.decode(errors='replace')[-400:]}",
                  file=sys.stderr, flush=True)
        passes.value += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per making process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitexp-stress-settle-") as tmp:
        isolate(Path(tmp) / "home")
        repo = Path(tmp) / "repo"
        repo.mkdir()
        for cmd in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "initial"]):
            subprocess.run(["git", *cmd], cwd=repo, check=True)
        stop = multiprocessing.Event()
        settles, gcs, gc_failures = (multiprocessing.Value("i", 0) for _ in range(3))
        background = [multiprocessing.Process(target=settling, args=(str(repo), stop, settles)),
                      multiprocessing.Process(target=collecting, args=(str(repo), stop, gcs, gc_failures))]
        makers = [multiprocessing.Process(target=make, args=(str(repo), tag, args.runs)) for tag in ("a", "b")]
        log(f"2 x {args.runs} runs beside settling and git's maintenance")
        for proc in background + makers:
            proc.start()
        for proc in makers:
            proc.join()
        stop.set()
        for proc in background:
            proc.join()
        fsck = subprocess.run(["git", "fsck", "--connectivity-only"], cwd=repo, capture_output=True, text=True)
        verify = subprocess.run([sys.executable, "-m", "gitexp", "verify"], cwd=repo, capture_output=True, text=True)
        os.chdir(repo)
        import gitexp

        runs = gitexp.load_runs()
        broken = [r.id for r in runs if list(r.history("loss").steps) != [0, 1, 2, 3, 4]]
        print(f"settling passes {settles.value}, git gc/repack {gcs.value} ({gc_failures.value} failed); "
              f"runs {len(runs)} of {2 * args.runs}, histories broken {len(broken)}; fsck exit {fsck.returncode}; "
              f"verify exit {verify.returncode}: {verify.stdout.strip()[-200:]}")
        lost = len(runs) != 2 * args.runs or broken or fsck.returncode or verify.returncode
        return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
