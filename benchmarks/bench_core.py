#!/usr/bin/env python
"""Core performance benchmarks of gitexp, with MLflow as an anchor.

    python benchmarks/bench_core.py            # full: ~3 minutes once fixtures exist (~20 the first time)
    python benchmarks/bench_core.py --quick    # smaller counts: ~1.5 minutes once fixtures exist

Prints one table: benchmark | gitexp | MLflow (anchor) | target | ok?

Everything runs against real git repositories in a temporary directory, with HOME pointed at
a temporary directory and git's system config ignored, so the user's configuration plays no part.
Each measurement runs in a fresh process (this script re-invoked with --worker), so runs,
threads and caches of one benchmark cannot leak into another.

MLflow is not a dependency of gitexp: it lives in its own virtualenv, benchmarks/.venv-mlflow
(created on first use), and its half of each benchmark is benchmarks/mlflow_side.py, run by
that virtualenv's python. If MLflow cannot be installed the anchor column says n/a.

The 10,000-run fixtures (gitexp repository, MLflow sqlite database) take minutes to build and
are cached under benchmarks/.cache/, keyed by a version string; delete that folder to rebuild.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-mlflow"
CACHE = HERE / ".cache"
MLFLOW_SIDE = HERE / "mlflow_side.py"
MLFLOW_REQUIREMENT = "mlflow>=3,<4"
GITEXP_FIXTURE_VERSION = "3"  # bump when a fixture's content or build changes
MLFLOW_FIXTURE_VERSION = "1"

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Bench Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Bench Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_TERMINAL_PROMPT": "0",
    # MLflow 3 sends usage telemetry from a background thread; this machine has no network for it.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # MLflow >= 3.? refuses file: tracking URIs ("maintenance mode") without this opt-out; the
    # benchmark probes and reports that, then opts out to measure the file store as asked.
    "MLFLOW_ALLOW_FILE_STORE": "true",
}

FULL = {"log_calls": 100_000, "batch": 1000, "mlflow_log_calls": 2000, "runs": 200, "runs_rounds": 3, "import_reps": 7,
        "ls_runs": 100, "ls_reps": 5, "big_runs": 10_000, "big_reps": 5, "mlflow_fallback": 2000,
        "mlflow_budget_s": 240.0}
QUICK = {"log_calls": 20_000, "batch": 1000, "mlflow_log_calls": 300, "runs": 20, "runs_rounds": 1, "import_reps": 3,
         "ls_runs": 100, "ls_reps": 3, "big_runs": 1000, "big_reps": 1, "mlflow_fallback": 500,
         "mlflow_budget_s": 60.0}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- isolation and helpers ---------------------------------------------------------------------


def isolate(home: Path) -> None:
    """Point this process (and so every child) at a throwaway HOME and git identity."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    os.environ.update(GIT_ENV)
    # Measure both tools with compiled bytecode, as after a normal install: this machine sets
    # PYTHONDONTWRITEBYTECODE=1, which would recompile gitexp (an editable install without
    # __pycache__) in every process. The .pyc files go to benchmarks/.cache/pycache.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    for key in ("GITEXP_EXPERIMENT", "GITEXP_RUN_ID", "GITEXP_REPO", "GITEXP_PARAMS", "GIT_DIR",
                "GIT_WORK_TREE", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(key, None)


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


CODE_FILES = {
    "train.py": "import model, data\n\nfor epoch in range(10):\n    print('epoch', epoch)\n",
    "model.py": "class Net:\n    layers = 4\n    width = 128\n" + "# padding\n" * 40,
    "data.py": "def load(path):\n    return open(path).read()\n" + "# padding\n" * 60,
    "utils/__init__.py": "",
    "utils/metrics.py": "def accuracy(a, b):\n    return sum(x == y for x, y in zip(a, b)) / len(a)\n",
    "utils/schedule.py": "def cosine(step, total):\n    return 0.5\n" * 10,
    "configs/base.yaml": "lr: 0.01\nbatch_size: 32\nmodel:\n  layers: 4\n  width: 128\n",
    "configs/large.yaml": "lr: 0.001\nbatch_size: 256\nmodel:\n  layers: 12\n  width: 768\n",
    "requirements.txt": "numpy\ntorch\n",
    "README.md": "# A small training project\n\n" + "Some words about it.\n" * 30,
    ".gitignore": "*.ckpt\n__pycache__/\n",
}


