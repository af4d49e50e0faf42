"""The multi-pack-index gitexp's upkeep keeps (gitexp/git/midx.py): written over every pack once
they are many, left valid by gitexp's merges and settling, and by the user's own git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import gitexp
from gitexp.git import maintenance, midx, settle
from tests.conftest import git


def make_runs(count: int, prefix: str) -> None:
    for i in range(count):
        with gitexp.start_run(name=f"{prefix}{i}", params={"i": i}, system_metrics_interval=0) as run:
            run.log_metric("loss", 1.0 / (i + 1))


def pack_dir(repo: Path) -> Path:
    return repo / ".git" / "objects" / "pack"


def sound(repo: Path) -> None:
    """What a user would run: git's own checks of the index and of every object, and a read of each run."""
    git(repo, "multi-pack-index", "verify")
    git(repo, "fsck", "--no-dangling")
    assert all(r.metrics["loss"]["count"] == 1 for r in gitexp.load_runs())


def refresh(repo: Path, minimum: int = 1, only_if_absent: bool = False) -> bool:
    """What an upkeep pass does (settle.index_packs; settle() in an archiving pass, which also folds)."""
    with maintenance.pack_lock(repo / ".git", wait=True):
        return midx.due(repo / ".git", minimum, only_if_absent) and midx.write(repo / ".git")


def test_written_over_every_pack_once_they_hold_enough_objects(repo: Path) -> None:
    make_runs(3, "a")
    packs = midx.packs(pack_dir(repo))
    assert len(packs) >= 2
    assert not refresh(repo, minimum=10**9) and midx.covered(pack_dir(repo)) is None  # too few objects
    assert refresh(repo)
    assert midx.covered(pack_dir(repo)) == frozenset(packs)
    sound(repo)
    assert not refresh(repo), "it names every pack already: not written again"


def test_gitexp_merges_leave_the_packs_it_names_alone(repo: Path) -> None:
    make_runs(4, "a")
    assert refresh(repo)
    named = midx.covered(pack_dir(repo))
    assert named is not None
    make_runs(8, "b")  # more small packs, which a merge folds
    before = set(midx.packs(pack_dir(repo)))
    assert maintenance.compact(repo / ".git", wait=True) >= 2
    after = set(midx.packs(pack_dir(repo)))
    assert named <= after and before - after and not (before - after) & named
    assert midx.covered(pack_dir(repo)) == named
    sound(repo)
    assert refresh(repo) and midx.covered(pack_dir(repo)) == frozenset(after)  # the new ones named too


def test_settling_writes_it_again_and_git_gc_keeps_it_right(repo: Path) -> None:
    make_runs(4, "a")
    assert refresh(repo)
    done = settle.settle(repo / ".git", minimum=0, index_from=1)
    assert done.removed >= 1 and done.indexed  # packs it named were removed: a new one names what is left
    assert midx.covered(pack_dir(repo)) == frozenset(midx.packs(pack_dir(repo)))
    sound(repo)
    make_runs(2, "b")
    git(repo, "gc", "-q")  # the user's: repacks their packs, and drops an index naming one it removes
    sound(repo)
    if midx.covered(pack_dir(repo)) is None and len(midx.packs(pack_dir(repo))) >= 2:
        assert refresh(repo, only_if_absent=True)  # what the next upkeep pass does
        sound(repo)


def test_a_stale_index_is_replaced(repo: Path) -> None:
    """One naming a pack that is gone (left by a process killed between the two steps) is read
    around by git, but `git fsck` reports it: the next refresh replaces it."""
    make_runs(3, "a")
    assert refresh(repo)
    folder = pack_dir(repo)
    gone = sorted(midx.packs(folder))[0]
    data = (folder / f"{gone}.pack").read_bytes()
    for suffix in ("idx", "pack", "rev"):
        (folder / f"{gone}.{suffix}").unlink(missing_ok=True)
    subprocess.run(["git", "unpack-objects", "-q"], cwd=repo, input=data, check=True)  # its objects, now loose
    assert gone in (midx.covered(folder) or ())
    assert refresh(repo)
    assert gone not in (midx.covered(folder) or ())
    sound(repo)


def test_what_is_not_a_multi_pack_index_names_no_pack(repo: Path) -> None:
    folder = pack_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    for content in (b"", b"MIDX", b"MIDX\1\1\5\0\0\0\0\2" + b"\0" * 7, b"not an index at all"):
        (folder / midx.NAME).write_bytes(content)
        assert midx.covered(folder) is None


def test_each_pass_folds_gitexp_packs_first_so_the_named_ones_stay_few(repo: Path) -> None:
    """Packs the index names are never merged: so a pass folds gitexp's packs into one before it
    writes the index, or each pass would leave a sweep's handful for good, and git gc --auto
    counts every pack without a .keep (50 start a repack inside the user's git commit)."""
    folder = pack_dir(repo)
    for round_ in range(3):
        make_runs(5, f"r{round_}")
        assert len(midx.packs(folder)) >= 3
        done = settle.settle(repo / ".git", minimum=10**9, index_from=1)  # (nothing to settle: the index alone)
        assert done.indexed and done.objects == 0
        assert midx.covered(folder) == frozenset(midx.packs(folder))
        # The user's pack (the fixture's first commit, if git packed it) and one of gitexp's at most.
        assert maintenance.mergeable(repo / ".git") == 0 and len(midx.packs(folder)) <= 2
        sound(repo)
    assert settle.index_packs(repo / ".git", index_from=1) is False  # there is one: a plain pass leaves it
