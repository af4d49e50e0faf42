"""The index of every run by id, name and handle (gitexp/store/runindex.py): it answers what
resolving over every run answers, and only for the refs it was made of."""

from __future__ import annotations

import marshal
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gitexp
from gitexp.git.repo import Repo
from gitexp.store import names, runindex, runs
from gitexp.store.runindex import INDEX_FILE, RunIndex
from gitexp.store.runs import load_runs
from gitexp.views import listing
from tests.conftest import git
from tests.sample_runs import get_run_outcome

QUIET = {"system_metrics_interval": 0}


def make_run(name: str, experiment: str = "cnn") -> gitexp.Run:
    with gitexp.start_run(name=name, experiment=experiment, params={"lr": 0.1}, **QUIET) as run:
        run.log_metric("acc", 0.5)
    return run


def keep_listing(repo: Path) -> RunIndex:
    """What `git exp ls` keeps once it has listed every run: the listing, and the index with it."""
    whole = listing.of_records(load_runs(repo))
    assert whole is not None
    listing.remember(repo, whole)
    index = runindex.current(Repo.discover(repo))
    assert index is not None, "the index is written with the listing, and is of the refs now"
    return index


def test_get_run_through_the_index_is_what_resolving_every_run_gives(repo: Path) -> None:
    made = [make_run(f"r{i}", experiment=("cnn", "rnn", "cnn/deep")[i % 3]) for i in range(7)]
    handles = runs.run_handles(load_runs())
    named = make_run(handles[made[0].id])  # a run named like another's handle: names come first
    twice = make_run("twice", experiment="cnn")
    make_run("twice", experiment="rnn")
    make_run(made[3].id[16:22], experiment="rnn")  # named like the start of another run's id
    make_run(made[4].id, experiment="rnn")  # named like another run's full id: ids come first
    handles = runs.run_handles(load_runs())
    index = keep_listing(repo)
    texts = [*(handles[r.id] for r in made), *(handles[r.id][:4] for r in made), *(r.id[16:22] for r in made),
             *(r.id for r in made), "ffff", "0000", made[1].id[:8], "20261", handles[made[2].id].upper(),
             "r0", "r5", "twice", "r", "R1", "no-such-name", "", "a\nb"]
    for text in texts:
        for experiment in (None, "cnn", "rnn", "cnn/deep"):
            assert get_run_outcome(text, experiment, False) == get_run_outcome(text, experiment, True), \
                (text, experiment)
    repo_handle = Repo.discover(repo)
    # The index answers these by itself (without it, they would be answered all the same, slower).
    for run in made:
        ref = f"{names.REF_PREFIX}{run.experiment}/{run.id}"
        assert runindex.find(repo_handle, run.id, None, live=False) == (ref, git(repo, "rev-parse", ref).strip())
        assert runindex.find(repo_handle, f"r{made.index(run)}", run.experiment, live=False)[0] == ref  # type: ignore[index]
    assert runindex.find(repo_handle, handles[made[1].id], None, live=False) is not None
    assert runindex.find(repo_handle, handles[made[0].id], None, live=False)[0] == \
        f"{names.REF_PREFIX}cnn/{named.id}"  # type: ignore[index]  # the run named so, not made[0]
    assert runindex.find(repo_handle, "twice", None, live=False) is None  # two runs: resolve() lists them
    assert runindex.find(repo_handle, "twice", "cnn", live=False)[0] == f"{names.REF_PREFIX}cnn/{twice.id}"  # type: ignore[index]
    # A live run's journal may name it otherwise: then only full ids are looked up.
    assert runindex.find(repo_handle, "r1", None, live=True) is None
    assert runindex.find(repo_handle, made[1].id, None, live=True) is not None
    assert index.count == len(load_runs())


def test_the_handles_it_holds_are_those_of_every_run(repo: Path) -> None:
    for i in range(12):
        make_run(f"r{i}", experiment=("cnn", "rnn")[i % 2])
    keep_listing(repo)
    every = runs.run_ids(Repo.discover(repo))
    assert runindex.handles(Repo.discover(repo), every) == names.handles(every)
    shown = names.handles(every)
    assert runindex.handles(Repo.discover(repo), every[3:5]) == {i: shown[i] for i in every[3:5]}  # one by one
    assert runindex.handles(Repo.discover(repo), ["20990101-0000000deadbeef"]) is None  # no such run: worked out
    assert runindex.handles(Repo.discover(repo), [*every, "20990101-0000000deadbeef"]) is None


