"""Objects and packs written in Python are exactly what git itself would write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.git import pack
from tests.conftest import git


def git_hash(repo: Path, kind: str, data: bytes) -> str:
    return subprocess.run(["git", "hash-object", "-t", kind, "--stdin"], cwd=repo, input=data,
                          capture_output=True, check=True).stdout.decode().strip()


def test_object_ids_match_git(repo: Path) -> None:
    for data in (b"", b"hello\n", bytes(range(256)) * 40):
        assert pack.object_id(pack.BLOB, data) == git_hash(repo, "blob", data)


def test_tree_entries_are_in_gits_order(repo: Path) -> None:
    blob = git_hash(repo, "blob", b"x")
    sub = pack.object_id(pack.TREE, pack.encode_tree({"f": (0o100644, blob)}))
    # 'a' as a tree sorts as 'a/', after 'a-b' and 'a.txt' ('-' and '.' sort before '/').
    entries = {"a": (0o040000, sub), "a.txt": (0o100644, blob), "a-b": (0o100755, blob), "b": (0o120000, blob)}
    data = pack.encode_tree(entries)
    pack_path = pack.write_pack(repo / ".git/objects/pack",
                                {sub: (pack.TREE, pack.encode_tree({"f": (0o100644, blob)})),
                                 pack.object_id(pack.TREE, data): (pack.TREE, data),
                                 blob: (pack.BLOB, b"x")})
    listing = git(repo, "ls-tree", pack.object_id(pack.TREE, data)).splitlines()
    assert [line.split("\t")[1] for line in listing] == ["a-b", "a.txt", "a", "b"]
    assert git(repo, "verify-pack", str(pack_path.with_suffix(".idx"))) == ""


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=12, unique=True))
def test_any_blobs_round_trip_through_a_pack(tmp_path_factory, blobs: list[bytes]) -> None:
    # Sizes on both sides of pack.STORE_BELOW: stored and compressed objects alike.
    repo = tmp_path_factory.mktemp("packs")
    git(repo, "init", "-q")
    objects = {pack.object_id(pack.BLOB, b): (pack.BLOB, b) for b in blobs}
    path = pack.write_pack(repo / ".git/objects/pack", objects)
    assert git(repo, "verify-pack", str(path.with_suffix(".idx"))) == ""
    for oid, (_, data) in objects.items():
        out = subprocess.run(["git", "cat-file", "blob", oid], cwd=repo, capture_output=True, check=True).stdout
        assert out == data


def test_run_commits_pass_git_fsck_strict(repo: Path) -> None:
    (repo / "train.py").write_text("print('dirty')\n")
    with gitexp.start_run(name="fsck", params={"lr": 0.1}, system_metrics_interval=0) as run:
        for step in range(100):
            run.log_metrics({"loss": 1 / (step + 1), "val/acc": step / 100}, step=step)
    gitexp.flush()  # the run's note written before fsck reads objects, then reflogs: not in between
    out = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert git(repo, "cat-file", "-t", run.ref).strip() == "commit"
    assert "lr: 0.1" in git(repo, "show", f"{run.ref}:params.yaml")


def test_run_commits_name_people_and_time_zone_as_git_does(repo: Path, monkeypatch) -> None:
    import time

    # Nepal's +05:45 checks the minutes of the offset; the brackets are what git drops from a name.
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ann <admin> Lee ")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "<ann@example.com>")
    try:
        with gitexp.start_run(system_metrics_interval=0) as run:
            run.log_metric("loss", 1.0)
        git(repo, "commit", "-q", "--allow-empty", "-m", "by git")
        fields = "%an|%ae|%cn|%ce|%ad"
        ours = git(repo, "log", "-1", f"--format={fields}", "--date=format:%z", run.ref).strip()
        theirs = git(repo, "log", "-1", f"--format={fields}", "--date=format:%z", "HEAD").strip()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert ours == theirs == "Ann admin Lee|ann@example.com|Test Committer|committer@example.com|+0545"


def test_writers_of_the_same_objects_each_get_a_pack_and_a_keep_of_their_own(repo: Path) -> None:
    """Four processes snapshotting the same code wrote the same one-tree pack under one name and shared
    its .keep: the first to finish lifted it while the others' runs still needed it, and a concurrent
    `git repack -ad` deleted the tree (`bad tree object` at the end of test_faults' gc test)."""
    from gitexp.git import maintenance
    from gitexp.git.repo import Repo

    first, second = Repo.discover(repo), Repo.discover(repo)  # as two processes would hold them
    pack_dir = repo / ".git" / "objects" / "pack"
    blob = first.write_blob(b"the same artifact")
    assert second.write_blob(b"the same artifact") == blob
    packs = sorted(p.name for p in pack_dir.glob("pack-*.pack"))
    keeps = sorted(p.name for p in pack_dir.glob("pack-*.keep"))
    assert len(packs) == 2 and [k.replace(".keep", ".pack") for k in keeps] == packs
    first.release_all()  # the first writer's run is done with its copy
    assert len(list(pack_dir.glob("pack-*.keep"))) == 1, "the second writer's pack must stay kept"
    subprocess.run(["git", "repack", "-adq"], cwd=repo, check=True)  # drops the unreachable, unkept copy
    assert git(repo, "cat-file", "-p", blob) == "the same artifact"
    assert git(repo, "fsck", "--no-dangling", check=False) == ""  # git reads the re-encoded pack
    second.release_all()
    assert maintenance.claim(pack_dir / "pack-{}.pack".format("0" * 40)) is True
    assert maintenance.claim(pack_dir / "pack-{}.pack".format("0" * 40)) is False, "a name is claimed once"
    maintenance.release([str(pack_dir / "pack-{}.keep".format("0" * 40))])


def test_a_thread_discarding_or_writing_its_staging_leaves_another_threads_alone(repo: Path) -> None:
    """The background thread's notes update, finding nothing to change, discarded the whole staging
    area of the Repo it shares with the training thread: a blob that thread had staged for the run's
    next tree was never written, and the run's commit named a missing object (git repack: `unable to
    read`). Each thread now stages for its own pack."""
    import threading

    from gitexp.git.repo import BLOB_MODE, Entry, Repo
    from gitexp.store import notes

    r = Repo.discover(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    blob = r.stage_blob(b"loss history of the run", look_up=False)  # the training thread, mid-tree

    def background() -> None:
        notes.update(r, lambda tip: {}, "nothing to change", flush=False)  # discards what *it* staged
        other = r.commit_staged(r.stage_tree({"n": b"a note"}), [head], "notes of another run")
        r.cas_ref("refs/notes/other", other, None, "notes of another run")

    worker = threading.Thread(target=background)
    worker.start()
    worker.join()
    assert git(repo, "cat-file", "-t", blob, check=False) != "blob", "the other thread wrote this thread's blob"
    run = r.commit_staged(r.stage_tree({"metrics": {"loss.tsv": Entry(blob, BLOB_MODE)}}), [head], "the run")
    r.cas_ref("refs/experiments/default/run", run, None, "the run")
    assert git(repo, "cat-file", "-p", f"{run}:metrics/loss.tsv") == "loss history of the run"
    subprocess.run(["git", "repack", "-adq"], cwd=repo, check=True)
    assert git(repo, "fsck", "--no-dangling", check=False) == ""


def test_objects_whose_pack_failed_are_written_by_the_next_pack_of_any_thread(repo: Path) -> None:
    """A checkpoint in the background thread fails to write its pack; the history blob it staged is
    named by every later commit of the run, which the training thread may write (the run's end)."""
    import threading

    import pytest

    from gitexp.errors import StorageError
    from gitexp.git.repo import BLOB_MODE, Entry, Repo

    r = Repo.discover(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    pack_dir = repo / ".git/objects/pack"
    blob = r.stage_blob(b"loss history", look_up=False)
    failures = []

    def checkpoint() -> None:
        blob_in_thread = r.stage_blob(b"history staged by the checkpoint", look_up=False)
        pack_dir.rename(pack_dir.with_name("pack.away"))  # the disk refuses the write
        try:
            with pytest.raises(StorageError, match="cannot write objects"):
                r.write_staged()
        except BaseException as exc:
            failures.append(exc)
        finally:
            pack_dir.with_name("pack.away").rename(pack_dir)
        failures.append(blob_in_thread)

    worker = threading.Thread(target=checkpoint)
    worker.start()
    worker.join()
    *errors, other = failures
    assert not errors
    tree = r.stage_tree({"a.tsv": Entry(blob, BLOB_MODE), "b.tsv": Entry(other, BLOB_MODE)})
    run = r.commit_staged(tree, [head], "the run's end, from the training thread")
    r.cas_ref("refs/experiments/default/run", run, None, "the run")
    assert git(repo, "cat-file", "-p", f"{run}:b.tsv") == "history staged by the checkpoint"
    assert git(repo, "fsck", "--no-dangling", check=False) == ""


def test_a_ref_moving_elsewhere_leaves_kept_what_only_an_unwritten_tree_names(repo: Path) -> None:
    """One Repo serves a run and, in the background, the notes of the run before it: the notes ref
    moving must not free the pack of an artifact blob that only the run's next, unwritten tree
    names, or a concurrent `git repack -ad` may delete it before the run's commit lands."""
    from gitexp.git.repo import BLOB_MODE, Entry, Repo

    r = Repo.discover(repo)
    keeps = repo / ".git" / "objects" / "pack"

    def kept() -> set[str]:
        return {p.name for p in keeps.glob("*.keep")}

    blob = r.write_blob(b"an artifact")  # log_artifact: its own pack, kept until a commit names it
    blob_keeps = kept()
    tree = r.stage_tree({"artifacts": {"model.txt": Entry(blob, BLOB_MODE)}})  # the run's next tree, staged
    head = git(repo, "rev-parse", "HEAD").strip()
    notes = r.commit_staged(r.write_tree({"note": Entry(r.write_blob(b"a note"), BLOB_MODE)}), [head], "notes")
    r.cas_ref("refs/notes/other", notes, None, "notes of another run")
    assert blob_keeps <= kept(), "a ref moved to a commit that does not reach the blob, and its pack lost its keep"
    run = r.commit_staged(tree, [head], "the run")
    r.cas_ref("refs/experiments/default/run", run, None, "the run")
    assert not kept(), "every pack is reached by a ref now, and none should stay kept"
    subprocess.run(["git", "repack", "-adq"], cwd=repo, check=True)
    assert git(repo, "cat-file", "-p", f"{run}:artifacts/model.txt") == "an artifact"


def test_a_sweep_in_one_process_leaves_no_pack_kept_and_the_folder_bounded(repo: Path) -> None:
    """Each run of a sweep writes its note; once the notes ref reaches a note's pack, that pack's
    keep goes, so the small packs can be merged: 60 runs in one process leave no keep and fewer
    packs than the merge threshold allows (a kept pack per note was never merged: a sweep of
    hours made thousands)."""
    from gitexp.git import maintenance
    from gitexp.store import notes

    pack_dir = repo / ".git" / "objects" / "pack"
    for i in range(60):
        with gitexp.start_run(name=f"trial-{i}", params={"i": i}, system_metrics_interval=0) as run:
            run.log_metric("loss", 1 / (i + 1))
        gitexp.flush()  # the run's note written now, as when each trial ends its own process
        assert len(list(pack_dir.glob("*.keep"))) == 0, f"a pack is still kept after run {i} and its note"
    assert len(list(pack_dir.glob("*.pack"))) <= maintenance.SOFT_LIMIT + 2
    git(repo, "fsck", "--no-dangling")
    note = git(repo, "notes", "--ref=experiments", "show", "HEAD").splitlines()
    assert len(note) == 1 + notes.NOTE_LINES and note[-1].startswith(run.id), "the newest runs, and a line saying so"


def test_a_process_whose_runs_ended_merges_their_small_packs_as_it_exits(
        repo: Path, env_for_subprocess: dict[str, str]) -> None:
    """A sweep leaves up to SOFT_LIMIT small packs between two merges, and git searches each for
    every object they lack (the user's own commits): the process that ended the runs folds them as
    it exits, and every run stays whole."""
    from gitexp.git import maintenance

    script = (
        "from pathlib import Path\n"
        "import gitexp\n"
        "from gitexp.git import maintenance\n"
        "for i in range(12):\n"
        "    with gitexp.start_run(name=f'trial-{i}', params={'i': i}, system_metrics_interval=0) as run:\n"
        "        run.log_metric('loss', 1 / (i + 1))\n"
        "gitexp.flush()\n"
        "print(maintenance.mergeable(Path('.git')))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, capture_output=True,
                          text=True, timeout=120, check=True)
    before = int(proc.stdout)
    after = maintenance.mergeable(repo / ".git")
    assert before > maintenance.EXIT_LIMIT, "the runs left more small packs than the exit merge leaves"
    assert after <= maintenance.EXIT_LIMIT < before
    git(repo, "fsck", "--no-dangling")
    assert sorted(r.name for r in gitexp.load_runs()) == sorted(f"trial-{i}" for i in range(12))
    assert {r.name: r.history("loss").values for r in gitexp.load_runs()}["trial-3"] == [0.25]
