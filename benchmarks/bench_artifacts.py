#!/usr/bin/env python
"""Artifacts and sharing benchmarks of gitexp (issue 3).

    python benchmarks/bench_artifacts.py                  # 1 GiB file, 1,000 runs (a few minutes)
    python benchmarks/bench_artifacts.py --quick          # 256 MiB, 200 runs

Measures, against real git and git-lfs in a temporary folder with HOME pointed at it:

- ingest: `run.log_artifact` of a new 1 GiB file (hashed and copied into the LFS store) versus
  `sha256sum` of the same file, alternating, page cache warm for both; best of 3 each;
- dedup: logging the same file again (other name, other run) adds no bytes to the store;
- push: `git exp push` of 1,000 runs (no artifacts) to a bare remote over file://;
- fetch: `git exp fetch` of those runs into a fresh clone.

The 1 GiB file lives in /tmp and is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Bench Author", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Bench Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_TERMINAL_PROMPT": "0",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


def isolate(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(GIT_ENV, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    for key in ("GITEXP_EXPERIMENT", "GITEXP_RUN_ID", "GITEXP_REPO", "GITEXP_PARAMS", "GIT_DIR", "GIT_WORK_TREE"):
        os.environ.pop(key, None)
    sys.path.insert(0, str(ROOT))
    from gitexp.git import repo as repo_mod

    repo_mod.set_config_search_path(str(home))


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "code")
    return path


def store_bytes(repo: Path) -> int:
    """Bytes the LFS store occupies on disk (allocated blocks, so hard links count once)."""
    seen, total = set(), 0
    for path in (repo / ".git" / "lfs").rglob("*"):
        info = path.lstat()
        if path.is_file() and (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def make_big_file(path: Path, size: int) -> None:
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as handle:
        for i in range(size >> 20):
            handle.write(chunk[:-8] + i.to_bytes(8, "big"))  # every MiB distinct, cheap to make


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as handle:
        while handle.read(8 << 20):
            pass


def bench_ingest(work: Path, big: Path, rounds: int) -> dict[str, float]:
    import gitexp

    size = big.stat().st_size
    sums, ingests = [], []
    for i in range(rounds):
        warm(big)
        started = time.perf_counter()
        subprocess.run(["sha256sum", str(big)], check=True, capture_output=True)
        sums.append(time.perf_counter() - started)
        repo = new_repo(work / f"ingest-{i}")  # a new store: the content is new to it
        os.chdir(repo)
        warm(big)
        with gitexp.start_run(name=f"ingest-{i}", system_metrics_interval=0, capture_env=False) as run:
            started = time.perf_counter()
            run.log_artifact(big, "model.bin")
            ingests.append(time.perf_counter() - started)
        log(f"round {i + 1}: sha256sum {size / sums[-1] / 2**20:.0f} MiB/s, "
            f"log_artifact {size / ingests[-1] / 2**20:.0f} MiB/s")
    # The same file again, under another name and in another run: nothing new is stored.
    before = store_bytes(repo)
    with gitexp.start_run(name="again", system_metrics_interval=0, capture_env=False) as run:
        started = time.perf_counter()
        run.log_artifact(big, "same-again.bin")
        again = time.perf_counter() - started
    with gitexp.start_run(name="again-2", system_metrics_interval=0, capture_env=False) as run:
        run.log_artifact(big, "model.bin")
    added = store_bytes(repo) - before
    os.chdir(work)
    return {"size": size, "sha256sum_s": min(sums), "ingest_s": min(ingests), "again_s": again,
            "added_bytes": added}


def _timed_gitexp(command: str, cwd: Path) -> float:
    """Seconds `git exp COMMAND` takes as a process in *cwd*; its last line goes to the log."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gitexp", command], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"git exp {command} failed: {proc.stderr}")
    log(proc.stdout.splitlines()[-1])
    return seconds