def test_the_newest_runs_through_the_index_are_those_of_every_ref(repo: Path) -> None:
    """load_runs(limit=N) (`git exp ls -n N`) takes the refs of the newest runs from the index: the
    same runs as from every ref, in each experiment, nested ones apart."""
    for i in range(9):
        make_run(f"r{i}", experiment=("cnn", "rnn", "cnn/deep")[i % 3])
    keep_listing(repo)
    path = repo / ".git" / INDEX_FILE
    kept = path.read_bytes()
    for experiment in (None, "cnn", "rnn", "cnn/deep"):
        for limit in (0, 1, 2, 3, 5, 9, 12):
            path.write_bytes(kept)
            runindex.forget()
            assert runindex.newest(Repo.discover(repo), experiment, limit) is not None
            indexed = [(r.id, r.experiment, r.commit) for r in load_runs(experiment=experiment, limit=limit)]
            path.unlink()
            runindex.forget()
            assert indexed == [(r.id, r.experiment, r.commit) for r in load_runs(experiment=experiment, limit=limit)]
    # load_runs() of every run: every ref from the index; the ids it remembers for handles too.
    path.write_bytes(kept)
    runindex.forget()
    assert runindex.every_ref(Repo.discover(repo)) == Repo.discover(repo).refs(names.REF_PREFIX)
    indexed = [(r.id, r.experiment, r.commit) for r in load_runs()]
    assert sorted(runs.run_ids(Repo.discover(repo))) == sorted(r[0] for r in indexed)
    path.unlink()
    runindex.forget()
    assert indexed == [(r.id, r.experiment, r.commit) for r in load_runs()]
    # load_runs(only=...) (get_run, `git exp log RUN`): the refs of those runs alone, from the index.
    every = load_runs()
    for wanted in ({every[0].id}, {every[1].id, every[5].id}, {every[2].id, "20990101-0000000deadbeef"}, set()):
        for experiment in (None, "cnn", "rnn"):
            path.write_bytes(kept)
            runindex.forget()
            assert runindex.refs_of(Repo.discover(repo), wanted) is not None
            indexed = [(r.id, r.experiment, r.commit) for r in load_runs(experiment=experiment, only=wanted)]
            path.unlink()
            runindex.forget()
            assert indexed == [(r.id, r.experiment, r.commit) for r in load_runs(experiment=experiment, only=wanted)]


def test_the_index_is_not_used_once_the_runs_change(repo: Path) -> None:
    first = make_run("first")
    keep_listing(repo)
    handle = Repo.discover(repo)
    assert runindex.current(handle) is not None
    later = make_run("later")
    assert runindex.current(handle) is None, "a run made since: not the runs it was made of"
    assert gitexp.get_run("later").id == later.id
    keep_listing(repo)
    git(repo, "update-ref", "-d", f"refs/experiments/cnn/{later.id}")
    assert runindex.current(handle) is None
    with pytest.raises(gitexp.GitexpError, match="no run matches 'later'"):
        gitexp.get_run("later")
    keep_listing(repo)
    git(repo, "pack-refs", "--all")
    assert gitexp.get_run("first").id == first.id  # packed: read again, not trusted for the same refs


def test_a_damaged_or_foreign_index_file_is_not_used(repo: Path) -> None:
    run = make_run("only")
    keep_listing(repo)
    path = repo / ".git" / INDEX_FILE
    data: dict[str, Any] = marshal.loads(path.read_bytes())
    runindex.forget()  # (what this process read last, not the file, would answer)
    for damaged in ({**data, "version": 2}, {**data, "names": "only\nextra"}, {**data, "commits": "x" * 39}):
        path.write_bytes(marshal.dumps(damaged))
        assert runindex.current(Repo.discover(repo)) is None
        assert gitexp.get_run("only").id == run.id
    path.write_bytes(b"not marshal")
    assert runindex.current(Repo.discover(repo)) is None


