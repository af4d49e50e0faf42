"""The listing kept between two `git exp ls` (gitexp/views/listing.py): the same columns as
table.run_columns, and never kept past a change to the runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.store.runs import load_runs
from gitexp.views import listing, table
from tests.conftest import git
from tests.sample_runs import QUIET, Sample, sample_runs

FLAGS = [(False, False, False), (True, False, False), (False, True, False), (False, False, True), (True, True, True)]


@pytest.fixture
def sample(repo: Path) -> Sample:
    made = sample_runs(repo, git(repo, "rev-parse", "HEAD").strip(), "user-text")
    # Values of every kind a column can hold, and keys the other runs lack.
    with gitexp.start_run(name="mixed", experiment="mix", repo=repo, params={
            "lr": 1, "flag": True, "layers": [1, 2], "opt": None, "model": {"layers": 4.0}}, **QUIET) as run:
        run.log_metric("loss", 3)
        run.log_metric("val/acc", 0.25)
    made.ids["mixed"] = run.id
    return made


def shown(columns: tuple[list[str], list[list[Any]]]) -> str:
    return repr(columns)  # NaN compares unequal to itself; its repr does not


def reference(repo: Path, experiment: str | None, flags: tuple[bool, bool, bool]) -> str:
    return shown(table.run_columns(load_runs(repo, experiment), None, *flags))


def ls(repo: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "gitexp", "ls", *args], cwd=repo, capture_output=True, text=True,
                          check=True)
    return proc.stdout


def test_the_listing_has_the_columns_of_the_runs(sample: Sample) -> None:
    records = load_runs(sample.repo)
    made = listing.of_records(records)
    assert made is not None
    for flags in FLAGS:
        assert shown(made.columns(*flags)) == reference(sample.repo, None, flags)
    assert listing.current(sample.repo) is None  # not kept yet
    listing.remember(records[0].repo, made)
    for experiment in (None, "cnn", "rnn", "mix"):
        kept = listing.current(sample.repo, experiment)
        assert kept is not None
        for flags in FLAGS:
            assert shown(kept.columns(*flags)) == reference(sample.repo, experiment, flags), (experiment, flags)
    nothing = listing.current(sample.repo, "nothing-here")
    assert nothing is not None and len(nothing) == 0


def test_ls_prints_the_same_table_from_the_kept_listing(sample: Sample) -> None:
    cache = sample.repo / ".git" / "gitexp" / "cache" / "listing-v1.marshal"
    ls(sample.repo)
    for args in ([], ["--format", "csv"], ["--format", "md"], ["--all"], ["--only-changed"], ["--experiment", "cnn"]):
        cache.unlink(missing_ok=True)
        made = ls(sample.repo, *args)
        assert cache.exists() == ("--experiment" not in args)  # kept when it lists every run
        assert ls(sample.repo, *args) == made
    assert "baseline" in made and "mixed" not in made


def test_a_change_to_the_runs_is_never_hidden_by_the_kept_listing(sample: Sample) -> None:
    ls(sample.repo)
    assert listing.current(sample.repo) is not None
    with gitexp.start_run(name="newest", experiment="cnn", repo=sample.repo, **QUIET) as run:
        run.log_metric("loss", 0.01)
    assert listing.current(sample.repo) is None
    assert "newest" in ls(sample.repo)
    assert listing.current(sample.repo) is not None
    # A ref moved elsewhere (a run's ref reset to another run's commit), with the same size and time.
    ref = f"refs/experiments/cnn/{sample.ids['wide']}"
    other = git(sample.repo, "rev-parse", f"refs/experiments/cnn/{sample.ids['baseline']}").strip()
    git(sample.repo, "update-ref", ref, other)
    assert listing.current(sample.repo) is None
    assert ls(sample.repo).count("baseline") == 2
    # A run deleted.
    git(sample.repo, "update-ref", "-d", ref)
    assert listing.current(sample.repo) is None
    assert ls(sample.repo).count("baseline") == 1


def test_packing_the_refs_keeps_the_listing_of_the_same_runs(sample: Sample) -> None:
    made = ls(sample.repo)
    git(sample.repo, "pack-refs", "--all")
    assert listing.current(sample.repo) is not None  # other files, the same refs: looked at, and the same
    git(sample.repo, "update-ref", f"refs/experiments/cnn/{sample.ids['wide']}",
        git(sample.repo, "rev-parse", f"refs/experiments/rnn/{sample.ids['rnn']}").strip())
    assert listing.current(sample.repo) is None  # a packed ref made loose again, elsewhere
    assert ls(sample.repo) != made


def test_a_live_run_is_listed_from_its_journal_not_from_the_kept_listing(sample: Sample) -> None:
    ls(sample.repo)
    with gitexp.start_run(name="live", experiment="cnn", repo=sample.repo, **QUIET) as run:
        run.log_metric("loss", 0.5)
        run.checkpoint()
        assert listing.current(sample.repo) is None
        run.log_metric("loss", 0.3125)
        run.flush_journal()
        assert "0.3125" in ls(sample.repo, "--experiment", "cnn", "--all")
        assert "0.3125" in ls(sample.repo)
    assert listing.current(sample.repo) is None


def test_a_damaged_run_is_warned_of_at_every_listing(sample: Sample) -> None:
    blob = git(sample.repo, "hash-object", "-w", "--stdin").strip()  # an empty blob: no commit
    git(sample.repo, "update-ref", "refs/experiments/cnn/20260101-0000000deadbeef", blob)
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "gitexp", "ls"], cwd=sample.repo, capture_output=True,
                              text=True, check=True)
        assert "deadbeef" in proc.stderr and "mixed" in proc.stdout
    assert listing.current(sample.repo) is None


def test_a_damaged_listing_file_is_made_again(sample: Sample) -> None:
    made = ls(sample.repo)
    cache = sample.repo / ".git" / "gitexp" / "cache" / "listing-v1.marshal"
    cache.write_bytes(b"\xffnot marshal")
    assert listing.current(sample.repo) is None
    assert ls(sample.repo) == made
    assert listing.current(sample.repo) is not None


def test_a_linked_worktree_checks_the_refs_themselves(sample: Sample, tmp_path: Path) -> None:
    made = ls(sample.repo)
    git(sample.repo, "worktree", "add", "-q", str(tmp_path / "other"), "-b", "other")
    kept = listing.current(tmp_path / "other")
    assert kept is not None and len(kept) == len(load_runs(sample.repo))
    assert ls(tmp_path / "other") == made


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("abcd"), st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, -0.0, 1.0, float("nan"), float("inf")]),
    st.sampled_from(["", "x", "1"]), st.lists(st.integers(0, 1), max_size=2))), min_size=2, max_size=6))
def test_a_column_differs_when_table_differing_says_so(runs: list[dict[str, Any]]) -> None:
    for key in sorted(set().union(*runs)):
        values = [run.get(key) for run in runs]
        absent = [i for i, run in enumerate(runs) if key not in run]
        assert listing.column_differs(values, absent) == (key in table.differing(runs)), key