def bench_sharing(work: Path, runs: int) -> dict[str, float]:
    import gitexp

    remote = work / "remote.git"
    git(work, "init", "-q", "--bare", "-b", "main", str(remote))
    origin = new_repo(work / "origin")
    git(origin, "remote", "add", "origin", remote.as_uri())
    git(origin, "push", "-q", "origin", "main")
    os.chdir(origin)
    log(f"making {runs} runs")
    for i in range(runs):
        with gitexp.start_run(name=f"r{i}", params={"lr": i / runs, "seed": i}, system_metrics_interval=0,
                              capture_env=False) as run:
            for step in range(10):
                run.log_metric("loss", 1 / (step + 1 + i), step=step)
    gitexp.flush()  # the runs' batched notes, which the push sends too
    push_s = _timed_gitexp("push", origin)
    clone = work / "clone"
    started = time.perf_counter()
    git(work, "clone", "-q", remote.as_uri(), str(clone))
    clone_s = time.perf_counter() - started
    fetch_s = _timed_gitexp("fetch", clone)
    fetched = len(git(clone, "for-each-ref", "refs/experiments/").splitlines())
    os.chdir(work)
    return {"runs": runs, "push_s": push_s, "clone_s": clone_s, "fetch_s": fetch_s, "fetched": fetched}


def table(ingest: dict[str, float], share: dict[str, float]) -> str:
    mib = 2**20
    size = ingest["size"]
    sha_rate, our_rate = size / ingest["sha256sum_s"] / mib, size / ingest["ingest_s"] / mib
    rows = [
        ("benchmark", "gitexp", "reference", "target", "ok?"),
        (f"log_artifact of a new {size / 2**30:.2g} GiB file (MiB/s)", f"{our_rate:.0f}",
         f"sha256sum {sha_rate:.0f}", ">= 70% of sha256sum", "yes" if our_rate >= 0.7 * sha_rate else "NO"),
        ("  ratio to sha256sum", f"{our_rate / sha_rate:.0%}", "", "", ""),
        ("same file logged again (bytes added to the store)", f"{ingest['added_bytes']:.0f}", "", "0",
         "yes" if ingest["added_bytes"] == 0 else "NO"),
        ("  time to log it again", f"{ingest['again_s'] * 1000:.0f} ms", "", "", ""),
        (f"git exp push of {share['runs']} runs to a bare remote (s)", f"{share['push_s']:.2f}", "", "<= 10",
         "yes" if share["push_s"] <= 10 else "NO"),
        (f"git exp fetch of {share['runs']} runs into a fresh clone (s)", f"{share['fetch_s']:.2f}",
         f"git clone {share['clone_s']:.2f}", "<= 10", "yes" if share["fetch_s"] <= 10 and
         share["fetched"] == share["runs"] else "NO"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB and 200 runs")
    args = parser.parse_args()
    size, runs, rounds = (256 << 20, 200, 2) if args.quick else (1 << 30, 1000, 3)
    if shutil.which("sha256sum") is None or shutil.which("git-lfs") is None:
        print("needs sha256sum and git-lfs on PATH", file=sys.stderr)
        return 2
    started_in = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-artifacts-", dir="/tmp") as tmp:
        work = Path(tmp)
        isolate(work / "home")
        big = work / "big.bin"
        log(f"writing a {size >> 20} MiB file in {work}")
        make_big_file(big, size)
        try:
            ingest = bench_ingest(work, big, rounds)
        finally:
            big.unlink(missing_ok=True)
        share = bench_sharing(work, runs)
        os.chdir(started_in)
    text = table(ingest, share)
    print(text, end="")
    # What a reader of the figures needs to weigh them (benchmarks/README.md quotes this line).
    lfs_version = subprocess.run(["git", "lfs", "version"], text=True, capture_output=True).stdout.split()[0]
    print(f"\nmeasured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, {git(started_in, 'version').strip()}, "
          f"{lfs_version}; ingest: best of {rounds} for both sides, alternating, page cache warm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