def test_new_runs_written_alone_keep_the_index_of_every_run(repo: Path) -> None:
    """A listing that writes its new runs alone (listing.DELTA_FILE) writes theirs alone to the index
    too: the index of the kept runs and of them answers what every ref and every run answer."""
    made = [make_run(f"r{i}", experiment=("cnn", "rnn")[i % 2]) for i in range(6)]
    keep_listing(repo)
    path, delta = repo / ".git" / INDEX_FILE, repo / ".git" / runindex.DELTA_FILE
    kept = path.read_bytes()
    made += [make_run("new-a", "rnn"), make_run(made[0].id[16:22], "cnn")]  # (named like a kept run's id's start)
    updated = listing.current(repo)
    assert updated is not None
    listing.remember(repo, updated, delta_most=10)
    assert path.read_bytes() == kept and delta.exists(), "the index of every run written again for two"
    runindex.forget()
    handle = Repo.discover(repo)
    index = runindex.current(handle)
    assert index is not None, "the kept index and its delta are not current"
    every = runs.run_ids(handle)
    assert index.count == len(load_runs()) == len(made)
    assert runindex.every_ref(handle) == handle.refs(names.REF_PREFIX)
    assert runindex.handles(handle, every) == names.handles(every)
    newest = runindex.newest(handle, None, 3)
    assert newest is not None and list(newest) == [f"{names.REF_PREFIX}{r.experiment}/{r.id}" for r in load_runs()[:3]]
    for run in made:
        ref = f"{names.REF_PREFIX}{run.experiment}/{run.id}"
        assert runindex.find(handle, run.id, None, live=False) == (ref, git(repo, "rev-parse", ref).strip())
    texts = [*(r.name for r in made), *(r.id[16:20] for r in made), made[0].id[16:22], "new-a", "r9"]
    for text in texts:
        for experiment in (None, "cnn", "rnn"):
            assert get_run_outcome(text, experiment, False) == get_run_outcome(text, experiment, True), \
                (text, experiment)
    # A delta of another index, or of other refs, is not used.
    written = marshal.loads(delta.read_bytes())
    for damaged in ({**written, "of": "0" * 16}, {**written, "patches": {99: "x"}}, {**written, "count": 3}):
        delta.write_bytes(marshal.dumps(damaged))
        runindex.forget()
        assert runindex.current(handle) is None
    make_run("later")
    delta.write_bytes(marshal.dumps(written))
    runindex.forget()
    assert runindex.current(handle) is None, "a run made since: not the runs it was made of"
    assert runindex.refs_now(handle) == handle.refs(names.REF_PREFIX)  # (loose refs alone: the new one too)


def test_nothing_is_written_for_refs_that_disagree_with_the_state(repo: Path) -> None:
    run = make_run("a")
    handle = Repo.discover(repo)
    ref = f"refs/experiments/cnn/{run.id}"
    refs = {ref: git(repo, "rev-parse", ref).strip()}

    def written(state: Any, refs: dict[str, str], run_names: list[str]) -> bool:
        return bool(runindex.save(handle, state, refs, ["cnn"], [run.id], run_names, ["h"], ["acc"]))
    assert written((None, refs), refs, ["a"])
    assert not written((None, {ref: "0" * 40}), refs, ["a"])  # moved between the state and the reading
    assert not written(None, refs, ["a"])  # no state: nothing to be current for
    assert not written((None, refs), refs, ["a\nb"])  # a name of two lines
    assert not written((None, refs), {**refs, "refs/experiments/cnn/other": "1" * 40}, ["a"])  # not every run


lines = st.lists(st.text("0a1\n-", max_size=6).filter(lambda t: "\n" not in t), min_size=1, max_size=30)


@given(lines, st.text("0a1-", max_size=4), st.sampled_from([None, "a", "0a"]))
def test_the_lines_it_finds_are_those_a_plain_search_finds(column: list[str], text: str, handle: str | None) -> None:
    """RunIndex.equal and .starting, which search a column's lines with str.find, against a loop
    over the lines (with ids shorter than RANDOM_START, the handle is looked for past their end)."""
    ids = [f"{c}{'x' * names.RANDOM_START}{c}" if c.startswith("a") else c for c in column]
    index = RunIndex({"refs": "\n".join(column), "ids": "\n".join(ids), "names": "\n".join(column),
                      "handles": "\n".join(column)}, "0" * 40 * len(column), len(column))
    equal = [k for k, line in enumerate(column) if line == text]
    starting = [k for k, run_id in enumerate(ids) if run_id.startswith(text) or
                (handle is not None and run_id[names.RANDOM_START:].startswith(handle))]
    assert index.equal("names", text) == (equal if len(equal) <= runindex.MOST_HITS else None)
    found = index.starting(text, handle)
    assert found is None or found == starting


