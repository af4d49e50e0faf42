"""Sharing runs: two clones and a bare remote (file://, and a real Git LFS server over HTTP)."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.git import reflogs
from gitexp.store.names import handles
from tests.conftest import git

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"system_metrics_interval": 0, "capture_env": False}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    return path


@pytest.fixture
def clones(repo: Path, bare: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The `repo` fixture with the bare remote as origin, and a second clone of it."""
    git(repo, "remote", "add", "origin", bare.as_uri())
    git(repo, "push", "-q", "origin", "main")
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", bare.as_uri(), str(other))
    for clone in (repo, other):
        git(clone, "config", "exp.lfsThreshold", "1024")
    return repo, other


def make_run(name: str, artifacts: dict[str, bytes] | None = None, experiment: str = "cnn") -> gitexp.Run:
    with gitexp.start_run(name=name, experiment=experiment, params={"lr": 0.1}, **QUIET) as run:
        run.log_metric("acc", 0.9)
        for path, data in (artifacts or {}).items():
            source = Path.cwd() / ".." / f"{name}-{path.replace('/', '_')}"
            source.write_bytes(data)
            run.log_artifact(source, path)
    gitexp.flush()  # the run's note, as the end of a training script writes it
    return run


def handle(run: gitexp.Run) -> str:
    """How messages name *run* (with its name): its handle among the runs of the current clone."""
    return handles([*(r.id for r in gitexp.load_runs()), run.id])[run.id]


def lfs_object(root: Path, data: bytes) -> Path:
    oid = hashlib.sha256(data).hexdigest()
    return root / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def note_lines(repo: Path, commit: str) -> list[str]:
    return git(repo, "notes", "--ref", "experiments", "show", commit).splitlines()


def test_runs_and_artifacts_created_in_one_clone_reach_the_other(
        clones: tuple[Path, Path], bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, b = clones
    big, small = os.urandom(30_000), b"epoch 3\n"
    run = make_run("shared", {"model.bin": big, "logs/train.txt": small})
    base = git(a, "rev-parse", "main").strip()

    code, out, err = cli(capsys, "push")
    assert (code, err) == (0, "")
    assert f"  new      {handle(run)} cnn/shared" in out.splitlines()  # the run, not its ref
    assert out.splitlines()[-1] == "pushed to origin: 1 new; notes new; LFS: 1 object(s), 29.3 KiB"
    assert git(bare, "rev-parse", run.ref) == git(a, "rev-parse", run.ref)
    assert lfs_object(bare, big).read_bytes() == big  # git-lfs's own file:// transfer
    assert run.id in " ".join(note_lines(bare, base))

    monkeypatch.chdir(b)
    code, out, err = cli(capsys, "pull")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"  new      {handle(run)} cnn/shared", "fetched from origin: 1 new, 0 updated, "
                                "0 unchanged; notes created"]
    assert "shared" in cli(capsys, "ls")[1]
    assert git(b, "reflog", "show", "--format=%gs", run.ref) == "gitexp: fetch origin\n"
    assert note_lines(b, base) == note_lines(a, base)
    code, out, _ = cli(capsys, "artifacts", "shared")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["model.bin"][3:5] == ["lfs", "no"] and rows["logs/train.txt"][3:5] == ["git", "yes"]

    code, out, err = cli(capsys, "get", "shared", "-o", str(tmp_path / "restored"))
    assert (code, err) == (0, "") and "1 fetched through Git LFS" in out
    assert (tmp_path / "restored" / "model.bin").read_bytes() == big
    assert (tmp_path / "restored" / "logs" / "train.txt").read_bytes() == small
    assert cli(capsys, "artifacts", "shared")[1].count(" yes ") == 2

    # Nothing new: a second fetch and push change nothing.
    assert cli(capsys, "fetch")[1] == "fetched from origin: 0 new, 0 updated, 1 unchanged; notes up to date\n"
    monkeypatch.chdir(a)
    assert cli(capsys, "push")[1].splitlines()[-1].startswith("pushed to origin: 1 up to date; notes up to date")