def make_code_repo(path: Path, dirty: bool = True) -> Path:
    """A small ML project with one commit; *dirty*: one edited file and one new file, as mid-work."""
    for name, text in CODE_FILES.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    if dirty:
        (path / "model.py").write_text(CODE_FILES["model.py"].replace("width = 128", "width = 256"))
        (path / "notes.txt").write_text("try a wider model\n")
    return path


def parse_result(stdout: str, what: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{what} printed no RESULT line; its output ended with:\n{stdout[-2000:]}")


def run_json(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    result = parse_result(proc.stdout, what)
    result["stderr"] = proc.stderr[-3000:]
    return result


def gitexp_worker(name: str, args: dict[str, Any], cwd: Path | None = None) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(args)]
    return run_json(argv, f"gitexp worker {name}", cwd=cwd)


def wall(argv: list[str], cwd: Path | None = None, check: bool = True) -> tuple[float, float]:
    """(wall time, user+sys CPU time) of a whole process, output discarded (but checked)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if cwd is not None:
        wait_for_cache_writer(cwd)
    return elapsed, cpu


cache_writes: list[float] = []  # seconds each child left by `git exp` wrote caches after the command ended


def wait_for_cache_writer(repo: Path) -> None:
    """Wait (untimed) for the child that a `git exp` command in *repo* may have left writing its caches
    (gitexp/store/cachefile.py, detach): the next figure must not share the CPU with it, nor a cold
    one find the caches it writes. The seconds waited go to cache_writes."""
    from gitexp.store import cachefile

    for folder in (repo / ".git" / "gitexp" / "cache", repo / "gitexp" / "cache"):
        if folder.parent.is_dir():
            t0 = time.perf_counter()
            cachefile.wait_detached(folder)
            cache_writes.append(time.perf_counter() - t0)


def median_wall(argv: list[str], reps: int, cwd: Path | None = None, warmup: int = 1) -> tuple[float, float]:
    """Median wall time and median CPU time of *reps* runs, after *warmup* untimed ones."""
    for _ in range(warmup):
        wall(argv, cwd)
    samples = [wall(argv, cwd) for _ in range(reps)]
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def paired_medians(argv_a: list[str], argv_b: list[str], reps: int, cwd: Path | None = None,
                   warmup: int = 1) -> tuple[float, float]:
    """Median wall times of a and b, run alternately so both see the same machine load."""
    for _ in range(warmup):
        wall(argv_a, cwd)
        wall(argv_b, cwd)
    a, b = [], []
    for _ in range(reps):
        a.append(wall(argv_a, cwd)[0])
        b.append(wall(argv_b, cwd)[0])
    return statistics.median(a), statistics.median(b)


def gitexp_version_key() -> str:
    """Fixture cache key: changes with gitexp's version and its on-disk format code."""
    from importlib import metadata

    spec = importlib.util.find_spec("gitexp")
    digest = hashlib.sha1()
    if spec is not None and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        # What decides the bytes of a fixture: the run store and the git layer (the whole of each,
        # so a module split or added there changes the key too).
        for source in sorted([*package.glob("store/*.py"), *package.glob("git/*.py")]):
            digest.update(source.read_bytes())
    return f"v{GITEXP_FIXTURE_VERSION}-gitexp{metadata.version('gitexp')}-{digest.hexdigest()[:10]}"


# -- the MLflow virtualenv ---------------------------------------------------------------------


def ensure_mlflow(allow_install: bool) -> tuple[Path | None, str]:
    """(python of the MLflow venv, version) or (None, why not)."""
    python = VENV / "bin" / "python"
    if not python.exists() and allow_install:
        log(f"creating {VENV} and installing {MLFLOW_REQUIREMENT} (a few minutes, once)")
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True,
                           timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "-q", MLFLOW_REQUIREMENT], check=True,
                           capture_output=True, timeout=1800)
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            return None, f"installing MLflow failed: {exc} {detail.decode(errors='replace')[-500:]}"
    if not python.exists():
        return None, f"no MLflow virtualenv at {VENV}"
    proc = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                          capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        return None, f"`import mlflow` fails in {VENV}: {proc.stderr.strip()[-500:]}"
    return python, proc.stdout.strip()


def mlflow_call(python: Path, command: str, args: dict[str, Any], cwd: Path | None = None,
                timeout: float = 1800) -> dict[str, Any]:
    return run_json([str(python), str(MLFLOW_SIDE), command, json.dumps(args)], f"mlflow {command}", cwd=cwd,
                    timeout=timeout)


# -- gitexp workers (run in fresh processes) ---------------------------------------------------


