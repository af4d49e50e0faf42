#!/usr/bin/env python
"""Issue 14 at 100,000 runs: gitexp's own figures, and the user's git, beside their goals.

    python benchmarks/bench_scale.py                 # the 100,000-run fixture (built once: ~30 minutes)
    python benchmarks/bench_scale.py --runs 5000     # a small fixture, to try it out
    python benchmarks/bench_scale.py --no-upkeep     # the repository exactly as the fixture left it

Prints one table: figure | gitexp | anchor | goal | ok?

The fixture (scale_fixture.py) is copied into a temporary directory twice:

* **with runs**: the copy as gitexp leaves it. Unless --no-upkeep, gitexp's ref upkeep
  (gitexp/git/refmaint.py: `git pack-refs --all --prune`, the run reflogs archived, the run
  objects settled into kept packs by gitexp/git/settle.py) runs on it first, as it would in the
  background of the user's next 1,000 runs; its time is a note.
* **before upkeep** (unless --no-before): a third copy as the fixture left it, for its disk
  and one `git gc`, the two figures the upkeep changes most.
* **without runs** (the anchor of every git row): the same copy with refs/experiments*,
  refs/notes/experiments, their reflogs and <git dir>/gitexp removed, then `git gc --prune=now`,
  which drops gitexp's objects: the repository the user would have without gitexp.

Every figure is a whole process (git, or the installed `git-exp` console script) unless it says
in-process, timed with perf_counter; git rows alternate the two repositories call by call
(medians), so both see the same machine load. "Cold" `git exp ls` deletes <git dir>/gitexp/cache
before each call (gitexp's caches; the operating system's page cache is not dropped, which needs
root). Before the git rows both copies' files are dropped from the page cache (drop_page_cache),
so that git reads its packs back as it does in a user's repository written long ago; one row
gives `git log --oneline` with the packs as the copy left them too. Run creation: runs shaped
like the fixture's (scale_fixture.make_runs), in a fresh process
after one warm-up run, into the 100,000-run copy and into a copy of a 1,000-run fixture, rounds
alternating, each after the ref upkeep the round before it started has ended. Disk is allocated
size (`du`), reflog files' blocks included. Its anchor is MLflow's sqlite store holding the same
runs (benchmarks/.venv-mlflow, made by bench_core.py; 1,000 runs of the fixture's shape, what they
add to an empty store, per run), quoted from issue 14 (1.9 KB a run, for its own runs) when that
virtualenv does not exist.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core
from bench_core import VENV, git, isolate, log, ls_command, mlflow_call, secs, source_state, wait_for_upkeep, wall
from scale_fixture import ROOT, cached_scale_fixture, make_runs

# Every ref gitexp writes (docs/format.md). The shelf's ref holds every shelved run: a fixture built
# since the shelf shelves its runs during the build, and a "without runs" copy that kept the shelf
# kept all 100,000 runs' objects, the anchor then measuring a repository with runs.
RUN_REFS = ("refs/experiments/", "refs/experiments-trash/", "refs/experiments-remotes/",
            "refs/experiments-conflicts/", "refs/experiments-pushing/", "refs/experiments-shelf",
            "refs/notes/experiments")


def ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def du(path: Path) -> int:
    """Allocated bytes under *path* (what the disk spends, a block per small file)."""
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) * 1024


def copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def strip_runs(repo: Path) -> None:
    """Remove every trace of gitexp: its refs, their reflogs, its folder, then its objects. The
    user's objects stay as they were, packed or loose: git looks for a loose object (the fixture's
    HEAD commit, its tree) through every pack first, and `git gc` would have packed them here alone."""
    gitdir = repo / ".git"
    was_loose = {f"{path.parent.name}{path.name}": path.read_bytes() for path in (gitdir / "objects").glob("??/*")}
    for prefix in RUN_REFS:
        shutil.rmtree(gitdir / prefix, ignore_errors=True)
        shutil.rmtree(gitdir / "logs" / prefix, ignore_errors=True)
        (gitdir / prefix).unlink(missing_ok=True)
        (gitdir / "logs" / prefix).unlink(missing_ok=True)
    packed = gitdir / "packed-refs"
    if packed.exists():
        lines = packed.read_text().splitlines(keepends=True)
        kept, skip_peel = [], False
        for line in lines:
            if line.startswith("^"):
                if not skip_peel:
                    kept.append(line)
                continue
            name = line.split(" ", 1)[-1].strip()
            skip_peel = name.startswith(RUN_REFS)
            if not skip_peel:
                kept.append(line)
        packed.write_text("".join(kept))
    shutil.rmtree(gitdir / "gitexp", ignore_errors=True)
    from gitexp.git import settle

    for base in settle.settled_packs(gitdir / "objects" / "pack"):  # kept packs that git gc would not prune
        (gitdir / "objects" / "pack" / f"{base}.keep").unlink()
    git(repo, "-c", "gc.reflogExpire=never", "-c", "gc.reflogExpireUnreachable=never", "gc", "--prune=now",
        "--quiet")
    pack_dir = gitdir / "objects" / "pack"
    packs = [path for path in pack_dir.glob("*.idx")]
    if not was_loose or len(packs) != 1:
        return
    with packs[0].open("rb") as index:
        listed = subprocess.run(["git", "show-index"], cwd=repo, stdin=index, capture_output=True, text=True,
                                check=True).stdout
    packed = [line.split()[1] for line in listed.splitlines()]
    loose_again = [oid for oid in packed if oid in was_loose]
    if not loose_again:
        return
    for oid in loose_again:
        (gitdir / "objects" / oid[:2]).mkdir(exist_ok=True)
        (gitdir / "objects" / oid[:2] / oid[2:]).write_bytes(was_loose[oid])
    rest = "".join(f"{oid}\n" for oid in packed if oid not in was_loose)
    subprocess.run(["git", "pack-objects", "--quiet", str(pack_dir / "pack")], cwd=repo, input=rest, text=True,
                   capture_output=True, check=True)
    for path in pack_dir.glob(f"{packs[0].stem}.*"):
        path.unlink()
    git(repo, "update-server-info")


def machine_pace() -> float:
    """Median milliseconds, of 3, of a fixed pure-Python workload shaped like a listing's (JSON parsed,
    dicts and tuples made): the same code times differently from hour to hour on a shared machine
    (1.5x within one session), and this tells two runs' tables apart from two machines' moods."""
    doc = json.dumps({"meta": {"id": "20260101-0123456789abcdef", "status": "FINISHED", "start": "2026-01-01T00:00:00Z",
                               "tags": {f"t{i}": str(i) for i in range(5)}},
                      "params": {f"p{i}": i / 7 for i in range(8)},
                      "metrics": {f"m{i}": {"last": i / 3, "min": 0.0, "max": 1.0, "step": 99, "count": 100}
                                  for i in range(4)}})
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        rows = []
        for k in range(20_000):
            parsed = json.loads(doc)
            rows.append((k, parsed["meta"]["status"], {key: v for key, v in parsed["params"].items()},
                         tuple(m["last"] for m in parsed["metrics"].values())))
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def paired(a_cmd: list[str], a_cwd: Path, b_cmd: list[str], b_cwd: Path, reps: int,
           before: Any = None) -> tuple[float, float]:
    """Median wall seconds of a and b, alternating; *before*(cwd) runs untimed before each call.

    Each round swaps which goes first (a b, b a, a b, ...): where the machine slows down or speeds
    up through the calls, neither side is always the later one."""
    a, b = [], []
    for k in range(reps + 1):
        pair = ((a_cmd, a_cwd, a), (b_cmd, b_cwd, b))
        for cmd, cwd, out in pair if k % 2 == 0 else pair[::-1]:
            if before:
                before(cwd)
            seconds, _ = wall(cmd, cwd)
            if k:  # the first round warms up
                out.append(seconds)
    return statistics.median(a), statistics.median(b)


def branch_sharing(runs_repo: Path, bare: Path, work: Path, n: int, reps: int) -> list[list[str]]:
    """The rows of the user's `git fetch` and `git push` of a branch, with and without runs.

    Each repository gets a remote of its own, `origin`: a bare clone of the repository without
    runs (a code host's copy, which holds the branches alone), and a clone of that remote which
    pushes a new commit to it before each timed fetch of one. A push follows a new empty commit
    on the repository's own branch (made untimed)."""
    helpers = {}
    for repo in (runs_repo, bare):
        remote = work / f"origin-of-{repo.name}.git"
        git(work, "clone", "--quiet", "--bare", str(bare), str(remote))
        git(repo, "remote", "add", "origin", str(remote))
        git(repo, "fetch", "--quiet", "origin")
        helpers[repo] = work / f"pusher-to-{repo.name}"
        git(work, "clone", "--quiet", str(remote), str(helpers[repo]))
    made = iter(range(1_000_000))

    def new_upstream_commit(repo: Path) -> None:
        helper = helpers[repo]
        (helper / "upstream.txt").write_text(f"change {next(made)}\n")
        git(helper, "add", "upstream.txt")
        git(helper, "commit", "--quiet", "-m", "upstream change")
        git(helper, "push", "--quiet", "origin", "HEAD")

    def new_local_commit(repo: Path) -> None:
        git(repo, "commit", "--quiet", "--allow-empty", "-m", "to push")

    rows = []
    fetch = ["git", "fetch", "--quiet", "origin"]
    push = ["git", "push", "--quiet", "origin", "HEAD:refs/heads/pushed"]
    for label, cmd, before in (("`git fetch` of a branch, one new commit", fetch, new_upstream_commit),
                               ("`git fetch`, nothing new", fetch, None),
                               ("`git push` of a branch, one new commit", push, new_local_commit)):
        a, b = paired(cmd, runs_repo, cmd, bare, reps, before=before)
        rows.append([f"{label}, with {n:,} runs", f"{a * 1000:.1f} ms ({a / b:.2f}x)", f"{b * 1000:.1f} ms",
                     "≤ 1.10x without runs", ok(a <= 1.10 * b)])
    return rows


def two_runs(repo: Path) -> tuple[str, str]:
    """The full ids of the two newest runs of *repo* (run ids sort by their start)."""
    refs = git(repo, "for-each-ref", "--sort=-refname", "--count=2", "--format=%(refname)", "refs/experiments/")
    first, second = (ref.rpartition("/")[2] for ref in refs.split())
    return first, second


def handle_in(repo: Path, run_id: str) -> str:
    """The handle of *run_id* among the runs of *repo*, as `git exp show` prints it (untimed)."""
    out = subprocess.run([*ls_command()[:-1], "show", run_id], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith("handle"))


def ui_refresh(cmd: list[str], repo: Path, reps: int) -> float:
    """Median seconds of GET /api/runs?limit=50 (a page's table refreshing) from `git exp ui` serving
    *repo*, after a first request that reads the runs."""
    import http.client
    import signal
    from urllib.parse import urlsplit

    proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        address = next(line.strip() for line in proc.stdout if line.strip().startswith("http://"))
        where = urlsplit(address)

        def get() -> float:
            started = time.perf_counter()
            connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=120)
            connection.request("GET", "/api/runs?limit=50")
            response = connection.getresponse()
            assert response.status == 200, response.status
            response.read()
            connection.close()
            return time.perf_counter() - started

        for _ in range(60):  # the server answers once it listens
            try:
                get()
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        samples = []
        for _ in range(reps):
            time.sleep(1.2)  # past the second for which any snapshot is shared
            samples.append(get())
        return statistics.median(samples)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def median_of(cmd: list[str], cwd: Path, reps: int, before: Any = None, warmup: bool = True,
              samples: list[float] | None = None) -> float:
    """The median wall time of *reps* calls (each sample also appended to *samples*)."""
    taken = []
    for k in range(reps + (1 if warmup else 0)):
        if before:
            before(cwd)
        seconds, _ = wall(cmd, cwd)
        if k or not warmup:
            taken.append(seconds)
    if samples is not None:
        samples += taken
    return statistics.median(taken)