def _age_packed_refs(repo: Path) -> None:
    """As if packed-refs were written a while ago: refs_state trusts the stat of one past RACY_SECONDS."""
    packed = repo / ".git" / "packed-refs"
    then = time.time() - 60
    os.utime(packed, (then, then))


def test_refs_now_are_every_ref_while_only_loose_refs_changed(repo: Path) -> None:
    runs_made = [make_run(f"r{k}") for k in range(3)]
    git(repo, "pack-refs", "--all")
    _age_packed_refs(repo)
    loose_then = make_run("loose-then", experiment="rnn")  # a loose ref when the index is made
    keep_listing(repo)
    handle = Repo.discover(repo)

    def check() -> dict[str, str] | None:
        now = runindex.refs_now(handle)
        assert now is None or now == handle.refs(names.REF_PREFIX)
        return now

    assert check() is not None  # the index is current
    newer = make_run("newer")  # a sweep's new run: a loose ref
    assert runindex.current(handle) is None and check() is not None
    assert runindex.refs_of(handle, [newer.id]) == {newer.ref: handle.ref(newer.ref)}
    assert gitexp.get_run(newer.id).name == "newer"
    # A packed run moved (resumed, renamed...): its loose ref wins over the packed one.
    git(repo, "update-ref", runs_made[0].ref, handle.ref(runs_made[1].ref) or "")
    assert check() == handle.refs(names.REF_PREFIX)
    assert [r.commit for r in load_runs(only=runs_made[0].id)] == [handle.ref(runs_made[1].ref)]
    # A loose ref of then, gone: whether a packed value shows again, the index cannot tell.
    (repo / ".git" / loose_then.ref).unlink()
    assert check() is None
    assert runs.run_ids(handle) == [r.rpartition("/")[2] for r in handle.refs(names.REF_PREFIX)]
    git(repo, "pack-refs", "--all")
    _age_packed_refs(repo)
    keep_listing(repo)  # of packed refs alone
    assert check() is not None
    git(repo, "update-ref", "-d", runs_made[2].ref)  # packed-refs rewritten without it: not trusted
    _age_packed_refs(repo)
    assert runindex.current(handle) is None and check() is None


def test_the_index_is_current_again_once_the_same_refs_are_read_after_a_packing(repo: Path) -> None:
    """git's packing (and the run shelf's upkeep) changes the refs' state, not the runs: once
    load_runs or a listing reads the same refs, the index answers again, with no new run made."""
    made = [make_run(f"r{k}") for k in range(3)]
    keep_listing(repo)
    handle = Repo.discover(repo)
    written = (repo / ".git" / INDEX_FILE).read_bytes()
    git(repo, "pack-refs", "--all")
    _age_packed_refs(repo)
    assert runindex.current(handle) is None, "a new state: not known to be of the same refs yet"
    assert [r.id for r in load_runs(repo)] == [r.id for r in reversed(made)]
    assert runindex.current(handle) is not None and runindex.every_ref(handle) == handle.refs(names.REF_PREFIX)
    assert (repo / ".git" / INDEX_FILE).read_bytes() == written, "confirmed, not written again"
    runindex.forget()  # (as another process reads it)
    assert runindex.current(handle) is not None
    # Refs that differ are never confirmed: a run deleted with its state changed.
    git(repo, "update-ref", "-d", made[0].ref)
    _age_packed_refs(repo)
    runindex.confirm(handle, runindex.refs_state(handle.gitdir, handle.commondir, names.REF_PREFIX),
                     handle.refs(names.REF_PREFIX))
    assert runindex.current(handle) is None
    assert gitexp.get_run(made[1].id).id == made[1].id
    with pytest.raises(gitexp.GitexpError, match="no run matches"):
        gitexp.get_run(made[0].id)
