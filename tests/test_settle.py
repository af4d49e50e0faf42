"""Settled run objects (gitexp/git/settle.py): packed by git, kept out of `git gc`, nothing lost."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.git import maintenance, packindex, reflogs, refmaint, settle
from gitexp.ops import trash
from tests.conftest import git


def make_runs(count: int, prefix: str = "r") -> list[gitexp.Run]:
    made = []
    for i in range(count):
        with gitexp.start_run(name=f"{prefix}{i}", params={"lr": 0.1 * (i + 1)}, system_metrics_interval=0) as run:
            for step in range(3):
                run.log_metric("loss", 1.0 / (step + i + 1), step=step)
        made.append(run)
    return made


def pack_names(repo: Path, bases: list[str]) -> set[str]:
    names: set[str] = set()
    for base in bases:
        table = packindex.object_names((repo / ".git" / "objects" / "pack" / f"{base}.idx").read_bytes())
        names.update(table[i:i + 20].hex() for i in range(0, len(table), 20))
    return names


def plain_packs(repo: Path) -> list[str]:
    folder = repo / ".git" / "objects" / "pack"
    return [n[:-4] for n in os.listdir(folder) if n.endswith(".idx") and not (folder / f"{n[:-4]}.keep").exists()]


def deltas(repo: Path, base: str) -> int:
    """Objects of a pack stored as deltas (verify-pack's lines naming a base)."""
    out = git(repo, "verify-pack", "-v", str(repo / ".git" / "objects" / "pack" / f"{base}.idx"))
    return sum(1 for line in out.splitlines() if len(line.split()) == 7)


def settled_by_hand(repo: Path, runs: list[gitexp.Run]) -> None:
    """A settled pack of what *runs* reach and no kept pack holds, made with git itself."""
    pack_dir = repo / ".git" / "objects" / "pack"
    revs = "\n".join([*(r.ref for r in runs), "--not", "HEAD"]) + "\n"
    base = "pack-" + git(repo, "pack-objects", "--revs", "--honor-pack-keep", "-q", str(pack_dir / "pack"),
                         input_text=revs).strip()
    (pack_dir / f"{base}.keep").write_bytes(settle.KEEP)


def run_objects(repo: Path, runs: list[gitexp.Run]) -> set[str]:
    """What the runs reach and the user's branch does not: what settling is to keep."""
    out = git(repo, "rev-list", "--objects", *(r.ref for r in runs), "--not", "HEAD")
    return {line.split()[0] for line in out.splitlines()}


def test_settle_keeps_run_objects_from_git_gc(repo: Path) -> None:
    runs = make_runs(3)
    head = git(repo, "rev-parse", "HEAD").strip()
    done = settle.settle(repo / ".git", minimum=0)
    pack_dir = repo / ".git" / "objects" / "pack"
    kept = settle.settled_packs(pack_dir)
    assert len(kept) == 1 and (pack_dir / f"{kept[0]}.keep").read_bytes() == b"gitexp settled\n"
    held = pack_names(repo, kept)
    assert run_objects(repo, runs) <= held and done.objects == len(held)
    assert head not in held  # the user's history is not the runs' to keep
    # gitexp's own packs of those runs held nothing else: they are gone.
    assert not pack_names(repo, plain_packs(repo)) & held and done.removed >= 1
    git(repo, "gc", "-q")
    assert settle.settled_packs(pack_dir) == kept
    assert not pack_names(repo, plain_packs(repo)) & held  # git's pack left them out
    git(repo, "fsck", "--connectivity-only")
    histories = sorted(list(r.history("loss").values) for r in gitexp.load_runs())
    assert histories == [[1.0 / 3, 1.0 / 4, 1.0 / 5], [1.0 / 2, 1.0 / 3, 1.0 / 4], [1.0, 1.0 / 2, 1.0 / 3]]


def test_settled_objects_are_compressed(repo: Path) -> None:
    """gitexp writes small objects as uncompressed deflate blocks (fast to write); settling is
    where they are compressed, once, in the background, for good."""
    runs = make_runs(3)

    def sizes() -> list[tuple[int, int, bool]]:  # (size, bytes on disk, stored as a delta)
        out = git(repo, "cat-file", "--batch-check=%(objectsize) %(objectsize:disk) %(deltabase)",
                  input_text="\n".join(run_objects(repo, runs)) + "\n")
        return [(int(a), int(b), set(c) != {"0"}) for a, b, c in (line.split() for line in out.splitlines())]

    written = [(size, disk) for size, disk, delta in sizes() if 200 <= size < 1024 and not delta]
    assert written and all(disk > size for size, disk in written)  # as gitexp wrote them: stored
    settle.settle(repo / ".git", minimum=0)
    settled = [(size, disk) for size, disk, delta in sizes() if 200 <= size < 1024 and not delta]
    assert settled and all(disk < size for size, disk in settled)


def test_settle_twice_adds_only_new_runs_and_keeps_packs_few(repo: Path) -> None:
    first = make_runs(2, "a")
    settle.settle(repo / ".git", minimum=0)
    pack_dir = repo / ".git" / "objects" / "pack"
    before = pack_names(repo, settle.settled_packs(pack_dir))
    assert settle.settle(repo / ".git", minimum=0).objects == 0  # nothing new: no empty pack
    every = first
    for round_ in range(4):
        runs = make_runs(2, f"b{round_}-")
        every += runs
        done = settle.settle(repo / ".git", minimum=0)
        new = run_objects(repo, runs) - before  # runs share blobs (code, env) with earlier ones
        assert new and done.objects == len(new)
        kept = settle.settled_packs(pack_dir)
        assert len(kept) == 1 and done.rolled == 2  # the new pack merged with the one before
        assert pack_names(repo, kept) == before | new
        before = pack_names(repo, kept)
    git(repo, "fsck", "--connectivity-only")
    assert len(gitexp.load_runs()) == len(every)


def test_settled_packs_an_older_gitexp_left_are_merged_into_one(repo: Path) -> None:
    """Each big pack index costs the user's git a search per object it looks up: a pass with
    nothing to settle still merges the settled packs it finds into one, deltas kept."""
    make_runs(2, "a")
    settle.settle(repo / ".git", minimum=0)
    second = make_runs(2, "b")
    pack_dir = repo / ".git" / "objects" / "pack"
    settled_by_hand(repo, second)  # as gitexp's geometric roll-up used to leave them
    before = settle.settled_packs(pack_dir)
    assert len(before) == 2
    held, found = pack_names(repo, before), sum(deltas(repo, base) for base in before)
    done = settle.settle(repo / ".git", minimum=10 ** 9)  # nothing new to settle
    after = settle.settled_packs(pack_dir)
    assert done.objects == 0 and done.rolled == 2 and len(after) == 1
    assert pack_names(repo, after) == held and not set(after) & set(before)
    # The deltas settling found are kept, none dropped (nor searched for again):
    assert 0 < found == deltas(repo, after[0])
    git(repo, "fsck", "--strict")
    assert sorted(r.name for r in gitexp.load_runs()) == ["a0", "a1", "b0", "b1"]


def test_settled_packs_are_merged_without_the_pack_lock(repo: Path) -> None:
    """Merging the settled packs takes seconds at 100,000 runs: it does not hold the lock that a
    sweep's writers wait for (maintenance.pack_lock), nor need it."""
    make_runs(2, "a")
    settle.settle(repo / ".git", minimum=0)
    later = make_runs(2, "b")
    with maintenance.pack_lock(repo / ".git", wait=False) as held:  # (a writer merging its packs)
        assert held
        assert settle.settle(repo / ".git", minimum=0).objects == 0  # (the pass itself needs the lock: none made)
        settled_by_hand(repo, later)
        pack_dir = repo / ".git" / "objects" / "pack"
        assert len(settle.settled_packs(pack_dir)) == 2
        done = settle.settle(repo / ".git", minimum=10 ** 9)
        assert done.rolled == 2 and len(settle.settled_packs(pack_dir)) == 1
    git(repo, "fsck", "--strict")
    assert len(gitexp.load_runs()) == 4


def test_settled_packs_past_the_roll_up_size_are_merged_geometrically(repo: Path) -> None:
    """Past ROLL_UP_MOST, a pass would copy every settled object again: the smallest are merged,
    until each pack is twice the size of all smaller ones together."""
    pack_dir = repo / ".git" / "objects" / "pack"
    every = make_runs(2, "a")
    settle.settle(repo / ".git", minimum=0)
    most = 0
    for round_ in range(4):
        every += make_runs(2, f"b{round_}-")
        done = settle.settle(repo / ".git", minimum=0, roll_up_most=0)
        assert done.objects
        sizes = sorted(os.path.getsize(pack_dir / f"{base}.pack") for base in settle.settled_packs(pack_dir))
        assert all(size >= 2 * sum(sizes[:i]) for i, size in enumerate(sizes) if i), sizes
        most = max(most, len(sizes))
    assert most > 1  # (not all merged into one each time)
    assert pack_names(repo, settle.settled_packs(pack_dir)) >= run_objects(repo, every)
    git(repo, "fsck", "--connectivity-only")
    assert len(gitexp.load_runs()) == len(every)


def test_pack_mostly_settled_is_rewritten_keeping_the_rest(repo: Path) -> None:
    runs = make_runs(3)
    stray = git(repo, "hash-object", "-w", "--stdin", input_text="a blob no ref reaches\n").strip()
    ids = [*sorted(run_objects(repo, runs)), stray]
    assert len(ids) >= 11  # the stray blob is under a tenth of the pack
    base = git(repo, "pack-objects", ".git/objects/pack/pack", input_text="\n".join(ids) + "\n").strip()
    settle.settle(repo / ".git", minimum=0)
    pack_dir = repo / ".git" / "objects" / "pack"
    assert not (pack_dir / f"pack-{base}.idx").exists()
    git(repo, "cat-file", "-e", stray)  # still there, in the rewritten remainder
    assert stray in pack_names(repo, plain_packs(repo))


def test_pack_mostly_of_other_objects_is_left_alone(repo: Path) -> None:
    runs = make_runs(1)
    mine = [git(repo, "hash-object", "-w", "--stdin", input_text=f"user blob {i}\n").strip() for i in range(40)]
    ids = sorted(run_objects(repo, runs)) + mine
    base = git(repo, "pack-objects", ".git/objects/pack/pack", input_text="\n".join(ids) + "\n").strip()
    settle.settle(repo / ".git", minimum=0)
    assert (repo / ".git" / "objects" / "pack" / f"pack-{base}.idx").exists()
    for oid in mine:
        git(repo, "cat-file", "-e", oid)


def test_exp_gc_hands_settled_objects_back_to_git_gc(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gone, stays = make_runs(2)
    gone_commit, stays_commit = (git(repo, "rev-parse", r.ref).strip() for r in (gone, stays))
    settle.settle(repo / ".git", minimum=0)
    trash.remove([gone.id])
    pack_dir = repo / ".git" / "objects" / "pack"
    assert main(["gc"]) == 0
    out = capsys.readouterr().out
    assert f"deleted refs/experiments-trash/default/{gone.id}" in out
    assert "handed 1 pack(s) of settled run objects back to git: the next `git gc` repacks every run once" in out
    assert settle.settled_packs(pack_dir) == []
    git(repo, "gc", "-q", "--prune=now")
    assert subprocess.run(["git", "cat-file", "-e", gone_commit], cwd=repo).returncode != 0
    git(repo, "cat-file", "-e", stays_commit)
    settle.settle(repo / ".git", minimum=0)  # the next upkeep settles what is left
    assert stays_commit in pack_names(repo, settle.settled_packs(pack_dir))
    assert main(["gc"]) == 0 and "handed" not in capsys.readouterr().out  # nothing deleted: nothing handed back


def test_upkeep_settles_with_the_archiving_pass(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle, "SETTLE_FROM", 1)  # the upkeep's own threshold, down to this small repository
    runs = make_runs(1)
    (repo / ".git" / reflogs.PENDING).write_bytes(b"." * reflogs.ARCHIVE_EVERY)
    refmaint.upkeep(repo / ".git", min_age=0)
    settled = pack_names(repo, settle.settled_packs(repo / ".git" / "objects" / "pack"))
    assert git(repo, "rev-parse", runs[0].ref).strip() in settled


def test_settle_waits_for_enough_new_objects(repo: Path) -> None:
    make_runs(2)
    assert settle.settle(repo / ".git") == settle.Settled()  # far from SETTLE_FROM objects
    pack_dir = repo / ".git" / "objects" / "pack"
    assert settle.settled_packs(pack_dir) == []
    make_runs(22, "more")
    first = settle.settle(repo / ".git", minimum=0)
    assert first.objects >= 8 * 14
    # One more run writes fewer objects than an eighth of those settled: it waits.
    late = make_runs(1, "late")
    assert settle.settle(repo / ".git", minimum=0) == settle.Settled()
    assert git(repo, "rev-parse", late[0].ref).strip() not in pack_names(repo, settle.settled_packs(pack_dir))
    make_runs(12, "many")
    assert settle.settle(repo / ".git", minimum=0).objects > 0
    assert git(repo, "rev-parse", late[0].ref).strip() in pack_names(repo, settle.settled_packs(pack_dir))


def test_partial_clone_is_not_settled(repo: Path, tmp_path: Path) -> None:
    make_runs(2)
    git(repo, "config", "uploadpack.allowFilter", "true")
    clone = tmp_path / "partial"
    git(tmp_path, "clone", "-q", "--filter=blob:none", f"file://{repo}", str(clone))
    git(clone, "fetch", "-q", "origin", "+refs/experiments/*:refs/experiments/*")
    assert git(clone, "config", "remote.origin.promisor").strip() == "true"
    before = sorted(os.listdir(clone / ".git" / "objects" / "pack"))
    assert settle.settle(clone / ".git", minimum=0) == settle.Settled()
    # Walking the runs would have fetched every blob they name from the remote, one pack each.
    assert sorted(os.listdir(clone / ".git" / "objects" / "pack")) == before


def test_a_ref_at_a_missing_object_does_not_stop_settling(repo: Path) -> None:
    runs = make_runs(2)
    (repo / ".git" / "refs" / "experiments" / "default" / "20260101-0000000000000000").write_text("ab" * 20 + "\n")
    assert settle.settle(repo / ".git", minimum=0).objects > 0
    assert run_objects(repo, runs) <= pack_names(repo, settle.settled_packs(repo / ".git" / "objects" / "pack"))


def test_packs_stay_while_git_gc_runs(repo: Path) -> None:
    runs = make_runs(2)
    (repo / ".git" / "gc.pid").write_text("999999999 otherhost\n")  # a `git gc` at work elsewhere
    assert settle.settle(repo / ".git", minimum=0).removed == 0
    held = pack_names(repo, settle.settled_packs(repo / ".git" / "objects" / "pack"))
    assert run_objects(repo, runs) <= held
    assert pack_names(repo, plain_packs(repo)) & held  # left for that gc, which would fail on a pack taken away
    (repo / ".git" / "gc.pid").unlink()
    git(repo, "gc", "-q")
    assert not pack_names(repo, plain_packs(repo)) & held
    git(repo, "fsck", "--connectivity-only")


def test_a_dead_pass_leaves_no_pack_behind(repo: Path) -> None:
    make_runs(1)
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = repo / ".git" / "gitexp" / f"settle.{dead.pid}"
    left.mkdir(parents=True)
    (left / "pack-0123.pack").write_bytes(b"PACK half written")
    pack_dir = repo / ".git" / "objects" / "pack"
    (pack_dir / "pack-0123.keep").write_bytes(settle.KEEP)  # moved into place, then killed before its index
    (pack_dir / "pack-0123.pack").write_bytes(b"PACK moved")
    (pack_dir / "pack-4567.keep").write_bytes(b"the user's own keep\n")  # not gitexp's to judge
    settle.settle(repo / ".git", minimum=0)
    assert not left.exists()
    assert not (pack_dir / "pack-0123.keep").exists() and not (pack_dir / "pack-0123.pack").exists()
    assert (pack_dir / "pack-4567.keep").exists()


def test_settle_waits_for_no_merge(repo: Path) -> None:
    make_runs(1)
    with maintenance.pack_lock(repo / ".git", wait=False) as held:
        assert held
        assert settle.settle(repo / ".git", minimum=0) == settle.Settled()
    assert settle.settled_packs(repo / ".git" / "objects" / "pack") == []


def test_settle_without_git_changes_nothing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_runs(1)
    before = sorted(os.listdir(repo / ".git" / "objects" / "pack"))
    monkeypatch.setenv("PATH", str(repo / "no-such-dir"))
    assert settle.settle(repo / ".git", minimum=0) == settle.Settled()
    assert sorted(os.listdir(repo / ".git" / "objects" / "pack")) == before
