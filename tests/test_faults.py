"""Fault injection: kills, git's own maintenance racing the writers, a full disk, a reader without
write access, a long sweep. After each, the invariants a user relies on: `git fsck --strict`
clean, `git exp verify` clean, nothing logged a second before the fault lost, honest statuses."""

from __future__ import annotations

import contextlib
import io
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.git import maintenance, pack, settle
from gitexp.store import journal
from tests.conftest import git

pytestmark = pytest.mark.faults


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return path


def fsck_clean(repo: Path) -> None:
    # This process's background thread writes the notes of ended runs a moment later. git fsck beside
    # a writer lists the objects first and reads the reflogs after, so a notes commit made in between
    # is "an invalid reflog entry" to it (seen 1 time in 4 on a loaded machine), though it is there.
    gitexp.flush()
    proc = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith("notice")]
    assert proc.returncode == 0 and not problems, problems


def verify_clean(capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(["verify"])
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert code == 0, out
    return out


def mergeable_packs(repo: Path) -> int:
    names = set(os.listdir(repo / ".git/objects/pack"))
    return len(maintenance._candidates(names))


def test_a_sweep_in_one_process_keeps_the_pack_count_bounded(repo: Path, capsys) -> None:
    """4,000 runs at full speed made 3,283 packs; git failed to map them past ~47,000."""
    worst = 0
    for i in range(400):
        with gitexp.start_run(name=f"r{i}", params={"i": i}, system_metrics_interval=0) as run:
            run.log_metric("loss", 1.0 / (i + 1))
        worst = max(worst, mergeable_packs(repo))
    assert worst <= maintenance.HARD_LIMIT  # 400 packs before
    assert len(gitexp.load_runs()) == 400
    assert git(repo, "for-each-ref", "--count=1", "refs/experiments/")  # git itself still opens it
    fsck_clean(repo)
    assert "400 run(s): no problems" in verify_clean(capsys)


def test_many_writer_processes_keep_the_pack_count_bounded(repo: Path, env_for_subprocess, tmp_path) -> None:
    body = """
        import sys, gitexp
        for i in range(60):
            with gitexp.start_run(name=f"w{sys.argv[1]}-{i}", system_metrics_interval=0) as run:
                run.log_metric("loss", float(i))
    """
    path = script(tmp_path, body)
    procs = [subprocess.Popen([sys.executable, str(path), str(k)], cwd=repo, env=env_for_subprocess)
             for k in range(4)]
    worst = 0
    while any(p.poll() is None for p in procs):
        with contextlib.suppress(FileNotFoundError):
            worst = max(worst, mergeable_packs(repo))
    assert [p.returncode for p in procs] == [0] * 4
    assert worst <= maintenance.HARD_LIMIT + 4
    assert len(gitexp.load_runs()) == 240
    fsck_clean(repo)


def test_geometric_merging_rolls_up_only_the_small_packs() -> None:
    assert maintenance.geometric_split([10, 10, 10, 1000]) == 3
    assert maintenance.geometric_split([1, 4, 16, 64]) == 0  # already geometric: nothing to merge
    assert maintenance.geometric_split([5, 5]) == 2


def test_merged_packs_hold_every_object_once_and_pass_verify_pack(repo: Path) -> None:
    pack_dir = repo / ".git/objects/pack"
    blobs = [b"shared", *(b"blob %d" % i for i in range(20))]
    for i in range(10):
        chosen = {pack.object_id(pack.BLOB, b): (pack.BLOB, b) for b in (blobs[0], blobs[2 * i + 1], blobs[2 * i + 2])}
        pack.write_pack(pack_dir, chosen)
    assert maintenance.compact(repo / ".git") == 10
    [merged] = [name for name in os.listdir(pack_dir) if name.endswith(".idx")]
    assert git(repo, "verify-pack", str(pack_dir / merged)) == ""
    out = git(repo, "verify-pack", "-v", str(pack_dir / merged))
    assert sum(line.split()[1:2] == ["blob"] for line in out.splitlines()) == len(blobs)
    for data in blobs:
        assert git(repo, "cat-file", "blob", pack.object_id(pack.BLOB, data)) == data.decode()


def geometric_packs(repo: Path) -> list[bytes]:
    """Packs of 1, 3, 9 and 27 blobs: geometric already (compact leaves them); their blobs."""
    made = []
    for count in (1, 3, 9, 27):
        group = [b"blob %d of %d %s" % (i, count, b"x" * 300) for i in range(count)]
        pack.write_pack(repo / ".git/objects/pack", {pack.object_id(pack.BLOB, b): (pack.BLOB, b) for b in group})
        made += group
    return made


def test_small_packs_left_in_geometric_order_are_folded_into_one(repo: Path) -> None:
    """Every git lookup of an object none of them holds searches each pack: fold_small merges those
    under its size into one, whatever their sizes."""
    pack_dir = repo / ".git/objects/pack"
    blobs = geometric_packs(repo)
    before = mergeable_packs(repo)
    assert maintenance.compact(repo / ".git") == 0 and mergeable_packs(repo) == before >= 4
    sizes = sorted(os.path.getsize(pack_dir / name) for name in os.listdir(pack_dir) if name.endswith(".pack"))
    assert maintenance.fold_small(repo / ".git", below=sizes[1] + 1) == 2  # the two smallest alone
    assert maintenance.fold_small(repo / ".git") == before - 1
    assert mergeable_packs(repo) == 1
    for data in blobs:
        assert git(repo, "cat-file", "blob", pack.object_id(pack.BLOB, data)) == data.decode()
    fsck_clean(repo)


def test_packs_are_not_merged_while_git_gc_runs(repo: Path) -> None:
    """A merge removes the packs it merged, and `git gc`'s pack-objects fails on a pack taken away
    under it ("cannot open index for ...pack"): merges wait for the gc, which packs them all."""
    geometric_packs(repo)
    before = sorted(os.listdir(repo / ".git/objects/pack"))
    (repo / ".git" / "gc.pid").write_text("999999999 otherhost\n")  # a `git gc` at work elsewhere
    assert maintenance.fold_small(repo / ".git") == 0
    assert maintenance.compact(repo / ".git", wait=True) == 0
    assert sorted(os.listdir(repo / ".git/objects/pack")) == before
    (repo / ".git" / "gc.pid").unlink()
    assert maintenance.fold_small(repo / ".git") == sum(name.endswith(".pack") for name in before) == 4
    fsck_clean(repo)


def test_a_process_whose_runs_ended_folds_the_small_packs_as_it_exits(repo: Path, env_for_subprocess,
                                                                      tmp_path) -> None:
    """Its run's packs and its notes' (written as the run ends at exit), fewer than EXIT_LIMIT."""
    body = """
        import gitexp
        run = gitexp.start_run(name="ended-at-exit", system_metrics_interval=0)
        run.log_metric("loss", 1.0)
    """
    subprocess.run([sys.executable, str(script(tmp_path, body))], cwd=repo, env=env_for_subprocess, check=True)
    assert mergeable_packs(repo) == 1
    [record] = gitexp.load_runs()
    assert record.status == "FINISHED" and record.id in git(repo, "notes", "--ref=experiments", "show", "HEAD")
    fsck_clean(repo)


def test_a_pack_holding_deltas_is_never_merged(repo: Path) -> None:
    for i in range(5):
        (repo / "big.txt").write_text("line\n" * 2000 + f"change {i}\n")
        git(repo, "commit", "-qam", f"c{i}") if i else (git(repo, "add", "big.txt"), git(repo, "commit", "-qm", "c0"))
    git(repo, "repack", "-adq")  # git's pack, with deltas
    before = sorted(os.listdir(repo / ".git/objects/pack"))
    pack.write_pack(repo / ".git/objects/pack", {pack.object_id(pack.BLOB, b"x"): (pack.BLOB, b"x")})
    maintenance.compact(repo / ".git")
    assert set(before) <= set(os.listdir(repo / ".git/objects/pack"))
    fsck_clean(repo)


@pytest.mark.parametrize("attempt", range(2))
def test_writers_beside_gc_prune_now_and_repack_ad_never_corrupt(repo: Path, env_for_subprocess, tmp_path,
                                                                 capsys, attempt: int) -> None:
    """2 of 5 attempts corrupted the repository: a ref at a commit whose objects a repack removed."""
    body = """
        import sys, time, gitexp
        for i in range(8):
            with gitexp.start_run(name=f"w{sys.argv[1]}-{i}", params={"i": i}, checkpoint_interval=0.1,
                                  flush_interval=0.05, system_metrics_interval=0) as run:
                for step in range(30):
                    run.log_metric("loss", 1.0 / (step + 1), step=step)
                    time.sleep(0.004)
                with open(f"art-{sys.argv[1]}.txt", "w") as handle:
                    handle.write(f"{sys.argv[1]} {i}")
                run.log_artifact(f"art-{sys.argv[1]}.txt", name=f"a{i}.txt")
    """
    path = script(tmp_path, body)
    (repo / ".gitignore").write_text("*.ckpt\nart-*\n")
    git(repo, "commit", "-qam", "ignore artifacts")
    writers = [subprocess.Popen([sys.executable, str(path), str(k)], cwd=repo, env=env_for_subprocess,
                                stderr=subprocess.PIPE, text=True) for k in range(4)]
    rounds = 0
    while any(w.poll() is None for w in writers) or rounds == 0:
        for args in (["gc", "-q", "--prune=now", "--aggressive"], ["repack", "-adq"], ["pack-refs", "--all"]):
            subprocess.run(["git", *args], cwd=repo, capture_output=True)
        rounds += 1
    errors = [w.stderr.read() for w in writers]
    assert [w.wait() for w in writers] == [0] * 4, errors
    assert not any("Traceback" in e for e in errors), errors
    git(repo, "repack", "-adq")  # after the writers: nothing may point at what this removes
    fsck_clean(repo)
    records = gitexp.load_runs()
    assert len(records) == 32 and {r.status for r in records} == {"FINISHED"}
    assert all(r.metrics["loss"]["count"] == 30 and len(r.artifacts) == 1 for r in records)
    assert "32 run(s): no problems" in verify_clean(capsys)
    assert not [n for n in os.listdir(repo / ".git/objects/pack") if n.endswith(".keep")]


def test_settle_passes_beside_writers_and_gc_prune_now_lose_nothing(repo: Path, env_for_subprocess, tmp_path,
                                                                    capsys) -> None:
    """The upkeep's pass merges the settled packs without the pack lock that writers and merges
    hold: beside writer processes and `git gc --prune=now`, every pass settling and merging what
    it finds, no object goes missing, and one settled pack is left."""
    body = """
        import sys, gitexp
        for i in range(20):
            with gitexp.start_run(name=f"w{sys.argv[1]}-{i}", params={"i": i}, system_metrics_interval=0) as run:
                for step in range(20):
                    run.log_metric("loss", 1.0 / (step + 1 + i), step=step)
    """
    path = script(tmp_path, body)
    writers = [subprocess.Popen([sys.executable, str(path), str(k)], cwd=repo, env=env_for_subprocess,
                                stderr=subprocess.PIPE, text=True) for k in range(3)]
    while any(w.poll() is None for w in writers):
        settle.settle(repo / ".git", minimum=0)
        subprocess.run(["git", "gc", "-q", "--prune=now"], cwd=repo, capture_output=True)
    errors = [w.stderr.read() for w in writers]
    assert [w.wait() for w in writers] == [0] * 3, errors
    settle.settle(repo / ".git", minimum=0)
    fsck_clean(repo)
    records = gitexp.load_runs()
    assert len(records) == 60 and all(r.metrics["loss"]["count"] == 20 for r in records)
    assert "60 run(s): no problems" in verify_clean(capsys)
    assert len(settle.settled_packs(repo / ".git" / "objects" / "pack")) == 1


def test_kill_inside_end_loses_nothing_and_is_not_finished(repo: Path, env_for_subprocess, tmp_path) -> None:
    """1,000,000 values then end(), SIGKILL in it: 0 values were recovered; at 300,000 values/s a
    kill in end() was recovered as FINISHED with 898,000 of them."""
    body = """
        import gitexp
        run = gitexp.start_run(name="big", system_metrics_interval=0)
        for i in range(400_000):
            run.log_metric("loss", float(i), step=i)
        print("ending", flush=True)
        run.end()
    """
    proc = subprocess.Popen([sys.executable, str(script(tmp_path, body))], cwd=repo, env=env_for_subprocess,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ending\n"
    # Inside end(): the values, then the status, are journaled first; the final commit comes after.
    folder = repo / ".git/gitexp/journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(b'"status": "FINISHED"' in path.read_bytes()[-4096:] for path in folder.glob("*.log")):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert main(["recover"]) == 0
    record = gitexp.get_run("big")
    if record.status == "FINISHED":  # the final commit landed before the kill: then it is complete
        assert record.metrics["loss"]["count"] == 400_000
        pytest.skip("the kill came after the final commit")
    assert record.status == "CRASHED"
    assert "final commit never landed" in record.meta["error"]["message"]
    assert record.metrics["loss"]["count"] == 400_000
    fsck_clean(repo)


def test_the_journal_lag_is_bounded_at_any_logging_rate(repo: Path) -> None:
    run = gitexp.start_run(name="fast", system_metrics_interval=0, flush_interval=3600)
    for i in range(250_000):  # far past what the background thread journals in its interval
        run.log_metric("loss", float(i), step=i)
    segment = next((repo / ".git/gitexp/journal").glob(f"{run.id}.*.log"))
    journaled = segment.read_text().count("\n")
    assert 250_000 - journaled <= gitexp.tracking.liverun.MAX_BUFFERED
    run.end()
    assert gitexp.get_run("fast").metrics["loss"]["count"] == 250_000


def test_a_journal_write_that_fails_part_way_is_not_replayed_twice(repo: Path) -> None:
    """ENOSPC part-way through a write gave 498 points for 491 steps and lost the env record."""
    jour = journal.Journal.create(repo / ".git", "20261202-0000000aaaaaaaa", {"id": "x"})
    jour.append("M\t0\t1.0\t0.5\tloss\n")
    limit = jour.segment.stat().st_size + 40
    text = "".join(journal.metric_line("loss", step, 1.0, 0.5) for step in range(1, 8))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # writes past it fail with EFBIG, as a full disk does
    try:
        with pytest.raises(OSError):
            jour.append(text)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    jour.append(text)  # the retry, as Run._flush makes it
    jour.append(journal.record_line("E", {"python": "3"}))
    lines = jour.segment.read_text().splitlines()
    steps = [int(line.split("\t")[1]) for line in lines if line.startswith("M")]
    assert steps == list(range(8)) and lines[-1] == 'E\t{"python": "3"}'
    jour.remove()


def test_a_full_disk_on_a_small_tmpfs_loses_nothing(tmp_path, env_for_subprocess) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        repo = mount / "repo"
        repo.mkdir()
        git(repo, "init", "-q")
        git(repo, "commit", "-q", "--allow-empty", "-m", "init")
        body = """
            import os, gitexp
            run = gitexp.start_run(name="full", system_metrics_interval=0, capture_code=False, flush_interval=0.05)
            filler = open("filler", "wb", buffering=0)  # unbuffered: close() has nothing left to write
            for step in range(3000):
                run.log_metric("loss", float(step), step=step)
                if step == 1000:
                    try:  # fill the disk while the run logs
                        while True:
                            filler.write(b"x" * 65536)
                    except OSError:
                        pass
                if step == 2000:
                    filler.close(); os.unlink("filler")  # space again
            run.end()
        """
        proc = subprocess.run([sys.executable, str(script(tmp_path, body))], cwd=repo, env=env_for_subprocess,
                              capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        records = gitexp.load_runs(repo)
        assert len(records) == 1 and records[0].status == "FINISHED"
        history = records[0].history("loss")
        assert list(history.steps) == list(range(3000))
        fsck_clean(repo)
    finally:
        # Lazily: this process still maps the repository's packs (load_runs), which makes a plain umount busy.
        subprocess.run(["umount", "--lazy", str(mount)], capture_output=True)


def test_a_reader_without_write_access_lists_live_runs(repo: Path, isolated_git: Path, tmp_path) -> None:
    """`git exp ls` failed with PermissionError on journal/<id>.lock while a run was live."""
    if os.geteuid() != 0:
        pytest.skip("needs root to read as another user")
    run = gitexp.start_run(name="live", system_metrics_interval=0)
    run.log_metric("loss", 1.0)
    gitexp.flush()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["ls"]) == 0  # every module the listing needs is imported before dropping root
    for path in (isolated_git, tmp_path, *tmp_path.parents):
        if path != Path("/"):
            os.chmod(path, os.stat(path).st_mode | 0o005)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    # git's own rule for a repository owned by another user: its owner or an admin vouches for it
    git(repo, "config", "--global", "--add", "safe.directory", str(repo))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code: object = "crashed"
        out, err = io.StringIO(), io.StringIO()
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["ls"])
        except BaseException as exc:
            err.write(repr(exc))
        finally:
            os.write(write, f"{code}\n{out.getvalue()}\n{err.getvalue()}".encode())
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as handle:
        report = handle.read()
    run.end()
    code, _, rest = report.partition("\n")
    assert code == "0", report
    assert "live" in rest and "RUNNING" in rest and "bug in gitexp" not in rest


def test_ctrl_c_at_random_moments_never_hangs_the_exit(repo: Path, env_for_subprocess, tmp_path) -> None:
    """One of 140 Ctrl-C trials hung: exit waited on an import lock a gitexp thread held."""
    body = """
        import gitexp
        with gitexp.start_run(name="c", system_metrics_interval=0.05, flush_interval=0.02) as run:
            print("started", flush=True)
            step = 0
            while True:
                run.log_metric("loss", 1.0, step=step); step += 1
    """
    path = script(tmp_path, body)
    rng = random.Random(7)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, str(path)], cwd=repo, env=env_for_subprocess,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the process did not exit within 60 s of Ctrl-C")
    records = gitexp.load_runs()
    assert len(records) == 12 and {r.status for r in records} == {"KILLED"}


def test_a_ref_locked_for_a_moment_by_git_is_waited_for(repo: Path) -> None:
    """`git pack-refs` (inside every `git gc`) locks each loose ref it packs; libgit2 gave up at once
    ("failed to lock file"), so a checkpoint beside a gc loop failed with a warning. The write now
    waits for the lock, as git does, and lands."""
    import threading

    from gitexp.git.refs import LOCK_WAIT
    from gitexp.git.repo import Repo

    r = Repo.discover(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    first = r.commit_staged(r.stage_tree({"a": b"1"}), [head], "first")
    r.create_ref("refs/experiments/default/locked", first, "created")
    second = r.commit_staged(r.stage_tree({"a": b"2"}), [first], "second")
    lock = repo / ".git/refs/experiments/default/locked.lock"
    lock.write_text("")  # what git holds while it packs the ref
    released = threading.Event()

    def git_finishes() -> None:
        released.wait(LOCK_WAIT / 4)
        lock.unlink()

    worker = threading.Thread(target=git_finishes)
    worker.start()
    try:
        r.update_ref("refs/experiments/default/locked", second, first, "moved")
    finally:
        released.set()
        worker.join()
    assert git(repo, "rev-parse", "refs/experiments/default/locked").strip() == second