# -- workers: fresh processes ------------------------------------------------------------------


def worker(name: str, args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(args)],
                          capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def do_load_runs(args: dict[str, Any]) -> dict[str, Any]:
    import gitexp
    from gitexp.git.repo import Repo

    Repo.discover(args["repo"])
    t0 = time.perf_counter()
    runs = gitexp.load_runs(args["repo"])
    # The call alone, as a caller that goes on to use the runs sees it: until run 18, freeing the
    # 100,000 records (0.1 to 0.15 s) was inside the timing.
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "runs": len(runs)}


def do_runs(args: dict[str, Any]) -> dict[str, Any]:
    os.chdir(args["repo"])
    first = int(args["first"])
    make_runs((args["repo"], first, 1))  # warm-up: imports, the environment captured once
    t0 = time.perf_counter()
    make_runs((args["repo"], first + 1, int(args["n"])))
    return {"ms": (time.perf_counter() - t0) / int(args["n"]) * 1000}


def do_upkeep(args: dict[str, Any]) -> dict[str, Any]:
    from gitexp.git import refmaint, settle, shelf

    t0 = time.perf_counter()
    archived = refmaint.upkeep(Path(args["gitdir"]), min_age=0, archive=True)
    settled = settle.settled_packs(Path(args["gitdir"]) / "objects" / "pack")
    return {"seconds": time.perf_counter() - t0, "archived": archived, "settled": len(settled),
            "shelved": len(shelf.read(Path(args["gitdir"])))}


