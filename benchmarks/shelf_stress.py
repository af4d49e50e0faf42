"""The run shelf under load: a sweep past the shelving threshold, then a second sweep, resumes of
shelved runs and listings all at once, beside the background upkeep that shelves runs meanwhile.

    python benchmarks/shelf_stress.py [--runs 14000] [--more 3000] [--resume 300]

Not a speed benchmark: it prints what a user would check afterwards (every run listed once, every
resumed run with what it logged, no run both shelved and a ref, `git exp verify` and
`git fsck --connectivity-only` clean), and exits 1 when any of it is wrong. About two minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import git, isolate, log, wait_for_upkeep


def do_sweep(args: dict[str, Any]) -> dict[str, Any]:
    import gitexp

    n, first = int(args["n"]), int(args["first"])
    t0 = time.perf_counter()
    for k in range(first, first + n):
        with gitexp.start_run(experiment=f"sweep/e{k % 5}", params={"lr": k / 1e5, "seed": k},
                              system_metrics_interval=0, capture_env=False) as run:
            run.log_metric("loss", 1 / (k + 1))
    return {"seconds": time.perf_counter() - t0}


def do_resume(args: dict[str, Any]) -> dict[str, Any]:
    import gitexp

    for run_id in args["ids"]:
        with gitexp.start_run(resume=run_id, system_metrics_interval=0, capture_env=False) as run:
            run.log_metric("extra", 1.0)
    return {"resumed": len(args["ids"])}


def do_check(args: dict[str, Any]) -> dict[str, Any]:
    from gitexp.git import shelf
    from gitexp.store import runs

    records = runs.load_runs()
    by_id = {r.id: r for r in records}
    shelved = shelf.read(Path(".git"))
    own = set(git(Path("."), "for-each-ref", "--format=%(refname)", "refs/experiments/").split())
    return {"runs": len(records), "ids": len(by_id), "own": len(own), "shelved": len(shelved),
            "both": len(own & set(shelved)),
            "resumed_ok": sum("extra" in by_id[i].metrics for i in args["ids"] if i in by_id)}


WORKERS = {"sweep": do_sweep, "resume": do_resume, "check": do_check}


def start(repo: Path, name: str, args: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(args)],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"worker failed: {err[-6000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=14_000, help="the first sweep (past the 10,000-ref threshold)")
    parser.add_argument("--more", type=int, default=3_000, help="the second sweep, beside the resumes")
    parser.add_argument("--resume", type=int, default=300, help="shelved runs resumed meanwhile")
    parser.add_argument("--worker")
    parser.add_argument("args", nargs="?")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.args))))
        return 0
    with tempfile.TemporaryDirectory(prefix="gitexp-shelf-stress-", ignore_cleanup_errors=True) as tmp:
        isolate(Path(tmp) / "home")
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "commit", "-q", "--allow-empty", "-m", "init")
        log(f"a sweep of {args.runs:,} runs")
        first = result(start(repo, "sweep", {"n": args.runs, "first": 0}))
        wait_for_upkeep(repo / ".git")
        before = result(start(repo, "check", {"ids": []}))
        listed_ids = [line.split(",", 1)[0] for line in git(repo, "exp", "ls", "--format", "csv").splitlines()[1:]]
        ids = sorted(random.Random(1).sample(sorted(listed_ids), args.resume))
        log(f"{args.more:,} runs more, {args.resume} shelved runs resumed, and listings, at once")
        sweep = start(repo, "sweep", {"n": args.more, "first": args.runs})
        resume = start(repo, "resume", {"ids": ids})
        listings = []
        while sweep.poll() is None or resume.poll() is None:
            t0 = time.perf_counter()
            listed = subprocess.run(["git", "exp", "ls", "--format", "csv"], cwd=repo,
                                    capture_output=True, text=True, check=False)
            listings.append((listed.returncode, len(listed.stdout.splitlines()) - 1, time.perf_counter() - t0))
        second, resumed = result(sweep), result(resume)
        wait_for_upkeep(repo / ".git")
        after = result(start(repo, "check", {"ids": ids}))
        verify = subprocess.run(["git", "exp", "verify"], cwd=repo, capture_output=True, text=True, check=False)
        fsck = subprocess.run(["git", "fsck", "--connectivity-only"], cwd=repo, capture_output=True, text=True,
                              check=False)
    total = args.runs + args.more
    rows = [
        ("first sweep", f"{args.runs:,} runs in {first['seconds']:.1f} s", ""),
        ("after it: runs with a ref / on the shelf", f"{before['own']:,} / {before['shelved']:,}", ""),
        ("second sweep beside resumes and listings", f"{args.more:,} runs in {second['seconds']:.1f} s",
         f"{resumed['resumed']} resumed, {len(listings)} listings"),
        ("listings that failed", str(sum(code != 0 for code, _, _ in listings)), "want 0"),
        ("runs listed, ids", f"{after['runs']:,}, {after['ids']:,}", f"want {total:,} each"),
        ("resumed runs with their new metric", f"{after['resumed_ok']} of {len(ids)}", "want all"),
        ("runs with a ref / on the shelf / both", f"{after['own']:,} / {after['shelved']:,} / {after['both']}",
         "want both 0"),
        ("git exp verify", verify.stderr.strip().splitlines()[-1] if verify.stderr.strip() else "", "want no problems"),
        ("git fsck --connectivity-only", "clean" if fsck.returncode == 0 and not fsck.stdout.strip() else
         fsck.stdout[-200:], "want clean"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, want in rows:
        print(f"{name:<{width}}  {value:<36}  {want}".rstrip())
    ok = (after["runs"] == after["ids"] == total and after["resumed_ok"] == len(ids) and after["both"] == 0
          and verify.returncode == 0 and fsck.returncode == 0 and not any(code for code, _, _ in listings))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
