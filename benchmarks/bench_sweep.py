"""A sweep in one process, every run on the same code commit, each run's note written as it ends (as
when each trial is its own process): what a run costs as the sweep grows, and what the sweep leaves.

    python benchmarks/bench_sweep.py [--runs N] [--note-lines K]

Side by side, in fresh repositories of this run: notes as gitexp writes them (a note keeps the
newest exp.noteLines run lines), notes uncapped (`--note-lines` set to the sweep's size: every
run's line kept, as before the cap), and notes off (`exp.notes false`, the anchor: what the runs
themselves cost). Prints ms per run for each fifth of the sweep, then the packs left, their bytes,
bytes per run, and the last note's lines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@dataclass
class Sweep:
    per_run: list[float]  # ms per run in each fifth of the sweep
    packs: int
    size: int  # bytes of the packs
    note_lines: int


def sweep(runs: int, notes: str, note_lines: int | None) -> Sweep:
    """Run *runs* trials in a fresh repository in a child process; returns its figures."""
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    git(root, "init", "-q")
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.com"), ("exp.notes", notes)):
        git(root, "config", key, value)
    if note_lines is not None:
        git(root, "config", "exp.noteLines", str(note_lines))
    (root / "train.py").write_text("print('train')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-qm", "code")
    code = f"""
import json, time, gitexp
marks, start = [], time.perf_counter()
for i in range({runs}):
    with gitexp.start_run(name=f"trial-{{i}}", params={{"lr": 10 ** -(i % 4), "seed": i}},
                          system_metrics_interval=0) as run:
        for step in range(20):
            run.log_metric("loss", 1 / (step + 1 + i), step=step)
    gitexp.flush()
    if (i + 1) % max(1, {runs} // 5) == 0:
        marks.append(time.perf_counter() - start)
print(json.dumps(marks))
"""
    env = {**os.environ, "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    marks = [float(x) for x in out.stdout.strip().splitlines()[-1].strip("[]").split(",")]
    fifth = max(1, runs // 5)
    per_run = [(b - a) / fifth * 1000 for a, b in zip([0.0, *marks], marks, strict=False)]
    packs = list((root / ".git" / "objects" / "pack").glob("pack-*.pack"))
    size = sum(p.stat().st_size for p in packs)
    note = git(root, "notes", "--ref=experiments", "show", "HEAD") if notes == "true" else ""
    return Sweep(per_run, len(packs), size, len(note.splitlines()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument("--note-lines", type=int, default=None, help="exp.noteLines for the capped column")
    args = parser.parse_args()
    columns = {"notes (gitexp)": ("true", args.note_lines), "notes uncapped": ("true", args.runs),
               "notes off (anchor)": ("false", None)}
    results = {}
    for label, (notes, lines) in columns.items():
        started = time.perf_counter()
        results[label] = sweep(args.runs, notes, lines)
        print(f"[bench] {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    fifth = max(1, args.runs // 5)
    rows = [[f"ms per run, runs {k * fifth + 1:,}-{(k + 1) * fifth:,}",
             *(f"{r.per_run[k]:.2f}" for r in results.values())] for k in range(5)]
    rows += [["packs left", *(str(r.packs) for r in results.values())],
             ["pack bytes", *(f"{r.size:,}" for r in results.values())],
             ["pack bytes per run", *(f"{r.size / args.runs:,.0f}" for r in results.values())],
             ["lines of the commit's note", *(str(r.note_lines) for r in results.values())]]
    print(tabulate(rows, headers=["", *results], tablefmt="github", disable_numparse=True))
    print(f"\n{args.runs:,} runs of 20 steps in one process, one code commit, a note write per run; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