def do_live(args: dict[str, Any]) -> dict[str, Any]:
    """A run kept live (its journal ahead of its last commit) until stdin closes, as during a sweep."""
    import gitexp

    os.chdir(args["repo"])
    run = gitexp.start_run(experiment="sweep/lr", params={"lr": 0.5, "seed": 1}, system_metrics_interval=0)
    run.log_metrics({"train/loss": 1.0, "val/loss": 1.1}, step=0)
    run.checkpoint()
    run.log_metrics({"train/loss": 0.5, "val/loss": 0.55}, step=1)
    run.flush_journal()
    print("live", flush=True)
    sys.stdin.read()
    run.end()
    return {"run": run.id}


def do_small_runs(args: dict[str, Any]) -> dict[str, Any]:
    """Runs of two params and two metrics of one value each, default capture: the smallest usual run."""
    import gitexp

    os.chdir(args["repo"])
    for i in range(int(args["n"])):
        with gitexp.start_run(experiment="small", params={"lr": 10 ** -(1 + i % 4), "batch_size": 2 ** (4 + i % 4)},
                              system_metrics_interval=0) as run:
            run.log_metric("loss", 1.0 / (i + 1), step=0)
            run.log_metric("acc", 1 - 1.0 / (i + 2), step=0)
    gitexp.flush()
    return {"runs": int(args["n"])}


