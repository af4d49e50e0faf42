#!/usr/bin/env python
"""Sharing at scale (issue 14): `git exp push` and `git exp fetch` of 10,000 new runs, and
`git exp fetch` of 100 new runs from a remote that already holds 100,000, each beside plain git.

    python benchmarks/bench_share.py                # fixtures of 10,000 and 100,000 runs (cached)
    python benchmarks/bench_share.py --big 10000    # "100 new" against a 10,000-run remote (quicker)
    python benchmarks/bench_share.py --gitexp DIR   # measure the gitexp package of another checkout

Prints one table: what | transport | gitexp | git alone (anchor) | goal | ok?

Every figure is a whole process (`git exp push REMOTE`, `git exp fetch REMOTE`), measured over
two transports, both with git protocol v2 (`protocol.version=2` in the throwaway global config):
`file://` URLs, and `git://127.0.0.1:PORT/` of a `git daemon` this script starts on loopback
(a free port, receive-pack enabled, stopped at the end). git has no protocol v2 for pushing:
a push speaks v0 whatever the setting. The anchor is plain git moving the same refs and objects
with a refspec in the same moment: `git push R 'refs/experiments/*:refs/experiments/*'` into
another empty remote, `git fetch R '+refs/experiments/*:refs/experiments/*'` (and the notes) into
another clone; gitexp and git alternate, so both see the machine's load, and what one wrote is
flushed to disk (sync) before the next is timed.

- push 10,000 new: a working copy of the 10,000-run fixture (`git clone --mirror`, so refs are
  packed as after a gc), each of its runs a ref (a fixture shelves what its build made: a refspec
  would miss those), pushes every run into an empty bare repository.
- fetch 10,000 new: a fresh `git init` fetches them back from that repository.
- fetch 100 new of N+100: a working copy of the N-run fixture, which fetched from the remote
  once already (untimed), fetches after another clone pushed 100 new runs (with their notes) to
  the remote, a mirror of the same fixture with a ref per run. gitexp's copy keeps the fixture's
  run shelf; git's has a ref per run. Each measurement gets its own batch of 100 runs, which the
  other copy then fetches untimed, so gitexp and git alike fetch 100 runs whose objects are not
  here yet; each waits for the ref upkeep the fetch before may have started.

Fixtures are benchmarks/scale_fixture.py's (cached under benchmarks/.cache/scale-v*-N): runs
as a sweep makes them, through gitexp's real API. A missing fixture is built first (minutes
for 10,000, tens of minutes for 100,000). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import git, isolate, log, source_state, unshelve_to_refs, wait_for_upkeep, wall
from scale_fixture import ROOT, cached_scale_fixture

GOAL_BULK_S = 10.0
GOAL_INCREMENTAL_S = 2.0
TRANSPORTS = {"file": "file://", "daemon": "git daemon, 127.0.0.1"}
REFSPEC = "refs/experiments/*:refs/experiments/*"
NOTES = "refs/notes/experiments"


def gitexp_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "git-exp"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "gitexp", *args]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def git_daemon(base: Path, log_file: Path) -> Iterator[str]:
    """A `git daemon` serving the repositories under *base* on loopback; yields its URL prefix."""
    port = free_port()
    with open(log_file, "wb") as err:
        proc = subprocess.Popen(["git", "daemon", "--export-all", "--enable=receive-pack", "--reuseaddr",
                                 "--informative-errors", f"--base-path={base}", "--listen=127.0.0.1",
                                 f"--port={port}"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"git daemon exited with {proc.returncode}: {log_file.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"git daemon did not listen on 127.0.0.1:{port} within 20 s") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def working_copy(fixture: Path, dest: Path) -> Path:
    """A clone of *fixture* with all its refs, packed (`--mirror`), as a non-bare repository
    without a remote: objects are hard links, so this takes a second even at 100,000 runs."""
    git(dest.parent, "clone", "-q", "--mirror", str(fixture), str(dest / ".git"))
    git(dest, "config", "core.bare", "false")
    git(dest, "config", "--remove-section", "remote.origin")
    return dest


def bare(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    git(path.parent, "init", "-q", "--bare", str(path))
    return path


def timed(argv: list[str], cwd: Path) -> float:
    # What the previous command wrote is flushed first: its writeback (tens of MB, thousands of
    # files) otherwise lands on whichever command comes next, gitexp or git.
    os.sync()
    return wall(argv, cwd)[0]


def seconds(samples: list[float]) -> str:
    """The median, and the range when there are several."""
    spread = f" ({min(samples):.2f} to {max(samples):.2f})" if len(samples) > 1 else ""
    return f"{statistics.median(samples):.2f} s{spread}"


def make_runs(args: dict[str, Any]) -> dict[str, Any]:
    """Worker: *count* finished runs in experiment *experiment* of *repo*, as a sweep logs them."""
    import gitexp

    for i in range(args["count"]):
        with gitexp.start_run(experiment=args["experiment"], repo=args["repo"], params={"lr": 10 ** -(1 + i % 4),
                              "seed": i}, system_metrics_interval=0) as run:
            for step in range(20):
                run.log_metrics({"train/loss": 1 / (step + 1), "val/loss": 1.1 / (step + 1)}, step=step)
    gitexp.flush()
    return {"runs": args["count"]}


def worker(name: str, args: dict[str, Any]) -> None:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", name, json.dumps(args)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"worker {name} failed: {proc.stderr[-2000:]}")


class Bench:
    def __init__(self, work: Path, reps: int) -> None:
        self.work, self.reps = work, reps
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def row(self, what: str, transport: str, ours: list[float], theirs: list[float], goal: float) -> None:
        mine = statistics.median(ours)
        self.rows.append([what, TRANSPORTS[transport], seconds(ours), seconds(theirs), f"≤ {goal:g} s",
                          "yes" if mine <= goal else "NO"])

    def bulk(self, fixture: Path, urls: dict[str, Any]) -> None:
        src = working_copy(fixture, self.work / "src")
        # Every run a ref, so that plain git pushes all of them by refspec, as `git exp push` does
        # (a fixture's build shelves its runs: a refspec alone would move a few hundred).
        n = unshelve_to_refs(src / ".git")
        has_notes = bool(git(src, "for-each-ref", NOTES).strip())
        specs = [REFSPEC, *([f"{NOTES}:{NOTES}"] if has_notes else [])]
        for transport, url_of in urls.items():
            push: dict[str, list[float]] = {"gitexp": [], "git": []}
            fetch: dict[str, list[float]] = {"gitexp": [], "git": []}
            for rep in range(self.reps):
                order = ("gitexp", "git") if rep % 2 == 0 else ("git", "gitexp")
                for who in order:
                    name = f"{transport}-{who}-{rep}"
                    remote = bare(self.work / "remotes" / f"{name}.git")
                    git(src, "remote", "add", name, url_of(remote))
                    argv = gitexp_command("push", name) if who == "gitexp" else ["git", "push", "-q", name, *specs]
                    push[who].append(timed(argv, src))
                    log(f"  push {n:,} over {transport}, {who}: {push[who][-1]:.2f} s")
                for who in order:
                    name = f"{transport}-{who}-{rep}"
                    dest = self.work / f"fetch-{name}"
                    git(self.work, "init", "-q", str(dest))
                    # Each side fetches from the remote the other one filled, the same 10,000 runs either way.
                    other = f"{transport}-{'git' if who == 'gitexp' else 'gitexp'}-{rep}"
                    git(dest, "remote", "add", "origin", url_of(self.work / "remotes" / f"{other}.git"))
                    argv = gitexp_command("fetch", "origin") if who == "gitexp" else \
                        ["git", "fetch", "-q", "--no-tags", "origin", f"+{REFSPEC}",
                         *([f"+{NOTES}:{NOTES}"] if has_notes else [])]
                    fetch[who].append(timed(argv, dest))
                    log(f"  fetch {n:,} over {transport}, {who}: {fetch[who][-1]:.2f} s")
                    shutil.rmtree(dest)
            self.row(f"push {n:,} new runs", transport, push["gitexp"], push["git"], GOAL_BULK_S)
            self.row(f"fetch {n:,} new runs", transport, fetch["gitexp"], fetch["git"], GOAL_BULK_S)
        shutil.rmtree(self.work / "remotes")
        shutil.rmtree(src)

    def incremental(self, fixture: Path, urls: dict[str, Any], new: int) -> None:
        base = self.work / "big"
        base.mkdir()
        remote = base / "remote.git"
        git(base, "clone", "-q", "--mirror", str(fixture), str(remote))
        git(remote, "config", "--remove-section", "remote.origin")
        # A remote holds a ref per run (`git exp push` gives each shelved run its ref there; the
        # shelf is local). gitexp's clone keeps the fixture's shelf, as its upkeep left it; plain
        # git's has a ref per run, as git alone keeps them.
        n = unshelve_to_refs(remote)
        locals_ = {"gitexp": working_copy(fixture, base / "local"), "git": working_copy(fixture, base / "local-git")}
        unshelve_to_refs(locals_["git"] / ".git")
        writer = base / "writer"
        git(base, "clone", "-q", str(fixture), str(writer))
        first = next(iter(urls.values()))
        argvs = {"gitexp": gitexp_command("fetch", "origin"),
                 "git": ["git", "fetch", "-q", "--no-tags", "origin", f"+{REFSPEC}", f"+{NOTES}:{NOTES}"]}
        for who, local in locals_.items():
            git(local, "remote", "add", "origin", first(remote))
            t0 = time.perf_counter()
            # (Without notes: the fixture has none until the first new runs bring theirs.)
            setup = argvs[who] if who == "gitexp" else argvs[who][:-1]
            proc = subprocess.run(setup, cwd=local, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"the first fetch of {who} failed: {proc.stderr[-2000:]}")
            git(local, "pack-refs", "--all")  # as a gc would leave the refs of that first fetch
            wait_for_upkeep(local / ".git")
            self.notes.append(f"{who}: the clone's first fetch from the remote of {n:,} runs, all of them here "
                              f"already (untimed setup): {time.perf_counter() - t0:.1f} s")
        batch = 0
        for transport, url_of in urls.items():
            for local in locals_.values():
                git(local, "remote", "set-url", "origin", url_of(remote))
            times: dict[str, list[float]] = {"gitexp": [], "git": []}
            for rep in range(self.reps):
                for who in ("gitexp", "git") if rep % 2 == 0 else ("git", "gitexp"):
                    experiment = f"new{batch}"
                    batch += 1
                    worker("make_runs", {"repo": str(writer), "experiment": experiment, "count": new})
                    git(writer, "push", "-q", str(remote),
                        f"refs/experiments/{experiment}/*:refs/experiments/{experiment}/*", f"+{NOTES}:{NOTES}")
                    # (The fetch before may have started the ref upkeep: each is timed on a quiet repository.)
                    wait_for_upkeep(locals_[who] / ".git")
                    times[who].append(timed(argvs[who], locals_[who]))
                    log(f"  fetch {new} new of {n + new * batch:,} over {transport}, {who}: {times[who][-1]:.2f} s")
                    # The other clone takes the batch too, untimed: each timed fetch brings exactly *new* runs.
                    other = "git" if who == "gitexp" else "gitexp"
                    subprocess.run(argvs[other], cwd=locals_[other], capture_output=True, check=True)
            self.row(f"fetch {new} new runs from a remote of {n:,} + {new}", transport, times["gitexp"],
                     times["git"], GOAL_INCREMENTAL_S)
        shutil.rmtree(base)

    def print(self) -> None:
        header = ["what", "transport", "gitexp", "git alone (anchor)", "goal", "ok?"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        print()
        for note in self.notes:
            print(f"- {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", type=int, default=10_000, help="runs pushed and fetched at once (fixture size)")
    parser.add_argument("--big", type=int, default=100_000, help="runs the remote holds before the 100 new")
    parser.add_argument("--new", type=int, default=100, help="new runs fetched from the big remote")
    parser.add_argument("--reps", type=int, default=1, help="measurements of each bulk figure (median)")
    parser.add_argument("--reps-incremental", type=int, default=3, help="measurements of each incremental one")
    parser.add_argument("--only", choices=("bulk", "incremental"), help="one half of the table")
    parser.add_argument("--gitexp", type=Path, default=ROOT, help="checkout whose gitexp package is measured")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps({"make_runs": make_runs}[args.worker[0]](json.loads(args.worker[1]))))
        return 0
    os.environ["PYTHONPATH"] = os.pathsep.join([str(args.gitexp.resolve()), os.environ.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="gitexp-share-") as tmp:
        work = Path(tmp)
        isolate(work / "home")
        git(work, "config", "--global", "protocol.version", "2")
        bench = Bench(work, args.reps)
        with git_daemon(work, work / "daemon.log") as prefix:
            urls = {"file": lambda path: path.as_uri(),
                    "daemon": lambda path: prefix + str(path.relative_to(work))}
            if args.only in (None, "bulk"):
                fixture, _ = cached_scale_fixture(args.bulk)
                bench.bulk(fixture, urls)
            if args.only in (None, "incremental"):
                fixture, _ = cached_scale_fixture(args.big)
                bench.reps = args.reps_incremental
                bench.incremental(fixture, urls, args.new)
        gitexp_src = source_state() if args.gitexp.resolve() == ROOT else str(args.gitexp)
        bench.notes.append(f"gitexp measured: {gitexp_src}; git {git(work, 'version').split()[-1]}; "
                           f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    bench.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
