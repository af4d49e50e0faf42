"""The run shelf (gitexp/git/shelf.py): runs kept reachable by one ref, read back as their refs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.git import shelf
from gitexp.git.repo import Repo


def _runs(repo: Path, count: int, experiment: str = "shelved") -> dict[str, str]:
    made = {}
    for k in range(count):
        with gitexp.start_run(experiment=experiment, name=f"r{k}", system_metrics_interval=0) as run:
            run.log_metric("acc", k / 10)
        made[run.ref] = Repo.discover(repo).ref(run.ref)
    return made


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_links_shelve_and_take_back_and_read_back_from_git_and_from_the_cache(repo: Path) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 4)
    refs = sorted(made)
    assert shelf.read(git_dir) == {} and shelf.tip(git_dir) is None
    with shelf.locked(git_dir):
        first = shelf.add_link(git_dir, {ref: made[ref] for ref in refs[:3]})
        second = shelf.add_link(git_dir, {refs[3]: made[refs[3]]}, take_back=[refs[0]])
        assert shelf.add_link(git_dir, {refs[3]: made[refs[3]]}) is None  # nothing new
    assert first and second and shelf.tip(git_dir) == second
    expected = {ref: made[ref] for ref in refs[1:]}
    assert shelf.read(git_dir) == expected
    # What git itself shows of a link: its parents are the previous link and the runs it shelves.
    # The tip is a link of no runs, whose one parent is the last that shelved some (docs/format.md).
    link = _git(repo, "rev-parse", f"{second}^1").strip()
    assert _git(repo, "rev-list", "--parents", "-1", second).split() == [second, link]
    assert _git(repo, "ls-tree", second) == "" and _git(repo, "log", "-1", "--format=%s", second).strip() == \
        "gitexp shelf: 0 runs shelved"
    assert _git(repo, "rev-parse", f"{link}^1").strip() == first
    assert _git(repo, "rev-parse", f"{link}^2").strip() == made[refs[3]]
    assert _git(repo, "show", f"{link}:unshelved") == f"{refs[0]}\n"
    assert _git(repo, "log", "-1", "--format=%ad %an", "--date=unix", second).strip() == "946684800 gitexp"
    # Each link's objects are packed, however few: git leaves no loose object of the shelf behind.
    loose = {f"{folder.name}{path.name}" for folder in (git_dir / "objects").glob("??") for path in folder.iterdir()}
    shelf_objects = {line.split()[0] for line in
                     _git(repo, "rev-list", "--objects", second, "--not", *made.values()).splitlines()}
    assert len(shelf_objects) >= 4 and not loose & shelf_objects
    # Another process: from the cache file, then from git alone.
    shelf._memo = None
    assert shelf.read(git_dir) == expected
    (git_dir / shelf.CACHE).unlink()
    shelf._memo = None
    assert shelf.read(git_dir) == expected


def test_the_cache_is_brought_up_to_date_from_the_new_links_and_a_rewritten_shelf_read_whole(repo: Path) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 3)
    a, b, c = sorted(made)
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, {a: made[a]})
    assert shelf.read(git_dir) == {a: made[a]}  # cached at this tip
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, {b: made[b]})
    shelf._memo = None
    assert shelf.read(git_dir) == {a: made[a], b: made[b]}
    # A shelf started again elsewhere (not a descendant of the cached tip) is read from its first link.
    subprocess.run(["git", "update-ref", "-d", shelf.SHELF_REF], cwd=repo, check=True)
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, {c: made[c]})
    shelf._memo = None
    assert shelf.read(git_dir) == {c: made[c]}


def test_git_gc_keeps_shelved_runs_without_their_refs(repo: Path) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 2)
    with shelf.locked(git_dir):
        shelf.add_link(git_dir, made)
    lines = "".join(f"delete {ref} {oid}\n" for ref, oid in made.items())
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=lines, text=True, check=True)
    subprocess.run(["git", "-c", "gc.reflogExpire=now", "-c", "gc.reflogExpireUnreachable=now", "gc", "--prune=now",
                    "--quiet"], cwd=repo, check=True)
    assert _git(repo, "for-each-ref", "refs/experiments/") == ""
    for oid in made.values():
        assert _git(repo, "cat-file", "-t", oid).strip() == "commit"
        assert "summary.json" in _git(repo, "ls-tree", "--name-only", oid)
    assert _git(repo, "fsck", "--no-dangling") == ""


def _bad_link(repo: Path, shelved: str, parents: list[str]) -> str:
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=shelved, capture_output=True,
                          text=True, check=True).stdout.strip()
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=f"100644 blob {blob}\tshelved\n", capture_output=True,
                          text=True, check=True).stdout.strip()
    args = ["git", "commit-tree", tree, "-m", "bad"]
    for parent in parents:
        args += ["-p", parent]
    # Committed as gitexp commits links, so that the reader judges what the link says.
    env = {**os.environ, "GIT_COMMITTER_NAME": "gitexp", "GIT_COMMITTER_EMAIL": "gitexp@localhost",
           "GIT_COMMITTER_DATE": shelf.LINK_DATE}
    return subprocess.run(args, cwd=repo, capture_output=True, text=True, check=True, env=env).stdout.strip()


@pytest.mark.parametrize("shape", ["not a parent", "not a run ref", "not a line", "not a commit", "not a link"])
def test_a_damaged_shelf_is_an_error_that_names_the_link(repo: Path, shape: str) -> None:
    git_dir = repo / ".git"
    made = _runs(repo, 2)
    (a, one), (b, two) = sorted(made.items())
    link = {
        "not a parent": lambda: _bad_link(repo, f"{one} {a}\n{two} {b}\n", [one]),
        "not a run ref": lambda: _bad_link(repo, f"{one} refs/heads/main\n", [one]),
        "not a line": lambda: _bad_link(repo, f"{one}\n", [one]),
        "not a commit": lambda: _git(repo, "rev-parse", "HEAD^{tree}").strip(),
        "not a link": lambda: one,  # a run commit: no link gitexp wrote
    }[shape]()
    subprocess.run(["git", "update-ref", shelf.SHELF_REF, link], cwd=repo, check=True)
    with pytest.raises(shelf.ShelfError) as caught:
        shelf.read(git_dir)
    assert link[:12] in str(caught.value)


# Mostly what gitexp writes (so that whole files are sound), now and then what git forbids.
_SOUND_PARTS = ["cnn", "team", "a.b", "x-1", "20261204-1a43980338a2c65", "20261204-00000000000000f", "é"]
_NAME_PARTS = st.sampled_from(_SOUND_PARTS * 8 + ["..", ".hidden", "b.lock", "", "sp ace", "ok~", "@{", "tab\t",
                                                  "end.", "/", "e//f", "x\r"])
_LINES = st.lists(st.tuples(
    st.sampled_from(["0" * 40, "a" * 40, "1234567890abcdef1234567890abcdef12345678"] * 6 + ["f" * 39, "A" * 40]),
    st.sampled_from([" "] * 12 + ["  ", "\t"]),
    st.sampled_from(["refs/experiments/"] * 12 + ["refs/experiment/", "refs/heads/", ""]),
    st.lists(_NAME_PARTS, min_size=2, max_size=3).map("/".join)), max_size=6)


@settings(max_examples=400, deadline=None)
@given(_LINES, st.sampled_from(["\n", "", "\r\n"]))
def test_shelved_files_checked_at_once_read_as_line_by_line(lines: list[tuple[str, str, str, str]], end: str) -> None:
    text = "".join(f"{oid}{gap}{prefix}{rest}\n" for oid, gap, prefix, rest in lines)
    text = text[:-1] + end if text else text
    try:
        expected: dict[str, str] | None = shelf.parse_shelved_lines(text, "0" * 40)
    except shelf.ShelfError:
        expected = None
    # The same answer: the refs of a sound file, None (read line by line, which says what is wrong) else.
    assert shelf._shelved_at_once(text) == expected


def _packs_holding(git_dir: Path, oid: str) -> set[str]:
    found = set()
    for index in (git_dir / "objects" / "pack").glob("*.idx"):
        with index.open("rb") as handle:
            listed = subprocess.run(["git", "show-index"], stdin=handle, capture_output=True, text=True,
                                    check=True).stdout
        if oid in listed.split():
            found.add(index.stem)
    return found


def test_link_packs_are_folded_by_gitexps_merges(repo: Path) -> None:
    """Each shelving writes its links as a pack of whole objects, which gitexp's pack merges fold
    (a pack of git's deltas they leave alone, and every one would stay until the run objects settle)."""
    from gitexp.git import maintenance

    git_dir = repo / ".git"
    made = _runs(repo, 6)
    refs = sorted(made)
    tips = []
    with shelf.locked(git_dir):
        for batch in (refs[:3], refs[3:]):  # (a pass's links, whose files git would store as deltas)
            tips.append(shelf.add_links(git_dir, [{ref: made[ref] for ref in batch}], per_link=1))
    link_packs = set().union(*(_packs_holding(git_dir, tip) for tip in tips if tip))
    assert len(link_packs) == 2
    maintenance.compact(git_dir)
    assert not link_packs & {path.stem for path in (git_dir / "objects" / "pack").glob("*.idx")}
    shelf._memo = None
    (git_dir / shelf.CACHE).unlink(missing_ok=True)
    assert shelf.read(git_dir) == made
    assert subprocess.run(["git", "fsck", "--strict"], cwd=repo, capture_output=True, text=True).returncode == 0