def small_disk(work: Path, runs: int) -> float:
    """Bytes per run of *runs* small runs (do_small_runs) in a fresh repository, after gitexp's ref
    upkeep and `git gc`, beside the same repository without them."""
    sizes = []
    for name, count in (("small-empty", 0), ("small-runs", runs)):
        repo = work / name
        repo.mkdir(parents=True)
        git(repo, "init", "-q")
        (repo / "train.py").write_text("print('training')\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "initial")
        if count:
            worker("small_runs", {"repo": str(repo), "n": count})
            wait_for_upkeep(repo / ".git")
            worker("upkeep", {"gitdir": str(repo / ".git")})
            # Again: a pass the runs' process started as it exited may not have had its command
            # line yet at the first wait, and then run beside `git gc` (run 20 measured 1.89 KB a
            # run once, where the same function gave 1.43 and 1.44 alone right after).
            wait_for_upkeep(repo / ".git")
        git(repo, "gc", "--quiet", "--prune=now")
        sizes.append(du(repo / ".git"))
    return (sizes[1] - sizes[0]) / runs


def live_listing(ls: list[str], repo: Path, reps: int) -> float:
    """The median whole-process `git exp ls` while a run is live on this machine (after one call)."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", "live", json.dumps(
        {"repo": str(repo)})], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "live", "the live run did not start"
        return median_of(ls, repo, reps)
    finally:
        proc.communicate("", timeout=120)


WORKERS = {"load_runs": do_load_runs, "runs": do_runs, "upkeep": do_upkeep, "live": do_live,
           "small_runs": do_small_runs}


# -- the benchmark -----------------------------------------------------------------------------


def mlflow_disk(runs: int, work: Path, shape: str = "fixture") -> tuple[str, float]:
    """MLflow's sqlite store's bytes per run for runs shaped as the fixture's (or *shape* "small":
    do_small_runs'), the anchor cell and the bytes: what *runs* of them add to an empty store
    (allocated size), measured in benchmarks/.venv-mlflow; issue 14's quoted 1.9 KB where that
    cannot be."""
    quoted = "1.9 KB (MLflow sqlite, quoted from issue 14: its runs, not these)", 1900.0
    if runs <= 0 or not (VENV / "bin" / "python").exists():
        return quoted
    work.mkdir(parents=True, exist_ok=True)
    log(f"MLflow: {runs:,} runs of the {shape} shape in a sqlite store (about {runs * 0.05:.0f} s)")
    try:
        empty, made = (mlflow_call(VENV / "bin" / "python", "scale_disk",
                                   {"db": str(work / f"{shape}-{name}"), "n": count, "shape": shape})
                       for name, count in (("empty.db", 0), ("runs.db", runs)))
    except RuntimeError as exc:
        log(f"MLflow failed: {exc}")
        return quoted
    per_run = (made["allocated"] - empty["allocated"]) / runs
    return f"{per_run / 1000:.2f} KB (MLflow {made['mlflow_version']} sqlite, the same runs, {runs:,} made)", per_run


def cpu_of_others() -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU seconds so far) of every process but this one."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["pid", "name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.info["pid"] != os.getpid() and times is not None:
            out[proc.info["pid"]] = (proc.info["name"] or "?", times.user + times.system)
    return out


def busiest_since(before: dict[int, tuple[str, float]]) -> str:
    """The process still running that used the most CPU since *before* (cpu_of_others; one started
    since, all it used), and how much: what shared the machine with a timed command. The command's
    own processes have ended, but for the child a `git exp` leaves writing its caches as it exits
    (after the timed part, and waited for): one named git-exp that started since is left out."""
    used = [(cpu - before.get(pid, (name, 0.0))[1], name) for pid, (name, cpu) in cpu_of_others().items()
            if pid in before or name != "git-exp"]
    seconds, name = max(used, default=(0.0, "none"))
    return f"{name} {seconds:.2f} s"


def drop_page_cache(gitdir: Path) -> int:
    """Ask the kernel to drop *gitdir*'s files from the page cache (clean pages only: no root
    needed, unlike /proc/sys/vm/drop_caches); how many files were asked. git's mmap faults then
    bring them back page by page, as a user's long-written packs are held: freshly written files
    sit in the writer's large folios, which the kernel maps more cheaply."""
    asked = 0
    for folder, _, files in os.walk(gitdir):
        for name in files:
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                asked += 1
            finally:
                os.close(fd)
    return asked