def worker_log_metric(args: dict[str, Any]) -> dict[str, Any]:
    import gitexp

    n, batch = int(args["n"]), int(args["batch"])
    run = gitexp.start_run(name="bench-log-metric")  # default settings: flusher every 1 s
    log_metric = run.log_metric
    per_call = []
    for b in range(n // batch):
        lo = b * batch
        t0 = time.perf_counter_ns()
        for i in range(lo, lo + batch):
            log_metric("loss", float(i), step=i)
        per_call.append((time.perf_counter_ns() - t0) / batch / 1000)
    t0 = time.perf_counter()
    run.end()
    end_s = time.perf_counter() - t0
    per_call.sort()
    return {"median_us": statistics.median(per_call), "min_us": per_call[0],
            "p90_us": per_call[int(len(per_call) * 0.9)], "max_us": per_call[-1], "end_s": end_s}


def _gitexp_run(gitexp: Any, i: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    run = gitexp.start_run(params={"lr": 0.01, "batch_size": 32})
    t1 = time.perf_counter()
    run.log_metric("loss", 0.5, step=0)
    run.log_metric("acc", 0.9, step=0)
    t2 = time.perf_counter()
    run.end()
    return t1 - t0, time.perf_counter() - t2


def worker_runs(args: dict[str, Any]) -> dict[str, Any]:
    import gitexp

    _gitexp_run(gitexp, -1)  # warm-up: imports, the one-off environment capture
    n = int(args["n"])
    starts, ends = [], []
    t0 = time.perf_counter()
    for i in range(n):
        start, end = _gitexp_run(gitexp, i)
        starts.append(start)
        ends.append(end)
    gitexp.flush()  # the notes still queued: their cost belongs to these runs
    elapsed = time.perf_counter() - t0
    return {"mean_ms": elapsed / n * 1000, "start_ms": statistics.fmean(starts) * 1000,
            "end_ms": statistics.fmean(ends) * 1000, "n": n}


def worker_load_runs(args: dict[str, Any]) -> dict[str, Any]:
    repo = Path(args["repo"])
    if args.get("cold"):
        shutil.rmtree(repo / ".git" / "gitexp" / "cache", ignore_errors=True)
    import gitexp
    from gitexp.git.repo import Repo  # imported before timing: the call is what is measured

    Repo.discover(repo)
    t0 = time.perf_counter()
    records = gitexp.load_runs(repo)
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "runs": len(records)}


def make_runs(job: tuple[str, int, int]) -> tuple[int, int]:
    """Fixture builder (multiprocessing worker): *count* runs through the real API, cheap capture.

    Returns (runs made, start_run failures retried). A failed start_run is retried (up to 5
    times) so that one flaky write does not cost a 10-minute fixture; failures are reported.
    """
    repo, first, count = job
    import gitexp
    from gitexp.errors import GitexpError

    failures = 0
    for i in range(first, first + count):
        params = {"lr": 10 ** -(1 + i % 4), "batch_size": 2 ** (4 + i % 4), "seed": i,
                  "model": {"layers": 2 + i % 6, "width": 64 * (1 + i % 3)}}
        for attempt in range(5):
            try:
                run = gitexp.start_run(experiment=f"exp{i % 5}", params=params, repo=repo, capture_env=False,
                                       capture_code=False, system_metrics_interval=0)
                break
            except GitexpError as exc:
                failures += 1
                print(f"start_run failed (attempt {attempt + 1}): {exc}", file=sys.stderr, flush=True)
                if attempt == 4:
                    raise
                time.sleep(0.1)
        with run:
            for step in range(10):
                run.log_metric("loss", 1.0 / (step + 1) + i * 1e-6, step=step)
                run.log_metric("acc", step / 10 + i * 1e-6, step=step)
    gitexp.flush()  # a pool worker may end without atexit: write the batch of notes now
    return count, failures


WORKERS = {"log_metric": worker_log_metric, "runs": worker_runs, "load_runs": worker_load_runs}


# -- fixtures ----------------------------------------------------------------------------------


def pack_count(repo: Path) -> int:
    pack_dir = repo / ".git" / "objects" / "pack"
    return sum(name.endswith(".idx") for name in os.listdir(pack_dir)) if pack_dir.is_dir() else 0


def wait_for_gc(repo: Path, limit_s: float = 600) -> None:
    """Wait while a `git gc` (one git started itself, `git gc --auto`) holds gc.pid."""
    deadline = time.monotonic() + limit_s
    while (repo / ".git" / "gc.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def wait_for_upkeep(gitdir: Path) -> None:
    """Wait until no background ref upkeep (`python -m gitexp.git.refmaint <gitdir> [--archive]`,
    started by the runs just made) is running on *gitdir*: it moves objects and reflogs that a
    figure measures."""
    import psutil

    target = gitdir.resolve()
    while True:
        busy = False
        for proc in psutil.process_iter(["cmdline"]):
            line = proc.info["cmdline"] or []
            if "gitexp.git.refmaint" in line:
                after = line[line.index("gitexp.git.refmaint") + 1:]
                busy = busy or any(not arg.startswith("-") and Path(arg).resolve() == target for arg in after)
        if not busy:
            return
        time.sleep(0.2)


def run_refs(gitdir: Path) -> dict[str, str]:
    """Every run of the repository at *gitdir* (ref -> commit): its run refs and its shelved runs."""
    from gitexp.git import shelf

    out = shelf.read(gitdir)
    listed = git(gitdir, "for-each-ref", "--format=%(refname) %(objectname)", "refs/experiments/")
    return {**out, **dict(line.split(" ") for line in listed.splitlines())}


def unshelve_to_refs(gitdir: Path) -> int:
    """Give every shelved run of *gitdir* a ref again and drop the shelf's ref (packed refs after):
    a remote as `git exp push` fills it, where each run is a ref, and a repository plain git can
    push every run from by refspec. Returns the number of runs."""
    from gitexp.git import shelf

    shelved = shelf.read(gitdir)
    listed = set(git(gitdir, "for-each-ref", "--format=%(refname)", "refs/experiments/").split())
    lines = "".join(f"create {ref} {commit}\n" for ref, commit in shelved.items() if ref not in listed)
    subprocess.run(["git", "update-ref", "--stdin"], cwd=gitdir, input=lines.encode(), check=True,
                   capture_output=True)
    if shelved:
        git(gitdir, "update-ref", "-d", "refs/experiments-shelf")
    git(gitdir, "pack-refs", "--all")
    return len(listed | set(shelved))


def build_gitexp_runs(repo: Path, n: int, processes: int = 2, maintained: bool = False) -> dict[str, Any]:
    """*n* runs through the real API from *processes* processes; returns build statistics.

    Plain (*maintained* False): the repository is what gitexp leaves behind, including the
    packs it merged as it wrote.

    *maintained*: for the big fixtures. gitexp writes a pack per commit and merges its own packs
    as it goes (keeping 32 to 64); every object lookup still costs more with each pack, so the
    build runs in rounds with `git repack --geometric=2 -d` between them (no writer running then;
    gc.autoPackLimit=0 keeps a git gc --auto of the user's git out of the way meanwhile), and at
    the end the repository gets one `git gc` (one pack, packed refs). Run notes
    (refs/notes/experiments, derived data that load_runs never reads) are switched off too
    (exp.notes=false): every run of the fixture starts from the same code commit, whose single
    note gets one line per run and is rewritten whole by every run, so with notes the build is
    quadratic (about 30 minutes instead of 3 for 10,000 runs).
    """
    chunk = max(1, min(25 if maintained else 100, n // (processes * 4) or 1))
    jobs = [(str(repo), first, min(chunk, n - first)) for first in range(0, n, chunk)]
    round_size = processes if maintained else len(jobs)
    if maintained:
        git(repo, "config", "gc.autoPackLimit", "0")
        git(repo, "config", "exp.notes", "false")
    t0 = time.perf_counter()
    done = failures = 0
    next_report = n // 10
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for start in range(0, len(jobs), round_size):
            for count, failed in pool.imap_unordered(make_runs, jobs[start:start + round_size]):
                done += count
                failures += failed
            if maintained:
                # The runs' background upkeep folds small packs: a pack it removes under `git repack`
                # failed the build ("cannot open index for ...pack"). A plain repack takes no gc.pid
                # for gitexp to see, so the build waits for it.
                wait_for_upkeep(repo / ".git")
                git(repo, "repack", "--geometric=2", "-d", "-q")
            if n >= 1000 and done >= next_report:
                next_report += n // 10
                log(f"  gitexp fixture: {done}/{n} runs, {pack_count(repo)} packs, "
                    f"{time.perf_counter() - t0:.0f} s")
    wait_for_gc(repo)
    if maintained:
        git(repo, "config", "--unset", "gc.autoPackLimit")
        git(repo, "config", "--unset", "exp.notes")
        git(repo, "gc", "--quiet")
    return {"build_s": time.perf_counter() - t0, "start_failures": failures, "packs": pack_count(repo)}


def cached_gitexp_fixture(n: int) -> tuple[Path, dict[str, Any]]:
    key = f"gitexp-{gitexp_version_key()}-{n}"
    final = CACHE / key
    if (final / "fixture.json").exists():
        return final / "repo", json.loads((final / "fixture.json").read_text())
    log(f"building the gitexp fixture of {n} runs (cached in {final})")
    tmp = CACHE / f"tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    repo = make_code_repo(tmp / "repo", dirty=False)
    stats = build_gitexp_runs(repo, n, maintained=True)
    info = {"runs": n, **stats, "built": time.strftime("%Y-%m-%d %H:%M:%S")}
    (tmp / "fixture.json").write_text(json.dumps(info))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for stale in CACHE.glob(f"gitexp-v*-{n}"):  # fixtures of older gitexp versions: hundreds of MB
        if stale != final:
            shutil.rmtree(stale, ignore_errors=True)
    return final / "repo", info


def cached_mlflow_fixture(python: Path, version: str, n: int, fallback: int,
                          budget_s: float) -> tuple[str, dict[str, Any]]:
    key = f"mlflow-sqlite-v{MLFLOW_FIXTURE_VERSION}-mlflow{version}-{n}"
    final = CACHE / key
    uri = f"sqlite:///{final / 'mlflow.db'}"
    if (final / "fixture.json").exists():
        return uri, json.loads((final / "fixture.json").read_text())
    log(f"building the MLflow sqlite fixture of {n} runs (falls back to {fallback} if slow; cached in {final})")
    tmp = CACHE / f"tmp-{key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    result = mlflow_call(python, "populate", {"uri": f"sqlite:///{tmp / 'mlflow.db'}", "n": n,
                                              "fallback": fallback, "budget_s": budget_s}, cwd=tmp)
    info = {"runs": result["created"], "requested": n, "build_s": result["seconds"],
            "built": time.strftime("%Y-%m-%d %H:%M:%S")}
    (tmp / "fixture.json").write_text(json.dumps(info))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return uri, info


# -- formatting --------------------------------------------------------------------------------


def secs(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def net_secs(value: float) -> str:
    """A difference of two noisy medians: below 5 ms it is indistinguishable from zero."""
    return secs(value) if value >= 0.005 else "< 0.005 s"


def ok(flag: bool | None) -> str:
    return "?" if flag is None else ("yes" if flag else "NO")


def error_cell(exc: BaseException) -> str:
    return f"error: {str(exc).strip().splitlines()[0][:60] if str(exc).strip() else type(exc).__name__}"


# -- the benchmarks ----------------------------------------------------------------------------


class Bench:
    def __init__(self, cfg: dict[str, Any], work: Path, mlflow_python: Path | None, mlflow_version: str) -> None:
        self.cfg = cfg
        self.work = work
        self.mlflow = mlflow_python
        self.mlflow_version = mlflow_version
        self.rows: list[list[str]] = []
        self.notes: list[str] = []
        self.data: dict[str, Any] = {}

    def anchor(self, fn: Any) -> tuple[str, Any]:
        """Run an MLflow measurement; ("n/a", None) without MLflow, ("error: ...", None) on failure."""
        if self.mlflow is None:
            return "n/a", None
        try:
            return fn()
        except Exception as exc:
            log(f"MLflow side failed: {exc}")
            self.notes.append(f"MLflow error: {str(exc).strip()[-300:]}")
            return error_cell(exc), None

    def mlflow_warnings(self, result: dict[str, Any], what: str) -> None:
        for text in result.get("warnings", []):
            note = f"MLflow warning ({what}): {text[:300]}"
            if note not in self.notes:
                self.notes.append(note)
        for line in result.get("stderr", "").splitlines():
            if "deprecat" in line.lower():
                note = f"MLflow stderr ({what}): {line.strip()[:300]}"
                if note not in self.notes:
                    self.notes.append(note)

    def guarded(self, label: str, target: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            traceback.print_exc()
            self.rows.append([label, error_cell(exc), "", target, "?"])

    # 1 ------------------------------------------------------------------------------------
    def log_metric(self) -> None:
        cfg = self.cfg
        label = f"log_metric, median µs/call ({cfg['log_calls']:,} calls, flusher running)"
        log(label)
        repo = make_code_repo(self.work / "r1")
        res = gitexp_worker("log_metric", {"n": cfg["log_calls"], "batch": cfg["batch"]}, cwd=repo)
        self.data["log_metric"] = res
        median = res["median_us"]
        self.notes.append(f"log_metric spread over {cfg['log_calls'] // cfg['batch']} batches of {cfg['batch']}: "
                          f"min {res['min_us']:.2f} / p90 {res['p90_us']:.2f} / max {res['max_us']:.2f} µs; "
                          f"end() of that {cfg['log_calls']:,}-point run took {res['end_s']:.2f} s")

        def mlflow_side() -> tuple[str, Any]:
            probe = mlflow_call(self.mlflow, "probe_file_store", {"uri": "file:" + str(self.work / "probe")})
            if probe["refused"]:
                self.notes.append(f"MLflow {self.mlflow_version} refuses the file store by default "
                                  f"({probe['message'][:160]}...); measured with MLFLOW_ALLOW_FILE_STORE=true")
            mrepo = make_code_repo(self.work / "r1m")
            out = mlflow_call(self.mlflow, "log_metric", {"uri": "file:" + str(self.work / "mlruns1"),
                                                          "n": cfg["mlflow_log_calls"]}, cwd=mrepo)
            self.mlflow_warnings(out, "file store")
            self.data["mlflow_log_metric"] = out
            return f"{out['median_us']:,.0f} µs (file store, {out['n']:,} calls)", out

        anchor, _ = self.anchor(mlflow_side)
        self.rows.append([label, f"{median:.2f} µs", anchor, "≤ 3 µs", ok(median <= 3)])

    # 2 ------------------------------------------------------------------------------------
    def run_creation(self) -> None:
        n, rounds = self.cfg["runs"], self.cfg["runs_rounds"]
        label = (f"run creation, mean ms/run ({n} runs: start, 2 params, 2 metrics, end; default capture; "
                 f"median of {rounds} rounds)")
        log(label)
        # Rounds alternate gitexp and MLflow, each in a fresh repository: both sides create files
        # on the same disk, and how fast it is drifts over minutes on a shared machine.
        ours: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        anchor: str | None = None
        for k in range(rounds):
            ours.append(gitexp_worker("runs", {"n": n}, cwd=make_code_repo(self.work / f"r2-{k}")))

            def mlflow_side(k: int = k) -> tuple[str, Any]:
                out = mlflow_call(self.mlflow, "runs", {"uri": "file:" + str(self.work / f"mlruns2-{k}"), "n": n},
                                  cwd=make_code_repo(self.work / f"r2m-{k}"))
                self.mlflow_warnings(out, "file store")
                return "", out

            anchor, out = self.anchor(mlflow_side)
            if out is not None:
                theirs.append(out)
        mean = statistics.median(r["mean_ms"] for r in ours)
        self.data["runs"], self.data["mlflow_runs"] = ours, theirs
        self.notes.append(f"gitexp run creation split: start_run {statistics.median(r['start_ms'] for r in ours):.1f} "
                          f"ms + end {statistics.median(r['end_ms'] for r in ours):.1f} ms per run (dirty working "
                          "tree: 1 edited + 1 new file); rounds (gitexp / MLflow ms): " + ", ".join(
                              f"{a['mean_ms']:.1f} / {b['mean_ms']:.1f}" for a, b in zip(ours, theirs, strict=False)))
        cell, verdict = f"{mean:.1f} ms/run", None
        if theirs:
            other = statistics.median(r["mean_ms"] for r in theirs)
            anchor = f"{other:.1f} ms/run (file store)"
            cell += f" ({other / mean:.1f}x faster)"
            verdict = other / mean >= 5
        self.rows.append([label, cell, anchor or "n/a", "≥ 5x faster than MLflow", ok(verdict)])

    # 3 ------------------------------------------------------------------------------------
    def import_time(self) -> None:
        reps = self.cfg["import_reps"]
        label = f"import time, median of {reps} fresh processes, minus `python -c pass`"
        log(label)
        cwd = self.work

        def measure(python: str, module: str) -> tuple[float, float]:
            base, full = paired_medians([python, "-c", "pass"], [python, "-c", f"import {module}"], reps, cwd)
            return full - base, base

        net, base = measure(sys.executable, "gitexp")
        self.data["import"] = {"net_s": net, "interpreter_s": base}

        def mlflow_side() -> tuple[str, Any]:
            mnet, mbase = measure(str(self.mlflow), "mlflow")
            self.data["mlflow_import"] = {"net_s": mnet, "interpreter_s": mbase}
            return f"{net_secs(mnet)} (+{mbase:.3f} interpreter)", mnet

        anchor, _ = self.anchor(mlflow_side)
        self.rows.append([label, f"{net_secs(net)} (+{base:.3f} interpreter)", anchor, "≤ 0.25 s",
                          ok(net <= 0.25)])

    # 4 ------------------------------------------------------------------------------------
    def ls_small(self) -> None:
        n, reps = self.cfg["ls_runs"], self.cfg["ls_reps"]
        label = f"`git exp ls` over {n} runs, whole process (median of {reps}, warm cache)"
        log(label)
        repo = make_code_repo(self.work / "r4", dirty=False)
        stats = build_gitexp_runs(repo, n)
        self.notes.append(f"`git exp ls` {n}-run repository as gitexp left it: {loose_objects(repo)}, "
                          f"{stats['start_failures']} start_run failures retried while building")
        seconds, cpu = median_wall(ls_command(), reps, cwd=repo)
        self.data["ls_small"] = {"wall_s": seconds, "cpu_s": cpu}
        self.notes.append(f"`git exp ls` over {n} runs: median CPU time {cpu:.3f} s (wall {seconds:.3f} s)")

        def mlflow_side() -> tuple[str, Any]:
            uri = "file:" + str(self.work / "mlruns4")
            out = mlflow_call(self.mlflow, "populate", {"uri": uri, "n": n, "fallback": n, "budget_s": 1e9},
                              cwd=self.work)
            self.mlflow_warnings(out, "file store")
            argv = [str(self.mlflow), str(MLFLOW_SIDE), "search_once", json.dumps({"uri": uri})]
            mseconds, mcpu = median_wall(argv, reps, cwd=self.work)
            self.data["mlflow_ls_small"] = {"wall_s": mseconds, "cpu_s": mcpu}
            return f"{secs(mseconds)} (search_runs, file store, whole process)", mseconds

        anchor, _ = self.anchor(mlflow_side)
        self.rows.append([label, secs(seconds), anchor, "≤ 0.4 s", ok(seconds <= 0.4)])

    # 5 ------------------------------------------------------------------------------------
    def big(self) -> None:
        cfg = self.cfg
        n, reps = cfg["big_runs"], cfg["big_reps"]
        log(f"load_runs / git exp ls over {n:,} runs")
        repo, info = cached_gitexp_fixture(n)
        self.notes.append(f"gitexp {n:,}-run fixture: built in {info['build_s']:.0f} s with 2 processes "
                          f"({n / info['build_s']:.0f} runs/s, capture off, {info['start_failures']} start_run "
                          f"failures retried), {info['built']}; then `git gc`: {loose_objects(repo)}")
        cold = gitexp_worker("load_runs", {"repo": str(repo), "cold": True}, cwd=repo)
        warm = gitexp_worker("load_runs", {"repo": str(repo), "cold": False}, cwd=repo)
        for res in (cold, warm):
            if res["runs"] != n:
                raise RuntimeError(f"load_runs found {res['runs']} runs, expected {n}")
        ls_s, ls_cpu = median_wall(ls_command(), reps, cwd=repo)
        self.data["big"] = {"cold_s": cold["seconds"], "warm_s": warm["seconds"], "ls_s": ls_s, "ls_cpu_s": ls_cpu}
        self.notes.append(f"`git exp ls` over {n:,} runs: median CPU time {ls_cpu:.3f} s (wall {ls_s:.3f} s)")

        mlflow_label = ""
        m_cold = m_warm = m_ls = "n/a"
        if self.mlflow is not None:
            try:
                uri, minfo = cached_mlflow_fixture(self.mlflow, self.mlflow_version, n, cfg["mlflow_fallback"],
                                                   cfg["mlflow_budget_s"])
                self.notes.append(f"MLflow sqlite fixture: {minfo['runs']:,} runs (asked {minfo['requested']:,}) "
                                  f"built in {minfo['build_s']:.0f} s "
                                  f"({minfo['runs'] / minfo['build_s']:.0f} runs/s), {minfo['built']}")
                if minfo["runs"] != n:
                    mlflow_label = f" (MLflow: {minfo['runs']:,} runs, its build was too slow)"
                out = mlflow_call(self.mlflow, "search", {"uri": uri}, cwd=self.work)
                self.mlflow_warnings(out, "sqlite store")
                argv = [str(self.mlflow), str(MLFLOW_SIDE), "search_once", json.dumps({"uri": uri})]
                whole, _ = median_wall(argv, reps, cwd=self.work)
                self.data["mlflow_big"] = {"runs": minfo["runs"], "first_s": out["first_s"],
                                           "second_s": out["second_s"], "whole_s": whole}
                m_cold = f"{secs(out['first_s'])} (search_runs 1st call, sqlite)"
                m_warm = f"{secs(out['second_s'])} (search_runs 2nd call, sqlite)"
                m_ls = f"{secs(whole)} (search_runs, sqlite, whole process)"
            except Exception as exc:
                traceback.print_exc()
                m_cold = m_warm = m_ls = error_cell(exc)
        self.rows.append([f"load_runs() over {n:,} runs, cold (no cache), in-process{mlflow_label}",
                          secs(cold["seconds"]), m_cold, "≤ 3 s", ok(cold["seconds"] <= 3)])
        self.rows.append([f"load_runs() over {n:,} runs, warm (fresh process), in-process{mlflow_label}",
                          secs(warm["seconds"]), m_warm, "≤ 0.3 s", ok(warm["seconds"] <= 0.3)])
        self.rows.append([f"`git exp ls` over {n:,} runs, whole process, warm (median of {reps}){mlflow_label}",
                          secs(ls_s), m_ls, "≤ 0.3 s (issue 2: load_runs and ls)",
                          ok(ls_s <= 0.3) if n >= 10_000 else "-"])


def ls_command() -> list[str]:
    """The installed console script (not a pyenv shim in front of it), else python -m gitexp."""
    script = Path(sys.executable).parent / "git-exp"
    if script.exists():
        return [str(script), "ls"]
    return [sys.executable, "-m", "gitexp", "ls"]


def source_state() -> str:
    """Which gitexp was measured: the commit of the checkout and whether gitexp/ had local edits."""
    root = HERE.parent
    try:
        head = git(root, "rev-parse", "--short", "HEAD").strip()
        edited = [line for line in git(root, "status", "--porcelain", "--", "gitexp").splitlines() if line]
    except (RuntimeError, OSError) as exc:
        return f"unknown ({exc})"
    return f"commit {head}" + (f" + {len(edited)} uncommitted change(s) under gitexp/" if edited else " (clean)")


def loose_objects(repo: Path) -> str:
    out = git(repo, "count-objects", "-v")
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return f"{int(fields.get('count', 0)):,} loose objects ({int(fields.get('size', 0)) // 1024} MiB), " \
           f"{int(fields.get('in-pack', 0)):,} packed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow anchor column")
    parser.add_argument("--no-install", action="store_true", help="do not create the MLflow virtualenv")
    parser.add_argument("--json", type=Path, help="also write the raw numbers to this file")
    parser.add_argument("--only", help="comma-separated subset: log_metric,runs,import,ls,big")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "ARGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        name, payload = args.worker
        result = WORKERS[name](json.loads(payload))
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()
    log(f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-") as tmp:
        work = Path(tmp)
        isolate(work / "home")
        if args.no_mlflow:
            mlflow_python, mlflow_version = None, "skipped (--no-mlflow)"
        else:
            mlflow_python, mlflow_version = ensure_mlflow(allow_install=not args.no_install)
            if mlflow_python is None:
                log(f"MLflow unavailable: {mlflow_version}")
        bench = Bench(cfg, work, mlflow_python, mlflow_version)
        steps = {"log_metric": ("log_metric", "≤ 3 µs", bench.log_metric),
                 "runs": ("run creation", "≥ 5x faster", bench.run_creation),
                 "import": ("import time", "≤ 0.25 s", bench.import_time),
                 "ls": ("git exp ls (small)", "≤ 0.4 s", bench.ls_small),
                 "big": ("load_runs (big)", "≤ 3 s / ≤ 0.3 s", bench.big)}
        chosen = args.only.split(",") if args.only else list(steps)
        for key in chosen:
            label, target, fn = steps[key]
            bench.guarded(label, target, fn)

    from tabulate import tabulate

    headers = ["benchmark", "gitexp", "MLflow (anchor)", "target", "ok?"]
    print(tabulate(bench.rows, headers=headers, tablefmt="github", disable_numparse=True))
    print()
    from importlib import metadata

    print(f"mode: {'quick' if args.quick else 'full'}; gitexp {metadata.version('gitexp')}, "
          f"MLflow {mlflow_version if mlflow_python else 'n/a (' + mlflow_version + ')'}; "
          f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; total {time.perf_counter() - started:.0f} s")
    print(f"- gitexp source: {source_state()}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"- load average at the end: {load} (the machine may be shared; {os.cpu_count()} CPUs)")
    if args.quick:
        print("- quick mode: smaller counts; the 10,000-run targets are checked against "
              f"{cfg['big_runs']:,} runs here, so only a full run gives the verdicts")
    for note in bench.notes:
        print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({"rows": bench.rows, "notes": bench.notes, "data": bench.data,
                                         "mlflow": mlflow_version}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
