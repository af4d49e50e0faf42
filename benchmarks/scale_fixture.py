#!/usr/bin/env python
"""The 100,000-run repository of issue 14, built once through gitexp's real API and cached.

    python benchmarks/scale_fixture.py              # build (or find) the 100,000-run fixture
    python benchmarks/scale_fixture.py --runs 2000  # a small one, to try a benchmark quickly

    from scale_fixture import cached_scale_fixture  # (benchmarks/ on sys.path)
    repo, info = cached_scale_fixture(100_000)

What is in it: a small code repository (bench_core's) with one code commit per batch, and on it
runs as a sweep makes them: 3 experiments, 6 params (2 nested), 3 metrics of 10 to 100 steps,
2 tags, one run in 10 checkpointed once before it ends (three commits, two reflog entries; the
others end before their first flush: one commit, one entry), the
environment captured (one env.yaml shared by every run) and the clean code snapshot (the base
commit's tree, free). System metrics are off (each run lasts milliseconds).

How it is built: in batches of 5,000 runs, 2 processes each (this machine has 2 cores), with
`git gc` between batches, as issue 14 describes, and as a user's git would run `git gc --auto`
now and then; that gc skips `git reflog expire` (gc.reflogExpire=never), which would expire
nothing here but rewrites each run's reflog file (3.7 ms each on this machine's disk). One code
commit is made between batches, so runs hang off 20 base commits.
`git config exp.notes false` during the build, as bench_core's fixtures do: all runs of a batch
share one base commit, whose note would gain a line per run and be rewritten whole each second
(quadratic, and not what this fixture measures); it is unset at the end. Nothing else is done
to the repository: it is what gitexp and git gc leave, loose reflogs and all.

Cached under benchmarks/.cache/scale-v<version>-<runs>/ (repo/ and fixture.json). The key is
this file's FIXTURE_VERSION, not a hash of gitexp's sources as in bench_core: a 100,000-run
build takes tens of minutes and most changes to gitexp do not change what it writes. Bump the
version (or delete the folder) when the format changes; fixture.json records the gitexp commit
that built it. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# gitexp from this checkout, in this process and its children, whatever `pip install -e` last pointed
# at (the machine is shared, and another checkout's install would measure other code).
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench_core import CACHE, git, isolate, log, make_code_repo, pack_count, source_state, wait_for_gc  # noqa: E402

FIXTURE_VERSION = "3"  # 3: a run that ends before its first flush is one commit
BATCH = 5000
PROCESSES = 2
EXPERIMENTS = ("sweep/lr", "sweep/arch", "baseline")


def fixture_dir(n: int) -> Path:
    return CACHE / f"scale-v{FIXTURE_VERSION}-{n}"


def make_runs(job: tuple[str, int, int]) -> int:
    """Pool worker: runs first..first+count-1 through the real API; returns how many it made."""
    repo, first, count = job
    import gitexp
    from gitexp.errors import GitexpError

    for i in range(first, first + count):
        params = {"lr": 10 ** -(1 + i % 4), "batch_size": 2 ** (4 + i % 4), "seed": i % 1000,
                  "optimizer": ("adam", "sgd", "adamw")[i % 3],
                  "model": {"layers": 2 + i % 6, "width": 64 * (1 + i % 3)}}
        for attempt in range(5):  # one flaky write must not cost a 30-minute fixture
            try:
                run = gitexp.start_run(experiment=EXPERIMENTS[i % len(EXPERIMENTS)], params=params, repo=repo,
                                       tags={"sweep": f"s{i // 1000}", "gpu": ("a100", "h100")[i % 2]},
                                       capture_env=True, capture_code=True, system_metrics_interval=0)
                break
            except GitexpError as exc:
                print(f"start_run failed (attempt {attempt + 1}): {exc}", file=sys.stderr, flush=True)
                if attempt == 4:
                    raise
                time.sleep(0.1)
        steps = 10 + (i * 37) % 91
        with run:
            for step in range(steps):
                decay = 1.0 / (step + 1)
                run.log_metrics({"train/loss": decay + i * 1e-6, "val/loss": 1.1 * decay + i * 1e-6}, step=step)
                if step % 5 == 4:
                    run.log_metric("val/acc", 1 - decay + i * 1e-7, step=step)
                if i % 10 == 0 and step == steps // 2:
                    gitexp.flush()  # a checkpoint: the run's RUNNING commit, then its final one
    gitexp.flush()
    return count


def build(repo: Path, n: int, batch: int = BATCH, processes: int = PROCESSES) -> dict[str, Any]:
    git(repo, "config", "exp.notes", "false")
    t0 = time.perf_counter()
    done, batches, gc_s = 0, [], 0.0
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for lo in range(0, n, batch):
            size = min(batch, n - lo)
            chunk = max(1, size // (processes * 8))
            jobs = [(str(repo), first, min(chunk, lo + size - first)) for first in range(lo, lo + size, chunk)]
            tb = time.perf_counter()
            done += sum(pool.imap_unordered(make_runs, jobs))
            runs_s = time.perf_counter() - tb
            wait_for_gc(repo)
            tg = time.perf_counter()
            # Without `git reflog expire` (nothing in it is old enough to expire anyway): it
            # rewrites every run's reflog file, minutes at 100,000 runs on this machine's disk.
            git(repo, "-c", "gc.reflogExpire=never", "-c", "gc.reflogExpireUnreachable=never", "gc", "--quiet")
            gc_s += time.perf_counter() - tg
            (repo / "model.py").write_text((repo / "model.py").read_text() + f"# batch {lo // batch}\n")
            git(repo, "commit", "-q", "-am", f"batch {lo // batch + 1}")
            batches.append(round(runs_s / size * 1000, 2))
            log(f"  scale fixture: {done:,}/{n:,} runs, {runs_s / size * 1000:.2f} ms/run in this batch "
                f"({processes} processes), git gc {time.perf_counter() - tg:.1f} s, {pack_count(repo)} packs, "
                f"{time.perf_counter() - t0:.0f} s so far")
    git(repo, "config", "--unset", "exp.notes")
    return {"build_s": time.perf_counter() - t0, "gc_s": gc_s, "batch_ms_per_run": batches,
            "processes": processes, "batch": batch}


def cached_scale_fixture(n: int = 100_000) -> tuple[Path, dict[str, Any]]:
    """(the fixture's repository, what fixture.json says of its build); builds it the first time.

    Callers must not change the repository: copy it (shutil.copytree, symlinks=True) to alter it.
    """
    final = fixture_dir(n)
    if (final / "fixture.json").exists():
        return final / "repo", json.loads((final / "fixture.json").read_text())
    CACHE.mkdir(exist_ok=True)
    log(f"building the scale fixture of {n:,} runs in {final} (tens of minutes for 100,000)")
    tmp = CACHE / f"tmp-scale-{n}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    repo = make_code_repo(tmp / "repo", dirty=False)
    stats = build(repo, n)
    info = {"runs": n, **stats, "gitexp": source_state(), "built": time.strftime("%Y-%m-%d %H:%M:%S")}
    (tmp / "fixture.json").write_text(json.dumps(info))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final / "repo", info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gitexp-scale-") as tmp:
        # The runs' author and committer are bench_core's; the repository lives on in the cache.
        isolate(Path(tmp) / "home")
        repo, info = cached_scale_fixture(args.runs)
    print(f"{repo}: {json.dumps(info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
