#!/usr/bin/env python
"""Settling beside everything else that moves packs: nothing may be lost.

    python benchmarks/stress_settle.py            # 2 processes x 200 runs, then 30 kills
    python benchmarks/stress_settle.py --runs 50 --kills 0

Two processes make runs (5 steps of one metric each) in a fresh repository while one process
settles run objects in a loop (gitexp/git/settle.py, without its size threshold) and another
runs `git gc --prune=now`, `git repack -a -d` and `git gc` in turn. Then: `git fsck
--connectivity-only`, `git exp verify`, and every run's history read back. Then --kills times:
the settled keeps lifted, a pass started in a process killed (SIGKILL) after 0 to 0.6 s, and
`git fsck` again; a last pass must leave one tidy folder. Prints what it saw and exits 1 on any loss.
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


def kills(repo: Path, times: int) -> tuple[int, int, list[str]]:
    """(fsck failures, files `git count-objects` calls garbage, what was left) after *times* killed passes."""
    import random
    import signal
    import time

    from gitexp.git import settle

    gitdir = repo / ".git"
    failed = 0
    for _ in range(times):
        settle.lift(gitdir)
        code = ("from pathlib import Path; from gitexp.git import settle; "
                f"settle.settle(Path({str(gitdir)!r}), minimum=0)")
        proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(random.uniform(0, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fsck = subprocess.run(["git", "fsck", "--connectivity-only"], cwd=repo, capture_output=True, check=False)
        failed += fsck.returncode != 0
    time.sleep(1)  # a killed pass's git pack-objects finishes on its own
    settle.settle(gitdir, minimum=0)
    count = subprocess.run(["git", "count-objects", "-v"], cwd=repo, capture_output=True, text=True, check=True)
    garbage = int(next(line.split()[1] for line in count.stdout.splitlines() if line.startswith("garbage:")))
    left = [n for n in os.listdir(gitdir / "gitexp") if n.startswith("settle.")]
    left += [n for n in os.listdir(gitdir / "objects" / "pack")
             if n.endswith(".keep") and not (gitdir / "objects" / "pack" / f"{n[:-5]}.idx").exists()]
    return failed, garbage, left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per making process")
    parser.add_argument("--kills", type=int, default=30, help="passes killed at a random moment")
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
        if args.kills:
            log(f"{args.kills} passes killed at a random moment")
            failed, garbage, left = kills(repo, args.kills)
            print(f"killed passes {args.kills}: fsck failed {failed} times; afterwards git's garbage files "
                  f"{garbage}, left behind {left or 'nothing'}")
            lost = lost or failed or garbage or left
        return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
