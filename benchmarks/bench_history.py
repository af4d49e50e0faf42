"""One metric logged 1,000,000 times in one run, with ten checkpoints: format 2's chunks beside format
1's whole-history rewrite (the anchor, measured in the same process by setting chunks.CHUNK_FROM out
of reach).

    python benchmarks/bench_history.py [--steps N] [--checkpoints K]

Prints, for each layout: the bytes of the run's objects (every pack it wrote), the same as a
multiple of the final history compressed with zlib (the goal: at most 1.3x), the slowest
checkpoint, the process's RSS growth while logging, reading the history back, and
`git exp plot` of it as a whole process.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pack_bytes(repo: Path) -> int:
    folder = repo / ".git" / "objects" / "pack"
    return sum(p.stat().st_size for p in folder.glob("pack-*.pack"))


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def plot(repo: Path, run_id: str) -> tuple[float, float]:
    """`git exp plot loss RUN -o loss.png` as a user runs it (warm: the history cache exists): the best of
    three wall times, and the process's peak RSS (its VmHWM)."""
    best, peak = float("inf"), 0.0
    for _ in range(3):
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from this large parent.
        code = ("import re, sys, time; from gitexp.cli.main import main; t = time.perf_counter(); "
                f"main(['plot', 'loss', {run_id!r}, '-o', 'loss.png']); "
                "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
                "print(time.perf_counter() - t, int(hwm) / 1024)")
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - started)
        peak = max(peak, float(out.stdout.split()[-1]))
    return best, peak


def one(repo: Path, steps: int, checkpoints: int, chunked: bool) -> list[object]:
    import gitexp
    from gitexp.store import chunks, histories

    chunks.CHUNK_FROM = 1024 if chunked else 10**15
    before, rss0 = pack_bytes(repo), rss_mb()
    run = gitexp.start_run(name=f"{'chunked' if chunked else 'whole'}", system_metrics_interval=0,
                           checkpoint_interval=10**9, capture_env=False)
    slowest = 0.0
    every = steps // checkpoints
    for i in range(steps):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
        if (i + 1) % every == 0:
            started = time.perf_counter()
            run.checkpoint()
            slowest = max(slowest, time.perf_counter() - started)
    run.end()
    grown = rss_mb() - rss0
    written = pack_bytes(repo) - before
    record = gitexp.get_run(run.id)
    for folder in (repo / ".git" / histories.CACHE_DIR,):  # a cold read: parse every chunk
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    started = time.perf_counter()
    series = record.history("loss")
    cold = time.perf_counter() - started
    started = time.perf_counter()
    record.history("loss")
    warm = time.perf_counter() - started
    from gitexp.store.codec import render_rows
    from gitexp.store.state import Series

    whole = Series(steps=series.steps, times=series.times, values=series.values)
    compressed = len(zlib.compress(render_rows(whole).encode(), 6))
    assert series.count == steps
    plot_s, plot_mb = plot(repo, run.id)
    return ["format 2 (chunks)" if chunked else "format 1 (whole history, anchor)", f"{written / 2**20:.1f}",
            f"{written / compressed:.2f}x", f"{slowest:.2f}", f"{grown:.0f}", f"{cold:.2f}", f"{warm:.2f}",
            f"{plot_s:.2f}", f"{plot_mb:.0f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for chunked in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp)
            env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
                   "GIT_COMMITTER_EMAIL": "b@b"}
            subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
            subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True, env=env)
            os.environ.update(env)
            os.chdir(repo)
            rows.append(one(repo, args.steps, args.checkpoints, chunked))
            os.chdir("/")
    print(f"{args.steps:,} values of one metric, {args.checkpoints} checkpoints; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(tabulate(rows, headers=["layout", "objects MiB", "÷ final compressed (goal ≤1.3x)",
                                  "slowest checkpoint s", "RSS growth MB (goal ≤50)", "read cold s",
                                  "read warm s",
                                  "plot s, whole process (goal ≤1)", "plot peak RSS MB (goal ≤200)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
