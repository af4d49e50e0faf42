"""Long histories as append-only chunks (format 2): written once, read back whole, checked."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.store import chunks
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}


def chunk_blobs(repo: Path, rev: str, key: str = "loss") -> dict[str, str]:
    """path -> blob id of every chunk of *key*'s history in *rev*, as git lists them."""
    out = git(repo, "ls-tree", "-r", rev, f"metrics/{key}.tsv/")
    return {line.split("\t")[1]: line.split()[2] for line in out.splitlines()}


def mktree(repo: Path, lines: list[str]) -> str:
    return subprocess.run(["git", "mktree"], cwd=repo, input="\n".join(lines) + "\n", capture_output=True,
                          text=True, check=True).stdout.strip()


def log(run: gitexp.Run, start: int, stop: int) -> None:
    for i in range(start, stop):
        run.log_metric("loss", 1.0 / (i + 1), step=i)


def test_a_long_history_is_written_once_in_chunks_and_reads_back_whole(repo: Path) -> None:
    run = gitexp.start_run(name="long", **QUIET)
    log(run, 0, chunks.CHUNK_FROM + 100)
    run.checkpoint()
    first = chunk_blobs(repo, run.ref)
    log(run, chunks.CHUNK_FROM + 100, 3000)
    run.end()
    final = chunk_blobs(repo, run.ref)
    assert first.items() <= final.items(), "a chunk a checkpoint wrote was rewritten"
    assert list(final) == ["metrics/loss.tsv/000000000000.tsv", f"metrics/loss.tsv/{chunks.CHUNK_FROM + 100:012d}.tsv"]
    # Readable without gitexp: each chunk is a TSV with its header.
    second = git(repo, "show", f"{run.ref}:metrics/loss.tsv/{chunks.CHUNK_FROM + 100:012d}.tsv").splitlines()
    assert second[0] == "step\ttime\tvalue" and second[1].startswith(f"{chunks.CHUNK_FROM + 100}\t")
    series = gitexp.get_run("long").history("loss")
    assert series.steps == list(range(3000)) and series.values == [1.0 / (i + 1) for i in range(3000)]
    assert gitexp.get_run("long").metrics["loss"]["count"] == 3000


