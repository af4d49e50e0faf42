"""gitexp/git/gitfiles.py and the LazyRepo of load_runs: git's files read without libgit2 answer exactly
what libgit2 (gitexp.git.repo.Repo) answers, or None, never something else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import gitexp
from gitexp.git import gitfiles
from gitexp.git.lazyrepo import LazyRepo, open_repository
from gitexp.git.repo import Repo
from gitexp.store import runs
from gitexp.store.names import REF_PREFIX
from tests.conftest import git

QUIET = {"system_metrics_interval": 0}
IDS = [f"2026010{day}-{n:015x}" for day in (1, 2) for n in range(3)]


def commits(repo: Path, count: int) -> list[str]:
    """*count* new commits of *repo* (none on a branch)."""
    tree = git(repo, "write-tree").strip()
    return [git(repo, "commit-tree", "-m", f"c{i}", tree).strip() for i in range(count)]


def make_refs(repo: Path, names: list[str], oids: list[str] | None = None) -> dict[str, str]:
    oids = oids or commits(repo, len(names))
    made = dict(zip(names, oids, strict=True))
    script = "".join(f"create {name} {oid}\n" for name, oid in made.items())
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=script, text=True, check=True)
    return made


def run_names(*experiments: str) -> list[str]:
    return [f"{REF_PREFIX}{experiment}/{run_id}" for experiment in experiments for run_id in IDS]


def same_refs(repo: Path, prefix: str = REF_PREFIX) -> dict[str, str] | None:
    """read_refs, checked against Repo.refs (its order too) when it answers."""
    found = gitfiles.read_refs(repo / ".git", prefix)
    if found is not None:
        assert list(found.items()) == list(Repo.discover(repo).refs(prefix).items())
    return found


def same_location(start: Path) -> gitfiles.Location | None:
    """locate, checked against Repo.discover (pygit2.discover_repository) when it answers."""
    found = gitfiles.locate(str(start))
    if found is not None:
        repo = Repo.discover(start)
        assert (found.gitdir, found.commondir) == (repo.gitdir, repo.commondir)
        assert Repo.discover(found.workdir).gitdir == repo.gitdir
        assert LazyRepo(found).workdir == repo.workdir
    return found


# -- read_refs ---------------------------------------------------------------------------------------


def test_loose_packed_and_mixed_refs_read_as_libgit2_reads_them(repo: Path) -> None:
    made = make_refs(repo, run_names("cnn", "team/cnn/v2", "a-b", "a"))
    assert same_refs(repo) == made  # loose
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "experiments" / "cnn" / IDS[0]).exists()
    assert same_refs(repo) == made  # packed
    more = make_refs(repo, [f"{REF_PREFIX}a/20260103-000000000000000", f"{REF_PREFIX}zz/20260103-000000000000001"])
    assert same_refs(repo) == {**made, **more}  # mixed: loose first in libgit2's order, then packed
    for prefix in ("refs/experiments/a", "refs/experiments/a/", "refs/experiments/team/", "refs/heads/"):
        assert same_refs(repo, prefix) is not None, prefix


def test_a_ref_moved_or_deleted_after_packing(repo: Path) -> None:
    made = make_refs(repo, run_names("cnn"))
    git(repo, "pack-refs", "--all")
    moved, deleted = run_names("cnn")[:2]
    (newer,) = commits(repo, 1)
    git(repo, "update-ref", moved, newer)
    git(repo, "update-ref", "-d", deleted)
    found = same_refs(repo)
    assert found is not None and found[moved] == newer and deleted not in found
    assert len(found) == len(made) - 1


def test_peeled_tags_in_packed_refs(repo: Path) -> None:
    git(repo, "tag", "-a", "-m", "v1", "v1")
    git(repo, "tag", "light")
    tag = git(repo, "rev-parse", "v1").strip()
    make_refs(repo, [f"{REF_PREFIX}tagged/{IDS[0]}"], [tag])  # a run ref at an annotated tag, peeled too
    make_refs(repo, run_names("cnn"))
    git(repo, "pack-refs", "--all")
    assert "^" in (repo / ".git" / "packed-refs").read_text()
    found = same_refs(repo)
    assert found is not None and found[f"{REF_PREFIX}tagged/{IDS[0]}"] == tag
    head = git(repo, "rev-parse", "HEAD").strip()
    assert same_refs(repo, "refs/tags/") == {"refs/tags/light": head, "refs/tags/v1": tag}


def test_no_refs_at_all(repo: Path) -> None:
    assert same_refs(repo) == {}
    git(repo, "pack-refs", "--all")
    assert same_refs(repo) == {}
    assert gitfiles.read_refs(repo / ".git", "refs/experiments-trash/") == {}


def test_a_symbolic_ref_is_left_to_libgit2(repo: Path) -> None:
    make_refs(repo, run_names("cnn"))
    git(repo, "symbolic-ref", f"{REF_PREFIX}cnn/link", "refs/heads/main")
    assert same_refs(repo) is None
    assert f"{REF_PREFIX}cnn/link" not in Repo.discover(repo).refs(REF_PREFIX)


@pytest.mark.parametrize("content", ["not a ref\n", "", "abc\n", "0" * 40 + " trailing\n", "0" * 39 + "g\n"])
def test_a_damaged_loose_ref_is_left_to_libgit2(repo: Path, content: str) -> None:
    make_refs(repo, run_names("cnn"))
    (repo / ".git" / "refs" / "experiments" / "cnn" / "bad").write_text(content)
    assert same_refs(repo) is None


def test_lock_files_are_not_refs(repo: Path) -> None:
    made = make_refs(repo, run_names("cnn"))
    (repo / ".git" / "refs" / "experiments" / "cnn" / f"{IDS[0]}.lock").write_text("0" * 40 + "\n")
    (repo / ".git" / "refs" / "experiments" / "cnn" / "new.lock").write_text("")
    assert same_refs(repo) == made


@pytest.mark.parametrize("name", [".hidden", "a..b", "sp ace", "tilde~1", "unicodé", "end."])
def test_a_name_git_would_refuse_is_left_to_libgit2(repo: Path, name: str) -> None:
    make_refs(repo, run_names("cnn"))
    (oid,) = commits(repo, 1)
    (repo / ".git" / "refs" / "experiments" / "cnn" / name).write_text(oid + "\n")
    assert same_refs(repo) is None


@pytest.mark.parametrize("damage", ["drop the last newline", "a stray line", "a lone peel", "upper-case id"])
def test_a_damaged_packed_refs_file_is_left_to_libgit2(repo: Path, damage: str) -> None:
    make_refs(repo, run_names("cnn"))
    git(repo, "pack-refs", "--all")
    packed = repo / ".git" / "packed-refs"
    text = packed.read_text()
    lines = text.splitlines(keepends=True)
    text = {"drop the last newline": text[:-1], "a stray line": text + "garbage\n",
            "a lone peel": "".join([lines[0], "^" + "1" * 40 + "\n", *lines[1:]]),
            "upper-case id": text.replace(lines[-1], lines[-1][:40].upper() + lines[-1][40:])}[damage]
    packed.write_text(text)
    assert gitfiles.read_refs(repo / ".git", REF_PREFIX) is None


def test_packed_refs_out_of_order(repo: Path) -> None:
    made = make_refs(repo, [*run_names("cnn", "rnn"), "refs/heads/x", "refs/notes/n"])
    git(repo, "pack-refs", "--all")
    packed = repo / ".git" / "packed-refs"
    header, *lines = packed.read_text().splitlines(keepends=True)
    packed.write_text(header + "".join(lines[1::2] + lines[::2]))  # git sorts them; another writer might not
    assert same_refs(repo) == {name: oid for name, oid in sorted(made.items()) if name.startswith(REF_PREFIX)}


def test_only_refs_of_the_common_dir_are_read(repo: Path) -> None:
    for prefix in ("refs/", "refs/bisect/", "refs/worktree/x", "heads/", ""):
        assert gitfiles.read_refs(repo / ".git", prefix) is None, prefix


# -- locate ------------------------------------------------------------------------------------------


def test_locate_from_the_working_tree_and_below(repo: Path) -> None:
    (repo / "sub" / "deeper").mkdir(parents=True)
    for start in (repo, repo / "sub", repo / "sub" / "deeper"):
        found = same_location(start)
        assert found is not None and found.workdir == repo, start
    assert gitfiles.locate() == gitfiles.locate(str(repo))  # the current directory


def test_locate_through_a_symlinked_folder(repo: Path, tmp_path: Path) -> None:
    (repo / "sub").mkdir()
    (tmp_path / "link").symlink_to(repo / "sub")
    assert same_location(tmp_path / "link") is not None


def test_locate_in_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "side")
    (worktree / "sub").mkdir()
    for start in (worktree, worktree / "sub"):
        found = same_location(start)
        assert found is not None and found.commondir == repo / ".git" != found.gitdir
        assert found.workdir == worktree
    make_refs(repo, run_names("cnn"))
    handle = open_repository(worktree)
    assert isinstance(handle, LazyRepo)
    assert handle.refs(REF_PREFIX) == Repo.discover(worktree).refs(REF_PREFIX) != {}
    assert not handle.opened
    (handle.gitdir / "refs" / "experiments").mkdir(parents=True)  # not where git keeps them: libgit2 says
    assert handle.refs(REF_PREFIX) == Repo.discover(worktree).refs(REF_PREFIX) and handle.opened


def test_locate_gives_up_where_libgit2_must_decide(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert gitfiles.locate(str(outside)) is None
    assert gitfiles.locate(str(tmp_path / "missing")) is None
    assert gitfiles.locate(str(repo / "train.py")) is None  # a file
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert gitfiles.locate(str(bare)) is None
    assert Repo.discover(bare).gitdir == bare
    assert gitfiles.locate(str(repo / ".git")) is None  # inside the git dir
    assert gitfiles.locate(str(repo / ".git" / "refs")) is None


def test_locate_a_separate_git_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", f"--separate-git-dir={tmp_path / 'store.git'}", str(work))
    found = same_location(work)
    assert found is not None and found.gitdir == tmp_path / "store.git"


@pytest.mark.parametrize("config", ["[extensions]\n\trefStorage = reftable\n", "[include]\n\tpath = other.inc\n",
                                    "[core]\n\trepositoryformatversion = 2\n", "[core]\n\tworktree = /elsewhere\n"])
def test_locate_leaves_unusual_configs_to_libgit2(repo: Path, config: str) -> None:
    with (repo / ".git" / "config").open("a") as file:
        file.write(config)
    assert gitfiles.locate(str(repo)) is None


def test_locate_leaves_a_symlinked_git_dir_to_libgit2(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / ".git").symlink_to(repo / ".git")
    assert gitfiles.locate(str(other)) is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give files away")
@pytest.mark.skipif(os.geteuid() != 0, reason="giving the repository to another user needs root")
def test_locate_leaves_another_users_repository_to_libgit2(repo: Path) -> None:
    os.chown(repo / ".git", 4242, 4242)
    assert gitfiles.locate(str(repo)) is None


# -- HEAD and reflogs ----------------------------------------------------------------------------------


def test_head_commit_loose_packed_detached_and_in_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    def head(where: Path) -> str:
        return git(where, "rev-parse", "HEAD").strip()

    gitdir = str(repo / ".git")
    assert gitfiles.worktree_gitdir(str(repo)) == gitdir
    assert gitfiles.head_commit(gitdir) == head(repo)
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert gitfiles.head_commit(gitdir) == head(repo)
    git(repo, "checkout", "-q", "--detach")
    assert gitfiles.head_commit(gitdir) == head(repo)
    worktree = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(worktree))
    git(worktree, "commit", "-q", "--allow-empty", "-m", "on the side")
    linked = gitfiles.worktree_gitdir(str(worktree))
    assert linked is not None and os.path.samefile(linked, repo / ".git" / "worktrees" / "linked")
    assert gitfiles.head_commit(linked) == head(worktree) != head(repo)
    assert gitfiles.worktree_gitdir(str(tmp_path)) is None


def test_head_commit_leaves_the_unusual_to_git(repo: Path) -> None:
    gitdir = str(repo / ".git")
    git(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    git(repo, "symbolic-ref", "HEAD", "refs/heads/alias")  # HEAD names a symbolic ref
    assert gitfiles.head_commit(gitdir) is None
    git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    git(repo, "pack-refs", "--all")
    (repo / ".git" / "packed-refs").write_text("damaged\n")
    assert gitfiles.head_commit(gitdir) is None


def test_rewrite_kind_from_the_reflog_and_the_state_files(repo: Path) -> None:
    gitdir = str(repo / ".git")
    git(repo, "commit", "-q", "--allow-empty", "-m", "plain")
    assert gitfiles.rewrite_kind(gitdir, git(repo, "rev-parse", "HEAD").strip()) is None
    git(repo, "commit", "-q", "--allow-empty", "--amend", "-m", "amended")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert gitfiles.rewrite_kind(gitdir, head) == "an amend"
    # No reflog line for the commit: git's in-progress state says what is being done.
    assert gitfiles.rewrite_kind(gitdir, "0" * 40) is None
    (repo / ".git" / "rebase-merge").mkdir()
    assert gitfiles.rewrite_kind(gitdir, "0" * 40) == "a rebase"


def test_reflog_commits_of_refs_and_worktree_heads_less_the_skipped(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    (kept, skipped) = commits(repo, 2)
    git(repo, "update-ref", "--create-reflog", "refs/kept/a", kept)
    git(repo, "update-ref", "--create-reflog", "refs/skipped/a", skipped)
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "linked"))
    git(tmp_path / "linked", "commit", "-q", "--allow-empty", "-m", "on the side")
    side = git(tmp_path / "linked", "rev-parse", "HEAD").strip()
    found = gitfiles.reflog_commits(repo / ".git", ("refs/skipped/",))
    assert {first, kept, side} <= found and skipped not in found
    assert skipped in gitfiles.reflog_commits(repo / ".git")


def test_reflog_commits_include_archived_run_reflogs(repo: Path) -> None:
    with gitexp.start_run(name="archived", **QUIET) as run:
        run.checkpoint()
    named = gitfiles.reflog_commits(repo / ".git")
    assert Repo.discover(repo).archive_reflogs(REF_PREFIX, min_age=0) == 1
    assert not (repo / ".git" / "logs" / run.ref).exists()
    assert gitfiles.reflog_commits(repo / ".git") == named
    assert gitfiles.reflog_commits(repo / ".git", (REF_PREFIX,)) < named


# -- load_runs with a LazyRepo ----------------------------------------------------------------------


def test_load_runs_opens_libgit2_only_for_what_it_needs(repo: Path) -> None:
    with gitexp.start_run(name="a", params={"lr": 0.1}, **QUIET) as run:
        run.log_metric("loss", 0.5)
    runs.load_runs()  # the cache, warm
    (record,) = runs.load_runs()
    handle = record.repo
    assert isinstance(handle, LazyRepo) and not handle.opened
    assert runs.run_ids(handle) == [run.id]
    assert handle.workdir == repo and handle.opened  # the Repo's answer
    expected = Repo.discover(repo)
    assert (handle.gitdir, handle.commondir) == (expected.gitdir, expected.commondir)
    assert record.history("loss").values == [0.5]
    assert record.env == runs.load_runs(expected)[0].env
    assert Repo.discover(handle).gitdir == expected.gitdir  # a LazyRepo passes for a path
    assert [r.id for r in runs.load_runs(handle)] == [run.id]


def test_load_runs_falls_back_to_libgit2_for_unusual_refs(repo: Path) -> None:
    with gitexp.start_run(name="a", **QUIET):
        pass
    git(repo, "symbolic-ref", f"{REF_PREFIX}cnn/link", "refs/heads/main")
    (record,) = runs.load_runs()
    assert isinstance(record.repo, LazyRepo) and record.repo.opened
    assert record.name == "a"


def test_ls_warm_or_of_new_runs_never_imports_pygit2_and_lists_the_same(repo: Path, gitexp_env: dict[str, str]) -> None:
    for name, lr in (("alpha", 0.1), ("beta", 0.01), ("gamma", 0.001)):
        with gitexp.start_run(name=name, experiment="cnn" if lr > 0.005 else "rnn", params={"lr": lr},
                              **QUIET) as run:
            run.log_metric("acc", lr * 3)
    script = textwrap.dedent("""
        import sys
        from gitexp.cli.main import main
        code = main(["ls"])
        print("pygit2" in sys.modules, file=sys.stderr)
        sys.exit(code)
    """)

    def ls() -> tuple[str, bool]:
        proc = subprocess.run([sys.executable, "-c", script], cwd=repo, env=gitexp_env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout, proc.stderr.splitlines()[-1] == "True"

    ls()  # warms the cache
    listed, imported = ls()
    assert "alpha" in listed and not imported
    # A new run is read by git cat-file, not libgit2: the listing after a sweep's runs stays as light.
    with gitexp.start_run(name="delta", experiment="cnn", params={"lr": 0.2}, **QUIET) as run:
        run.log_metric("acc", 0.6)
    listed, imported = ls()
    assert "delta" in listed and "alpha" in listed and not imported
    git(repo, "config", "include.path", "missing.inc")  # now gitfiles gives up: pygit2 lists
    assert ls() == (listed, True)


def test_the_refs_state_changes_with_every_change_to_the_refs(repo: Path) -> None:
    gitdir = repo / ".git"
    written = iter(range(1_000_000_000, 2_000_000_000, 1000))

    def state() -> object:
        # As if packed-refs were written long ago (each time at another moment): a young one has no state.
        packed = gitdir / "packed-refs"
        if packed.exists():
            now = time.time_ns() // 1000 * 1000 + 1  # (a time with a fraction of a second: this one's)
            os.utime(packed, ns=(now, now))
            assert gitfiles.refs_state(gitdir, gitdir, REF_PREFIX) is None
            moment = next(written)
            os.utime(packed, (moment, moment))
        return gitfiles.refs_state(gitdir, gitdir, REF_PREFIX)
    names = run_names("a", "b")
    made = make_refs(repo, names)
    seen = [state()]
    assert seen[0] == (None, made)  # no packed-refs yet: the loose refs are the state
    git(repo, "pack-refs", "--all")
    seen.append(state())
    spare = git(repo, "commit-tree", "-m", "spare", git(repo, "write-tree").strip()).strip()
    assert spare not in made.values()
    git(repo, "update-ref", names[0], spare)  # loose again, over its packed line
    seen.append(gitfiles.refs_state(gitdir, gitdir, REF_PREFIX))
    git(repo, "pack-refs", "--all")  # the same size, maybe the same inode as two steps ago
    seen.append(state())
    git(repo, "update-ref", "-d", names[1])  # a packed ref deleted: packed-refs rewritten
    seen.append(state())
    assert len({repr(s) for s in seen}) == len(seen), "\n".join(map(repr, seen))
    assert gitfiles.refs_state(gitdir, gitdir, REF_PREFIX) == seen[-1]  # nothing changed: the same state
    git(repo, "update-ref", "refs/heads/other", spare)  # refs outside the prefix are not its business
    assert gitfiles.refs_state(gitdir, gitdir, REF_PREFIX) == seen[-1]


@pytest.mark.parametrize(("fraction", "told"), [(123_456_789, True), (0, False)])
def test_a_packed_refs_half_a_second_old_has_a_state_where_its_times_have_fractions(
        repo: Path, fraction: int, told: bool) -> None:
    """A file system that keeps fractions of a second keeps times to a tick: half a second on, a
    rewrite gets a later time. One that keeps whole seconds (all its times end in .000000000) may
    give a rewrite the same time for up to RACY_SECONDS."""
    gitdir = repo / ".git"
    make_refs(repo, run_names("a"))
    git(repo, "pack-refs", "--all")
    # Half a second or more ago (up to 1.5 s), with that fraction: within RACY_SECONDS, past FINE_RACY_SECONDS.
    then = (time.time_ns() - 500_000_000) // 1_000_000_000 * 1_000_000_000 + fraction
    os.utime(gitdir / "packed-refs", ns=(then, then))
    assert (gitfiles.refs_state(gitdir, gitdir, REF_PREFIX) is not None) is told


def test_a_refs_state_is_not_told_in_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", str(tmp_path / "other"), "-b", "other")
    location = gitfiles.locate(str(tmp_path / "other"))
    assert location is not None and location.gitdir != location.commondir
    assert gitfiles.refs_state(location.gitdir, location.commondir, REF_PREFIX) is None


def test_refs_read_again_are_the_refs_now(repo: Path) -> None:
    """LazyRepo.refs remembers the refs it read with their refs_state: each read after a change must
    still be what libgit2 reads, and what it hands out is the caller's to change."""
    gitdir = repo / ".git"
    names = run_names("a", "b")
    make_refs(repo, names)
    git(repo, "pack-refs", "--all")
    moment = iter(range(1_000_000_000, 2_000_000_000, 1000))

    def check() -> dict[str, str]:
        if (gitdir / "packed-refs").exists():  # old enough for its stat to be trusted
            when = next(moment)
            os.utime(gitdir / "packed-refs", (when, when))
        lazy = open_repository(repo)
        assert isinstance(lazy, LazyRepo)
        for _ in range(2):  # read, then remembered
            found = lazy.refs(REF_PREFIX)
            assert found == Repo.discover(repo).refs(REF_PREFIX)
            found.clear()
        assert open_repository(repo).refs(REF_PREFIX) == Repo.discover(repo).refs(REF_PREFIX)
        return Repo.discover(repo).refs(REF_PREFIX)
    seen = [check()]
    spare = git(repo, "commit-tree", "-m", "spare", git(repo, "write-tree").strip()).strip()
    git(repo, "update-ref", names[0], spare)  # loose, over its packed line
    seen.append(check())
    git(repo, "pack-refs", "--all")
    seen.append(check())
    git(repo, "update-ref", "-d", names[1])
    seen.append(check())
    assert seen[1][names[0]] == spare and names[1] not in seen[3] and seen[1] == seen[2]