def test_pull_with_artifacts_downloads_their_content(clones: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _a, b = clones
    data = os.urandom(5000)
    make_run("eager", {"w.bin": data})
    assert cli(capsys, "push")[0] == 0
    monkeypatch.chdir(b)
    code, out, _ = cli(capsys, "pull", "--artifacts")
    assert code == 0 and out.splitlines()[-1].endswith("; 1 LFS object(s) fetched")
    assert lfs_object(b / ".git", data).read_bytes() == data


def test_push_selected_runs_only(clones: tuple[Path, Path], bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = make_run("first"), make_run("second")
    code, out, _ = cli(capsys, "push", "origin", "second", "--no-artifacts")
    assert code == 0 and out.splitlines()[-1].startswith("pushed to origin: 1 new")
    remote_refs = git(bare, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()
    assert remote_refs == [second.ref] and first.ref not in remote_refs
    code, _, err = cli(capsys, "push", "origin", "nowhere")  # after a remote, every word is a run
    assert code == 1 and "no run matches 'nowhere'" in err


def test_a_word_that_is_neither_a_remote_nor_a_run_is_named_as_such(
        clones: tuple[Path, Path], bare: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run("only")
    for args in (["push", "upstream"], ["push", "upstream", "only"]):
        code, out, err = cli(capsys, *args)
        assert (code, out) == (1, "")
        assert err == ("git exp: error: 'upstream' is neither a remote of this repository (remotes: origin) nor a "
                       "run; `git remote add upstream URL` adds it, `git exp ls` lists the runs\n")
    code, _, err = cli(capsys, "push", str(bare))  # a URL or path: gitexp pushes to named remotes
    assert code == 1 and f"`git remote add NAME {bare}` adds it as remote NAME" in err
    for command in ("fetch", "pull"):
        code, _, err = cli(capsys, command, "upstream")
        assert code == 1 and err == ("git exp: error: no remote named 'upstream' (this repository has: origin); "
                                     "`git remote add upstream URL` adds it\n")
    # A run named first still pushes to the default remote.
    code, out, _ = cli(capsys, "push", "only", "--no-artifacts")
    assert code == 0 and out.splitlines()[-1].startswith("pushed to origin: 1 new")


@pytest.mark.parametrize("where", ["missing", "not-a-repository"])
def test_a_remote_without_a_repository_says_so_with_gits_words_before_git_lfs(
        clones: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], where: str) -> None:
    repo, _ = clones
    target = tmp_path / where
    if where == "not-a-repository":
        target.mkdir()
        (target / "README").write_text("a folder, not a repository\n")
    git(repo, "remote", "add", "broken", target.as_uri() if where == "not-a-repository" else str(target))
    make_run("heavy", {"w.bin": os.urandom(5000)})  # over exp.lfsThreshold: git-lfs goes first
    code, out, err = cli(capsys, "push", "broken")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith("git exp: error: cannot reach remote 'broken' at ")
    assert lines[1] == f"  fatal: '{target}' does not appear to be a git repository"  # git's own words, first
    assert "`git remote set-url broken URL` points the remote elsewhere" in err
    lfs_at = next(i for i, line in enumerate(lines) if line.startswith("git-lfs failed too: "))
    assert lfs_at > 1 and "git lfs push --object-id broken" in lines[lfs_at]
    # Without LFS content to send, and on fetch and pull, git's error is the only one.
    for args in (["push", "broken", "--no-artifacts"], ["fetch", "broken"], ["pull", "--artifacts", "broken"]):
        code, _, err = cli(capsys, *args)
        assert code == 1 and f"fatal: '{target}' does not appear to be a git repository" in err, args
        assert "lfs" not in err.lower(), args
    # A remote git reaches but whose LFS server fails keeps git-lfs's error alone.
    git(repo, "remote", "set-url", "broken", str(tmp_path / "remote.git"))
    git(repo, "config", "remote.broken.lfsurl", "http://127.0.0.1:9/nothing-listens-here")
    code, _, err = cli(capsys, "push", "broken")
    assert code == 1 and err.startswith("git exp: error: `git lfs push --object-id broken` of 1 object(s) failed")
    assert "cannot reach" not in err


def _new_commit(repo: Path, ref: str, message: str) -> str:
    """Another commit of a run on top of its tip, as a resumed run or another tool would write it."""
    commit = git(repo, "commit-tree", f"{ref}^{{tree}}", "-p", ref, "-m", message).strip()
    git(repo, "update-ref", ref, commit)
    return commit


def test_a_run_extended_remotely_fast_forwards(clones: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    a, b = clones
    run = make_run("growing")
    assert cli(capsys, "push")[0] == 0
    monkeypatch.chdir(b)
    assert cli(capsys, "fetch")[0] == 0
    monkeypatch.chdir(a)
    newer = _new_commit(a, run.ref, "continued")
    assert cli(capsys, "push")[1].splitlines()[0] == f"  updated  {handle(run)} cnn/growing"
    monkeypatch.chdir(b)
    trace = b.parent / "trace2.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))  # the remote's git says how many objects it sent
    code, out, _ = cli(capsys, "fetch")
    assert code == 0 and f"  updated  {handle(run)} cnn/growing" in out.splitlines()
    assert git(b, "rev-parse", run.ref).strip() == newer
    # Only the new commit travels: the run's earlier one is offered to the remote as common ground,
    # though fetch does not offer every run.
    assert objects_sent(trace) == [1]


def objects_sent(trace: Path) -> list[int]:
    """The object count of each pack git's pack-objects wrote, from a GIT_TRACE2_EVENT file."""
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    return [int(e["value"]) for e in events if e.get("key") == "write_pack_file/wrote"]


def test_fetch_writes_no_ref_per_remote_run_and_a_stray_ref_costs_nothing(
        clones: tuple[Path, Path], bare: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _a, b = clones
    run = make_run("listed")
    assert cli(capsys, "push")[0] == 0
    empty = git(bare, "hash-object", "-t", "tree", "-w", "--stdin").strip()
    stray = git(bare, "commit-tree", empty, "-m", "not a run").strip()
    git(bare, "update-ref", "refs/experiments/cnn/not-a-run-id", stray)
    # What an earlier gitexp left: a remote-tracking ref per run.
    old = "refs/experiments-remotes/origin/runs/cnn/20200101-0000000aaaaaaaa"
    git(b, "update-ref", old, git(b, "rev-parse", "HEAD").strip())
    monkeypatch.chdir(b)
    code, out, err = cli(capsys, "fetch")
    assert code == 0 and "1 new" in out and "ignored 1 ref(s) of origin that are not runs: cnn/not-a-run-id" in err
    assert git(b, "cat-file", "-t", stray, check=False) == ""  # its objects were never fetched
    assert git(b, "for-each-ref", "--format=%(refname)", "refs/experiments-remotes/") == \
        "refs/experiments-remotes/origin/notes/experiments\n"
    assert git(b, "rev-parse", run.ref).strip() == git(bare, "rev-parse", run.ref).strip()


def test_a_run_changed_on_both_sides_keeps_both_versions(clones: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    a, b = clones
    run = make_run("forked")
    assert cli(capsys, "push")[0] == 0
    monkeypatch.chdir(b)
    assert cli(capsys, "fetch")[0] == 0
    ours = _new_commit(b, run.ref, "changed in b")
    theirs = _new_commit(a, run.ref, "changed in a")
    monkeypatch.chdir(a)
    assert cli(capsys, "push")[0] == 0

    monkeypatch.chdir(b)
    code, out, err = cli(capsys, "fetch")
    kept = f"refs/experiments-conflicts/origin/cnn/{run.id}"
    assert code == 0 and "1 in conflict" in out
    assert f"warning: run {handle(run)} cnn/forked differs on origin: kept yours, theirs is at {kept}" in err
    assert git(b, "rev-parse", run.ref).strip() == ours
    assert git(b, "rev-parse", kept).strip() == theirs

    code, _, err = cli(capsys, "push")
    assert code == 1
    assert f"! {handle(run)} cnn/forked: rejected: " in err and "1 ref(s) rejected by origin" in err
    assert git(b, "ls-remote", "origin", run.ref).split()[0] == theirs  # nothing was overwritten

    # Taking theirs resolves it; the next fetch removes the conflict ref.
    git(b, "update-ref", run.ref, theirs)
    assert cli(capsys, "fetch")[0] == 0
    assert git(b, "for-each-ref", "refs/experiments-conflicts/") == ""


def test_push_names_the_runs_whose_lfs_content_is_not_here(clones: tuple[Path, Path],
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _a, b = clones
    run = make_run("heavy", {"model.bin": os.urandom(30_000)})
    assert cli(capsys, "push")[0] == 0
    monkeypatch.chdir(b)
    assert cli(capsys, "fetch")[0] == 0  # the run, not its LFS content
    code, _, err = cli(capsys, "push")
    assert code == 0
    assert err.startswith("warning: 1 LFS artifact(s) are not in the local store")
    assert err.endswith(f"(fetch them with `git exp pull --artifacts` first): {handle(run)}:model.bin\n")
    assert main(["get", handle(run), "-o", str(b / "out")]) == 0  # the handle the warning names


def test_runs_removed_here_are_not_brought_back(clones: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _a, b = clones
    make_run("unwanted")
    assert cli(capsys, "push")[0] == 0
    monkeypatch.chdir(b)
    assert cli(capsys, "fetch")[0] == 0
    assert cli(capsys, "rm", "unwanted")[0] == 0
    code, _out, err = cli(capsys, "fetch")
    assert code == 0 and "1 run(s) you removed with `git exp rm` were not brought back" in err
    assert "unwanted" not in cli(capsys, "ls")[1]


def test_concurrent_pushes_keep_every_run_and_note(clones: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   env_for_subprocess: dict[str, str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    a, b = clones
    base = git(a, "rev-parse", "main").strip()  # both clones' runs note the same code commit
    made = {}
    for clone in (a, b):
        monkeypatch.chdir(clone)
        for i in range(3):
            run = make_run(f"{clone.name}-{i}", {"w.bin": os.urandom(2000)} if i == 0 else None)
            made[run.id] = run.ref
    env = {**env_for_subprocess, "PYTHONPATH": str(ROOT)}
    pushes = [subprocess.Popen([sys.executable, "-m", "gitexp", "push"], cwd=clone, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for clone in (a, b)]
    results = [p.communicate(timeout=120) for p in pushes]
    assert [p.returncode for p in pushes] == [0, 0], results
    # Neither clone's notes contain the other's, so whichever pushed second merged the two.
    remote_git = a.joinpath("..", "remote.git").resolve()
    assert git(remote_git, "rev-list", "--merges", "refs/notes/experiments") != ""

    third = tmp_path / "third"
    git(tmp_path, "clone", "-q", remote_git.as_uri(), str(third))
    monkeypatch.chdir(third)
    code, out, _ = cli(capsys, "pull", "--artifacts")
    assert code == 0 and "6 new" in out and "2 LFS object(s) fetched" in out
    assert {r.id: r.ref for r in gitexp.load_runs()} == made
    assert sorted(line.split()[0] for line in note_lines(third, base)) == sorted(made)


def test_remote_setup_lets_plain_git_carry_runs_and_notes(clones: tuple[Path, Path], bare: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    a, b = clones
    code, out, _ = cli(capsys, "remote", "setup")
    assert code == 0
    assert "added remote.origin.fetch = refs/experiments/*:refs/experiments/*" in out.splitlines()
    assert "added remote.origin.push = HEAD" in out.splitlines()
    assert cli(capsys, "remote", "setup", "origin")[1] == "remote origin already carries runs and notes\n"
    run = make_run("plain")
    (a / "train.py").write_text("print('v2')\n")
    git(a, "commit", "-q", "-am", "v2")
    git(a, "push", "-q")  # plain git: the branch, the runs and the notes
    assert git(bare, "rev-parse", "main") == git(a, "rev-parse", "main")
    assert git(bare, "rev-parse", run.ref) == git(a, "rev-parse", run.ref)
    assert git(bare, "rev-parse", "refs/notes/experiments") == git(a, "rev-parse", "refs/notes/experiments")

    monkeypatch.chdir(b)
    assert cli(capsys, "remote", "setup")[0] == 0
    git(b, "fetch", "-q")
    assert git(b, "rev-parse", run.ref) == git(a, "rev-parse", run.ref)
    assert git(b, "rev-parse", "refs/experiments-remotes/origin/notes/experiments").strip() == \
        git(a, "rev-parse", "refs/notes/experiments").strip()


def test_without_git_lfs_local_work_goes_on_and_transfers_say_what_to_install(
        clones: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _a, b = clones
    only_git = tmp_path / "bin"
    only_git.mkdir()
    os.symlink(shutil.which("git") or "git", only_git / "git")
    monkeypatch.setenv("PATH", str(only_git))
    data = os.urandom(5000)
    make_run("nolfs", {"w.bin": data})
    assert cli(capsys, "get", "nolfs", "-o", str(tmp_path / "here"))[0] == 0  # local content: no git-lfs needed
    code, _, err = cli(capsys, "push")
    assert code == 1 and "git-lfs is not installed" in err and "sudo apt-get install git-lfs" in err
    code, out, _ = cli(capsys, "push", "--no-artifacts")
    assert code == 0 and "1 new" in out
    monkeypatch.chdir(b)
    assert cli(capsys, "pull")[0] == 0
    code, _, err = cli(capsys, "get", "nolfs", "-o", str(tmp_path / "there"))
    assert code == 1 and "git-lfs is not installed" in err and "brew install git-lfs" in err


# -- a real Git LFS server over HTTP ------------------------------------------------------------

SERVER = """
import json, sys
from werkzeug.serving import make_server
from giftless.app import init_app

app = init_app(additional_config=json.loads(sys.argv[1]))
server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def lfs_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """giftless on a free loopback port, anonymous read/write, objects under a temporary folder."""
    if os.environ.get("CI"):
        import giftless  # noqa: F401 - in CI the test extra is installed: a missing server is a failure
    else:
        pytest.importorskip("giftless", reason="the LFS server of the test extra: pip install -e '.[test]'")
    storage = tmp_path / "lfs-server"
    config = {"LEGACY_ENDPOINTS": False, "AUTH_PROVIDERS": ["giftless.auth.allow_anon:read_write"],
              "TRANSFER_ADAPTERS": {"basic": {"factory": "giftless.transfer.basic_streaming:factory", "options": {
                  "storage_class": "giftless.storage.local_storage:LocalStorage",
                  "storage_options": {"path": str(storage)}}}}}
    script = tmp_path / "lfs_server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(config)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline() if proc.stdout else ""),
                         daemon=True).start()
        port = int(lines.get(timeout=60))
        url = f"http://127.0.0.1:{port}/team/project.git/info/lfs"
        deadline = time.monotonic() + 60
        while True:  # ready once it answers HTTP at all
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url, storage
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_artifacts_travel_through_an_lfs_server_over_http(
        clones: tuple[Path, Path], bare: Path, lfs_server: tuple[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = clones
    url, storage = lfs_server
    for clone in (a, b):
        git(clone, "config", "lfs.url", url)
        git(clone, "config", "lfs.locksverify", "false")
    big = os.urandom(40_000)
    run = make_run("http", {"model.bin": big})
    code, out, err = cli(capsys, "push")
    assert (code, err) == (0, "") and "LFS: 1 object(s)" in out
    oid = hashlib.sha256(big).hexdigest()
    assert [p.read_bytes() for p in storage.rglob(oid)] == [big]
    assert not (bare / "lfs").exists()  # the content went over HTTP, not file://

    monkeypatch.chdir(b)
    assert cli(capsys, "pull")[0] == 0
    code, out, err = cli(capsys, "get", run.id, "model.bin", "-o", str(tmp_path / "out"))
    assert (code, err) == (0, "") and "1 fetched through Git LFS" in out
    assert (tmp_path / "out" / "model.bin").read_bytes() == big


def test_progress_goes_to_a_terminal_only(clones: tuple[Path, Path], env_for_subprocess: dict[str, str]) -> None:
    import pty

    a, _ = clones
    make_run("progress", {"w.bin": os.urandom(5000)})
    env = {**env_for_subprocess, "PYTHONPATH": str(ROOT)}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "push"], cwd=a, env=env, stdout=subprocess.PIPE,
                            stderr=follower, text=True)
    os.close(follower)
    seen = b""
    while True:  # until the child and everything it started close the terminal
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "1 new" in out, out
    assert b"Uploading LFS objects" in seen, out  # git-lfs's progress, shown live on the terminal


def test_handles_of_listed_runs_are_those_among_every_run() -> None:
    from gitexp.cli.share import _handles
    from gitexp.store import names

    ids = [f"20261202-{n:07x}{r}" for n, r in enumerate(
        ["ab12cd3e", "ab12cd3f", "ab12cd4e", "12345678", "12345679", "20261205", "2026120a", "ffffffff", "0badcafe"])]
    ids.append("not-a-standard-id")
    every = [f"refs/experiments/cnn/{run_id}" for run_id in ids]
    full = names.handles(ids)
    assert {full[i] for i in ids[:3]} == {"ab12cd3e", "ab12cd3f", "ab12cd4"}  # what the test exercises
    assert full[ids[5]] == "20261205" and full[ids[6]] == "2026120a"
    for run_id in ids:
        assert _handles([run_id], every)[run_id] == full[run_id]


def test_runs_a_fetch_creates_count_toward_packing_the_refs(clones: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """git itself creates the refs of fetched runs (one `git update-ref --stdin`): they count toward
    the ref upkeep as runs made here do, so 10,000 fetched runs do not stay 10,000 loose refs."""
    _a, b = clones
    runs = [make_run(f"fetched-{i}") for i in range(3)]
    assert cli(capsys, "push")[0] == 0
    pending = b / ".git" / reflogs.PENDING
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_bytes(b"." * (reflogs.PACK_EVERY - 2))  # the second fetched run is the hundredth new ref
    monkeypatch.chdir(b)
    assert cli(capsys, "fetch")[0] == 0
    deadline = time.monotonic() + 60
    while any((b / ".git" / run.ref).exists() for run in runs):  # the upkeep runs detached, as after a run
        assert time.monotonic() < deadline, "the fetched refs were never packed"
        time.sleep(0.05)
    packed = (b / ".git" / "packed-refs").read_text()
    assert all(run.ref in packed for run in runs)
    assert pending.stat().st_size >= reflogs.PACK_EVERY + 1