def test_a_history_of_many_chunks_read_by_git_is_what_was_logged(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Past histories.BATCH_ROWS rows not cached, git reads the chunks (catfile.blobs) while they are
    # parsed; without git on the PATH, libgit2 reads each (the reference): the same history.
    from gitexp.store import histories

    run = gitexp.start_run(name="many", **QUIET)
    for k in range(3):
        log(run, k * 40_000, (k + 1) * 40_000)
        run.checkpoint()
    run.end()
    assert len(chunk_blobs(repo, run.ref)) == 3
    for path in (None, ""):
        if path is not None:
            monkeypatch.setenv("PATH", path)
        shutil.rmtree(repo / ".git" / histories.CACHE_DIR, ignore_errors=True)  # (each chunk read again)
        series = gitexp.get_run("many").history("loss")
        assert series.steps == list(range(120_000)) and series.values == [1.0 / (i + 1) for i in range(120_000)]
        assert (series.last, series.min, series.max) == (1.0 / 120_000, 1.0 / 120_000, 1.0)


def test_a_short_history_stays_one_blob(repo: Path) -> None:
    with gitexp.start_run(name="short", **QUIET) as run:
        log(run, 0, 10)
    assert git(repo, "cat-file", "-t", f"{run.ref}:metrics/loss.tsv").strip() == "blob"


def test_many_checkpoints_fold_chunks_into_subtrees_and_keep_every_row(repo: Path) -> None:
    run = gitexp.start_run(name="many", **QUIET)
    log(run, 0, chunks.CHUNK_FROM)
    run.checkpoint()
    rows = chunks.CHUNK_FROM
    for _ in range(chunks.FANOUT + 2):  # one chunk a checkpoint: the first level fills and folds
        log(run, rows, rows + 7)
        rows += 7
        run.checkpoint()
    run.end()
    top = git(repo, "ls-tree", run.ref, "metrics/loss.tsv/").splitlines()
    assert any(" tree " in line for line in top), "FANOUT chunks should have become one subtree"
    assert len(top) < chunks.FANOUT
    assert gitexp.get_run("many").history("loss").steps == list(range(rows))
    assert main(["verify", "many"]) == 0


def test_resume_adds_to_the_chunks_it_starts_from_and_a_fork_starts_its_own(repo: Path) -> None:
    with gitexp.start_run(name="base", **QUIET) as run:
        log(run, 0, chunks.CHUNK_FROM + 5)
    before = chunk_blobs(repo, run.ref)
    with gitexp.start_run(resume="base", **QUIET) as resumed:
        log(resumed, chunks.CHUNK_FROM + 5, chunks.CHUNK_FROM + 50)
    assert gitexp.get_run("base").history("loss").steps == list(range(chunks.CHUNK_FROM + 50))
    assert set(before.values()) <= set(chunk_blobs(repo, resumed.ref).values())
    with gitexp.start_run(name="child", fork="base", **QUIET) as child:
        log(child, chunks.CHUNK_FROM + 50, chunks.CHUNK_FROM + 60)
    # A fork starts its own metrics; the source's chunks stay reachable through its second parent.
    assert gitexp.get_run("child").history("loss").steps == list(range(chunks.CHUNK_FROM + 50, chunks.CHUNK_FROM + 60))
    assert set(before.values()) <= set(git(repo, "rev-list", "--objects", child.ref).split())


def test_verify_names_a_missing_chunk(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="gap", **QUIET) as run:
        log(run, 0, chunks.CHUNK_FROM)
        run.checkpoint()
        log(run, chunks.CHUNK_FROM, chunks.CHUNK_FROM + 10)
    # Rebuild the run's tree without its first chunk, as a damaged or hostile push could.
    tip = git(repo, "rev-parse", run.ref).strip()
    listing = git(repo, "ls-tree", f"{tip}:metrics/loss.tsv").splitlines()
    history = mktree(repo, [line for line in listing if "000000000000.tsv" not in line])
    metrics = mktree(repo, [f"040000 tree {history}\tloss.tsv"])
    root = [line for line in git(repo, "ls-tree", tip).splitlines() if not line.endswith("\tmetrics")]
    tree = mktree(repo, [*root, f"040000 tree {metrics}\tmetrics"])
    damaged = git(repo, "commit-tree", tree, "-p", tip, "-m", git(repo, "log", "-1", "--format=%B", tip)).strip()
    git(repo, "update-ref", run.ref, damaged)
    assert main(["verify", "gap"]) != 0
    out = capsys.readouterr()
    assert f"chunk {chunks.CHUNK_FROM:012d}.tsv should start at row 0" in out.out + out.err


def test_a_kill_between_chunks_loses_no_flushed_value(repo: Path, env_for_subprocess: dict[str, str],
                                                      tmp_path: Path) -> None:
    body = f"""
        import os, signal, gitexp
        run = gitexp.start_run(name="killed", system_metrics_interval=0)
        for i in range({chunks.CHUNK_FROM + 10}):
            run.log_metric("loss", float(i), step=i)
        run.checkpoint()  # the first chunks are on the ref
        for i in range({chunks.CHUNK_FROM + 10}, {chunks.CHUNK_FROM + 500}):
            run.log_metric("loss", float(i), step=i)
        gitexp.flush()  # the rest is in a second chunk
        for i in range({chunks.CHUNK_FROM + 500}, {chunks.CHUNK_FROM + 600}):
            run.log_metric("loss", float(i), step=i)
        os.kill(os.getpid(), signal.SIGKILL)
    """
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(body))
    proc = subprocess.run([sys.executable, str(script)], cwd=repo, env=env_for_subprocess, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert main(["recover"]) == 0
    record = gitexp.get_run("killed")
    assert record.status == "CRASHED"
    steps = record.history("loss").steps
    assert steps[: chunks.CHUNK_FROM + 500] == list(range(chunks.CHUNK_FROM + 500)), "a flushed value was lost"
    assert steps == list(range(len(steps)))  # and whatever the journal held after, in order


def test_a_live_run_keeps_in_memory_only_what_no_commit_holds_and_reads_all(repo: Path) -> None:
    run = gitexp.start_run(name="live", **QUIET)
    log(run, 0, chunks.CHUNK_FROM + 10)
    run.checkpoint()
    log(run, chunks.CHUNK_FROM + 10, chunks.CHUNK_FROM + 15)
    run.flush_journal()
    in_memory = run.state.metrics["loss"]
    assert len(in_memory.values) == 5 and in_memory.count == chunks.CHUNK_FROM + 15
    whole = run.history("loss")
    assert whole is not None and whole.steps == list(range(chunks.CHUNK_FROM + 15))
    assert whole.values == [1.0 / (i + 1) for i in range(chunks.CHUNK_FROM + 15)]
    from gitexp.mlflow import MlflowClient

    assert [m.step for m in MlflowClient().get_metric_history(run.id, "loss")] == whole.steps
    run.end()
    assert gitexp.get_run("live").history("loss").steps == whole.steps


def test_a_chunked_history_reads_back_what_logging_it_row_by_row_summarised(repo: Path) -> None:
    """Property: however the rows fall into chunks (negative steps, repeated steps, NaN), reading the
    chunk tree gives every row and the summary Series.add keeps (the summaries are combined chunk by
    chunk, not recomputed)."""
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    from gitexp.git.repo import Repo
    from gitexp.store import codec, histories
    from gitexp.store.state import Series

    r = Repo.discover(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    # Few distinct values, so that chunks of NaN only, equal minima and -0.0 beside 0.0 come up.
    special = st.sampled_from([math.nan, -0.0, 0.0, 1.0, -1.0, math.inf])
    rows = st.tuples(st.one_of(st.sampled_from([-2, -1]), st.integers(-3, 2)), st.one_of(special, special, st.floats()))
    counter = iter(range(10**6))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.lists(rows, min_size=1, max_size=6), min_size=1, max_size=5))
    @example([[(-1, 1.0)], [(-2, 5.0)]])  # a chunk with no step from -1 up must not take the last value
    @example([[(0, 1.0)], [(1, math.nan)]])  # a chunk of NaN only has no minimum
    def check(commits: list[list[tuple[int, float]]]) -> None:
        logged, expected = Series.logging(), Series()
        logged.sealed = 0
        entries: dict[str, object] = {}
        for batch in commits:  # each commit seals the rows logged since the previous one
            for step, value in batch:
                logged.add(step, 1.0, value)
                expected.add(step, 1.0, value)
            entries = chunks.stage_chunks(r, logged, codec.render_range)
        commit = r.commit_staged(r.stage_tree({"metrics": {"loss.tsv": entries}}), [head], "c")
        r.cas_ref(f"refs/experiments/default/p{next(counter)}", commit, None, "property")
        got = histories.read_history(r, commit, "loss")
        assert got.steps == list(expected.steps)
        assert [repr(v) for v in got.values] == [repr(v) for v in expected.values]  # NaN and -0.0 too
        assert got.count == expected.count and got.last_step == expected.last_step
        assert repr((got.last, got.min, got.max)) == repr((expected.last, expected.min, expected.max))

    check()
