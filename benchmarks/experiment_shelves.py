"""An experiment for a format not built: what fewer run refs would give the user's own git.

At 100,000 runs the user's `git fetch`, `git push` and `git log --decorate` of a branch take many
times as long as without runs (bench_scale.py), because git goes through every ref. The lever is
fewer refs: runs kept reachable through commits of gitexp's ("shelves") under a few refs. This
script measures that before anyone builds it. The 100,000 runs of scale_fixture's cached fixture,
under their 100,000 refs, are timed alternately beside the same objects kept under shelf refs,
each beside the repository without runs (bench_scale's helpers and rows). Layouts:

  fan:N    one ref per N runs: a commit whose N parents are run commits
  chain:N  one ref: a chain of commits, each with the one before and N run commits as parents

`python benchmarks/experiment_shelves.py --layout fan:1000 --reps 10` (about 5 minutes once the
fixture is cached). Nothing here is gitexp's format; benchmarks/README.md has what it found.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scale as bench
from scale_fixture import cached_scale_fixture


def git(cwd: Path, *args: str, data: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, input=data).stdout


def shelve(repo: Path, commits: list[str], layout: str) -> int:
    """Keep *commits* reachable by shelf refs of *layout* (fast-import writes the commits); the refs made."""
    kind, _, size = layout.partition(":")
    if kind not in ("fan", "chain") or not size.isdigit() or int(size) < 1:
        raise SystemExit(f"--layout {layout!r}: use fan:N or chain:N, N a number of runs (1 or more)")
    per = int(size)
    stream = []
    groups = [commits[k:k + per] for k in range(0, len(commits), per)]
    for k, group in enumerate(groups):
        ref = f"refs/experiments-shelf/{k:06d}" if kind == "fan" else "refs/experiments-shelf/chain"
        stream += [f"commit {ref}", "committer shelf <shelf@example.com> 1700000000 +0000", "data 0"]
        # A fan's commit, and a chain's first, begin at a run; a chain's next links follow the one
        # before (fast-import's own parent for the next commit to a ref it wrote).
        first = kind == "fan" or k == 0
        stream += ([f"from {group[0]}"] if first else []) + [f"merge {c}" for c in group[1 if first else 0:]]
        stream += ["deleteall", ""]
    git(repo, "fast-import", "--quiet", data="\n".join(stream) + "\n")
    return len(groups) if kind == "fan" else 1


def drop_run_refs(repo: Path) -> None:
    """Delete the run refs (their objects stay, reachable through the shelves alone)."""
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()
    git(repo, "update-ref", "--stdin", data="".join(f"delete {ref}\n" for ref in refs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", default="fan:1000", help="fan:N or chain:N (see the module's text)")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitexp-shelves-") as tmp:
        work = Path(tmp)
        bench.isolate(work / "home")
        fixture, _ = cached_scale_fixture(args.runs)
        many = bench.copy(fixture, work / "many-refs")
        shelved, bare_a, bare_b = (bench.copy(fixture, work / name) for name in ("shelved", "bare-a", "bare-b"))
        runs = [line.split() for line in git(many, "for-each-ref", "--format=%(objectname) %(refname)",
                                               "refs/experiments/").splitlines()]
        for repo in (bare_a, bare_b):
            bench.strip_runs(repo)
        started = time.perf_counter()
        refs = shelve(shelved, [commit for commit, _ in runs], args.layout)
        drop_run_refs(shelved)
        for repo in (many, shelved, bare_a, bare_b):
            git(repo, "gc", "--quiet")  # one pack of what each holds (the fixture's kept pack apart), packed refs
        bench.log(f"{len(runs):,} runs under {refs:,} shelf refs ({args.layout}), set up in "
                  f"{time.perf_counter() - started:.0f} s")
        rows = []
        for label, cmd in (("git status", ["git", "status"]), ("git log -20", ["git", "log", "-20"]),
                           ("git log --oneline --decorate -20", ["git", "log", "--oneline", "--decorate", "-20"]),
                           ("git commit", ["git", "commit", "-q", "--allow-empty", "-m", "bench"])):
            for name, repo, other in (("run refs", many, bare_a), ("shelves", shelved, bare_b)):
                a, b = bench.paired(cmd, repo, cmd, other, args.reps)
                rows.append([f"`{label}`, {name}", f"{a * 1000:.1f} ms ({a / b:.2f}x)", f"{b * 1000:.1f} ms"])
        for name, repo, other in (("run refs", many, bare_a), ("shelves", shelved, bare_b)):
            rows += [[f"{row[0]}, {name}", row[1], row[2]]
                     for row in bench.branch_sharing(repo, other, work, len(runs), args.reps)]
        for name, repo, other in (("run refs", many, bare_a), ("shelves", shelved, bare_b)):
            a, b = bench.paired(["git", "gc", "--quiet"], repo, ["git", "gc", "--quiet"], other, 2)
            rows.append([f"`git gc`, {name}", bench.secs(a), bench.secs(b)])
    from tabulate import tabulate

    print(f"{len(runs):,} runs; shelves: {args.layout}, {refs:,} refs")
    print(tabulate(rows, headers=["figure", "with runs", "without runs"], tablefmt="github", disable_numparse=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