def pack_files(gitdir: Path) -> str:
    """What every git command that looks an object up searches: the packs (and their objects), loose objects."""
    from gitexp.git import packindex

    folder = gitdir / "objects" / "pack"
    counts = []
    for idx in sorted(folder.glob("*.idx"), key=lambda path: -path.stat().st_size):
        objects = packindex.object_count(folder, idx.stem)  # (its fan-out alone, not a 35 MB index read whole)
        counts.append(f"{objects:,}" + (" settled" if idx.with_suffix(".keep").exists() else ""))
    loose = sum(len(os.listdir(d)) for d in (gitdir / "objects").glob("[0-9a-f][0-9a-f]"))
    return f"{len(counts)} pack(s) of {', '.join(counts)} objects, {loose:,} loose objects"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=7, help="calls per timed figure")
    # The user's git commands take milliseconds, and this machine's jitter between two calls is of
    # the tenths of a millisecond that the goals are about: ten calls each made two runs of the
    # table differ by 0.1x in a row.
    parser.add_argument("--git-reps", type=int, default=60, help="calls per git row, in each repository")
    parser.add_argument("--creation-rounds", type=int, default=5, help="rounds of 200 runs made at each size")
    parser.add_argument("--no-upkeep", action="store_true", help="measure the repository as the fixture left it")
    parser.add_argument("--no-before", action="store_true", help="skip the two figures before upkeep")
    parser.add_argument("--mlflow-runs", type=int, default=1000,
                        help="runs made in MLflow's sqlite store for its disk per run (0: quote issue 14's)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker[0]](json.loads(args.worker[1]))))
        return 0

    started = time.perf_counter()
    rows: list[list[str]] = []
    notes: list[str] = []
    pace_before = machine_pace()
    reps = args.reps
    with tempfile.TemporaryDirectory(prefix="gitexp-scale-bench-") as tmp:
        work = Path(tmp)
        isolate(work / "home")
        fixture, info = cached_scale_fixture(args.runs)
        small, _ = cached_scale_fixture(1000)
        n = info["runs"]
        log("copying the fixture")
        runs_repo = copy(fixture, work / "with-runs")
        bare = copy(fixture, work / "without-runs")
        strip_runs(bare)
        if not args.no_upkeep and not args.no_before:
            # The repository as the fixture left it (every run's reflog a file), before gitexp's
            # upkeep: its disk and one `git gc` (which then expires the reflogs, file by file).
            log("before upkeep: disk and one git gc")
            before = copy(fixture, work / "before")
            size = du(before / ".git")
            rows.append([f"before upkeep: disk per run (.git {size / 2**20:,.0f} MiB, "
                         f"{du(before / '.git' / 'logs') / 2**20:,.0f} MiB of it reflogs)", f"{size / n / 1000:.2f} KB",
                         "1.9 KB (MLflow sqlite, issue 14)", "≤ MLflow's sqlite store", ok(size / n <= 1900)])
            gc_before, _ = wall(["git", "gc", "--quiet"], before)
            gc_bare, _ = wall(["git", "gc", "--quiet"], bare)
            rows.append([f"before upkeep: `git gc` with {n:,} runs (once)", secs(gc_before), secs(gc_bare), "≤ 5 s",
                         ok(gc_before <= 5)])
            shutil.rmtree(before)
        if not args.no_upkeep:
            up = worker("upkeep", {"gitdir": str(runs_repo / ".git")})
            notes.append(f"ref upkeep on the copy (git pack-refs, {up['archived']:,} reflogs archived, "
                         f"{up['shelved']:,} runs on the run shelf, run objects settled into {up['settled']} kept "
                         f"pack(s)): {up['seconds']:.1f} s, once")
        gitdir = runs_repo / ".git"

        # Disk first, before anything adds to it.
        total = du(gitdir)
        parts = {name: du(gitdir / name) for name in ("objects", "logs", "gitexp/cache", "gitexp/reflogs")}
        parts["packed-refs"] = du(gitdir / "packed-refs")
        mlflow, mlflow_per_run = mlflow_disk(args.mlflow_runs, work / "mlflow")
        per_run = total / n
        rows.append([f"disk per run (.git {total / 2**20:,.0f} MiB / {n:,} runs)", f"{per_run / 1000:.2f} KB",
                     mlflow, "≤ MLflow's sqlite store", ok(per_run <= mlflow_per_run)])
        # Issue 14's 1.9 KB was MLflow's for its own runs; the smallest usual run, both sides.
        tiny = small_disk(work, args.mlflow_runs or 1000)
        mlflow, mlflow_per_run = mlflow_disk(args.mlflow_runs, work / "mlflow", "small")
        rows.append([f"disk per run, runs of 2 params and 2 values ({args.mlflow_runs or 1000:,} made here)",
                     f"{tiny / 1000:.2f} KB", mlflow, "≤ MLflow's sqlite store", ok(tiny <= mlflow_per_run)])
        notes.append("disk: " + ", ".join(f"{k} {v / 2**20:,.1f} MiB" for k, v in parts.items())
                     + f"; the repository without runs: {du(bare / '.git') / 2**20:,.1f} MiB")

        ls = ls_command()
        cache = gitdir / "gitexp" / "cache"

        def drop_cache(_: Path) -> None:
            shutil.rmtree(cache, ignore_errors=True)

        log("git exp ls")
        waited, colds, besides = len(bench_core.cache_writes), [], []
        for _ in range(max(5, reps // 2)):
            drop_cache(runs_repo)
            before_call, read_before = cpu_of_others(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock
            colds.append(wall(ls, runs_repo)[0])
            # (What the kernel had to read from disk: the pack's pages that left the page cache.)
            read = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock - read_before) * 512 / 2**20
            besides.append(f"{read:,.0f} MiB read from disk; busiest other process {busiest_since(before_call)}")
        cold = statistics.median(colds)
        notes.append("cold `git exp ls`, each call: "
                     + ", ".join(f"{t:.2f} s ({other})" for t, other in zip(colds, besides, strict=True)))
        rows.append(["`git exp ls`, whole process, cold (gitexp's cache deleted)", secs(cold), "", "≤ 5 s",
                     ok(cold <= 5)])
        # (Not the user's wait: the prompt is back. Its CPU is what a command typed at once shares.)
        rows.append(["  then its child writing the caches, after the process ended",
                     secs(statistics.median(bench_core.cache_writes[waited:])), "", "(none)", ""])
        warm = median_of(ls, runs_repo, reps)
        rows.append(["`git exp ls`, whole process, warm", secs(warm), "", "≤ 1 s", ok(warm <= 1)])
        # A sweep goes on while its user lists it: 10 runs more before each listing (the listing
        # kept by the last one is brought up to date), then the same listing again.
        after_new, again = [], []
        for k in range(reps):
            worker("runs", {"repo": str(runs_repo), "first": 30_000_000 + k * 100, "n": 10})
            after_new.append(wall(ls, runs_repo)[0])
            again.append(wall(ls, runs_repo)[0])
        rows.append(["`git exp ls`, whole process, after 10 new runs", secs(statistics.median(after_new)),
                     f"{secs(statistics.median(again))} listing again", "(none)", ""])
        live = live_listing(ls, runs_repo, reps)
        rows.append(["`git exp ls`, whole process, a run live on this machine", secs(live), "", "(none)", ""])
        query = [*ls, "--where", "params.lr < 0.01 and metrics.val/acc.max > 0.5", "--sort", "-metrics.val/acc"]
        shown = subprocess.run(query, cwd=runs_repo, capture_output=True, text=True, check=True).stdout
        where = median_of(query, runs_repo, reps)
        rows.append([f"`git exp ls --where … --sort …`, warm ({shown.count(chr(10)) - 2:,} runs match)", secs(where),
                     "", "≤ 0.5 s", ok(where <= 0.5)])
        top = median_of([*query, "-n", "20"], runs_repo, reps)
        rows.append(["the same query, `-n 20`", secs(top), "", "(none)", ""])
        newest = median_of([*ls, "-n", "20"], runs_repo, reps)
        rows.append(["`git exp ls -n 20`, warm (the 20 newest runs)", secs(newest), "", "(none)", ""])
        loads = [worker("load_runs", {"repo": str(runs_repo)}) for _ in range(reps)]
        load = statistics.median(r["seconds"] for r in loads)
        rows.append([f"`load_runs()`, warm, in-process ({loads[0]['runs']:,} runs)", secs(load), "", "≤ 0.3 s",
                     ok(load <= 0.3)])

        log("everyday commands at 1,000 runs and at the fixture's size")
        small_repo = copy(small, work / "small")
        for label, args_of in (("show RUN", lambda r, a, b: ["show", a]),
                               ("show HANDLE", lambda r, a, b: ["show", handle_in(r, a)]),
                               ("diff A B", lambda r, a, b: ["diff", a, b]),
                               ("compare A B", lambda r, a, b: ["compare", a, b]),
                               ("log RUN", lambda r, a, b: ["log", a]),
                               ("plot val/acc A B -o F.png", lambda r, a, b: ["plot", "val/acc", a, b, "-o",
                                                                              str(work / "plot.png")]),
                               # The same two runs picked by a filter, and the best of all runs.
                               ("compare --where \"id = 'A' or id = 'B'\"",
                                lambda r, a, b: ["compare", "--where", f"id = '{a}' or id = '{b}'"]),
                               ("plot val/acc --where \"id = 'A' or id = 'B'\" -o F.png",
                                lambda r, a, b: ["plot", "val/acc", "--where", f"id = '{a}' or id = '{b}'", "-o",
                                                 str(work / "plot.png")]),
                               ("best val/acc", lambda r, a, b: ["best", "val/acc"])):
            big_cmd, small_cmd = ([*ls[:-1], *args_of(r, *two_runs(r))] for r in (runs_repo, small_repo))
            at_big, at_small = paired(big_cmd, runs_repo, small_cmd, small_repo, reps)
            rows.append([f"`git exp {label}` (whole process) at {n:,} runs",
                         f"{secs(at_big)} ({at_big / at_small:.1f}x)", f"{secs(at_small)} at 1,000 runs", "(none)", ""])
        at_big, at_small = (ui_refresh([*ls[:-1], "ui", "--port", "0"], r, reps) for r in (runs_repo, small_repo))
        rows.append([f"`git exp ui`: /api/runs?limit=50 again, nothing changed, at {n:,} runs",
                     f"{secs(at_big)} ({at_big / at_small:.1f}x)", f"{secs(at_small)} at 1,000 runs", "(none)", ""])

        wait_for_upkeep(gitdir)
        notes.append(f"the copy at the git rows: {pack_files(gitdir)}; without runs: {pack_files(bare / '.git')}")
        log("git commands, with and without runs")
        git_reps = args.git_reps
        oneline = ["git", "log", "--oneline", "--decorate", "-20"]
        # The copies' packs are in the page cache as their writer (cp, git pack-objects) left them;
        # a user's, after a reboot or memory pressure, as git's reads bring them back, which costs
        # `--oneline`'s short-hash search more (see the notes): this row in the writer's state,
        # then every row after both copies' files are dropped from the page cache.
        a, b = paired(oneline, runs_repo, oneline, bare, git_reps)
        rows.append([f"`git log --oneline --decorate -20` with {n:,} runs, packs as just written",
                     f"{a * 1000:.1f} ms ({a / b:.2f}x)", f"{b * 1000:.1f} ms", "(none)", ""])
        dropped = sum(drop_page_cache(gitdir_) for gitdir_ in (gitdir, bare / ".git"))
        notes.append(f"before the git rows, {dropped:,} files of both copies' git dirs dropped from the page cache "
                     "(posix_fadvise DONTNEED); the untimed first round of the first row reads them back")
        for label, cmd in (("git status", ["git", "status"]), ("git log -20", ["git", "log", "-20"]),
                           ("git log --decorate -20", ["git", "log", "--decorate", "-20"]),
                           ("git log --oneline --decorate -20", oneline),
                           ("git log --oneline --decorate -20, log.excludeDecoration=refs/experiments/",
                            ["git", "-c", "log.excludeDecoration=refs/experiments/", "log", "--oneline", "--decorate",
                             "-20"]),
                           ("git branch", ["git", "branch"]), ("git gc --auto", ["git", "gc", "--auto"]),
                           ("git commit", ["git", "commit", "-q", "--allow-empty", "-m", "bench"])):
            a, b = paired(cmd, runs_repo, cmd, bare, git_reps)
            rows.append([f"`{label}` with {n:,} runs", f"{a * 1000:.1f} ms ({a / b:.2f}x)", f"{b * 1000:.1f} ms",
                         "≤ 1.10x without runs", ok(a <= 1.10 * b)])
        rows.extend(branch_sharing(runs_repo, bare, work, n, git_reps))

        log("run creation at 1,000 and at the fixture's size")
        at_small, at_big = [], []
        for k in range(args.creation_rounds):
            # Each round's process starts an archiving pass as it exits (reflogs.EXIT_FROM): waited for,
            # so that a round measures its own runs, not the other repository's pass beside them.
            # Which repository goes first alternates: run creation slows through a session on this
            # machine's file system (a new file costs 0.02 to 0.7 ms, more as files come and go, in
            # both repositories alike), and the later side of each round would always pay for it.
            sides = [(small_repo, at_small, 10_000_000), (runs_repo, at_big, 20_000_000)]
            for repo, out, first in sides if k % 2 == 0 else sides[::-1]:
                out.append(worker("runs", {"repo": str(repo), "first": first + k * 1000, "n": 200})["ms"])
                wait_for_upkeep(repo / ".git")
        s, b = statistics.median(at_small), statistics.median(at_big)
        rows.append([f"run creation, ms/run at {n:,} runs (200 runs x {args.creation_rounds} rounds)",
                     f"{b:.2f} ms ({b / s:.2f}x)", f"{s:.2f} ms at 1,000 runs", "no slower (≤ 1.10x)",
                     ok(b <= 1.10 * s)])
        notes.append("run creation rounds (1,000 / fixture ms): "
                     + ", ".join(f"{x:.2f} / {y:.2f}" for x, y in zip(at_small, at_big, strict=True)))

        wait_for_upkeep(gitdir)
        log("git gc, with and without runs (twice each)")
        gc_a, gc_b = paired(["git", "gc", "--quiet"], runs_repo, ["git", "gc", "--quiet"], bare, 2)
        rows.append([f"`git gc` with {n:,} runs", secs(gc_a), secs(gc_b), "≤ 5 s", ok(gc_a <= 5)])

    from tabulate import tabulate

    print(tabulate(rows, headers=["figure", "gitexp", "anchor", "goal", "ok?"], tablefmt="github",
                   disable_numparse=True))
    print()
    print(f"fixture: {n:,} runs built {info['built']} by {info['gitexp']} in {info['build_s']:.0f} s; "
          f"{'as the fixture left it (--no-upkeep)' if args.no_upkeep else 'after gitexp ref upkeep'}; "
          f"measured with gitexp {source_state()} from {ROOT}; {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; total {time.perf_counter() - started:.0f} s")
    notes.append(f"machine pace (machine_pace, a fixed Python workload): {pace_before:.0f} ms at the start, "
                 f"{machine_pace():.0f} ms at the end")
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
