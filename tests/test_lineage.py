"""Lineage: resume (same ref, steps go on), fork (extra parent), and `git exp log` drawing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.errors import GitexpError, ParamConflictError
from gitexp.git.repo import Repo
from gitexp.store import codec as fmt
from tests.conftest import git

QUIET = {"system_metrics_interval": 0, "capture_env": False}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def statuses(repo: Path, ref: str) -> list[str]:
    """Status trailers along the run's first-parent chain, oldest first."""
    out = git(repo, "log", "--first-parent", "--reverse", "--format=%(trailers:key=Status,valueonly)", ref)
    return [line for line in out.splitlines() if line]


def test_resume_continues_the_same_run(repo: Path) -> None:
    with gitexp.start_run(name="long", params={"lr": 0.1}, **QUIET) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metric("acc", 0.5, step=10)
    ref, first_tip = run.ref, git(repo, "rev-parse", run.ref).strip()
    resumed = gitexp.start_run(resume="long", params={"lr": 0.1}, **QUIET)
    assert resumed.id == run.id and resumed.ref == ref
    live = fmt.read_meta(Repo.discover(repo), git(repo, "rev-parse", ref).strip())
    assert live["status"] == "RUNNING" and "end" not in live
    resumed.log_metric("loss", 0.1)
    resumed.log_metric("loss", 0.05)
    resumed.log_metric("acc", 0.9)
    resumed.end()
    record = gitexp.get_run(run.id)
    assert record.status == "FINISHED" and record.params == {"lr": 0.1}
    assert record.history("loss").steps == [0, 1, 2, 3, 4, 5, 6]
    assert record.history("acc").steps == [10, 11]
    assert record.metrics["loss"]["last"] == 0.05 and record.metrics["loss"]["count"] == 7
    # New commits on the same ref, building on the old tip: the reflog is a fast-forward.
    assert git(repo, "merge-base", "--is-ancestor", first_tip, ref, check=False) == ""
    # The first session ended before its first flush: one commit. The resume starts with a RUNNING one.
    assert statuses(repo, ref) == ["FINISHED", "RUNNING", "FINISHED"]


def test_resume_refuses_live_runs_and_changed_params(repo: Path) -> None:
    live = gitexp.start_run(name="live", params={"lr": 0.1}, **QUIET)
    with pytest.raises(GitexpError, match="still RUNNING"):
        gitexp.start_run(resume=live.id, **QUIET)
    live.end()
    tip = git(repo, "rev-parse", live.ref).strip()
    with pytest.raises(ParamConflictError, match="immutable"):
        gitexp.start_run(resume=live, params={"lr": 5}, **QUIET).end()
    gitexp.start_run(resume=live, **QUIET).end()  # then a plain resume works
    with pytest.raises(ParamConflictError):
        gitexp.start_run(resume=live, params={"new": {"x": 1}, "lr": {"a": 1}}, **QUIET)
    assert git(repo, "rev-list", "--count", f"{tip}..{live.ref}").strip() == "2"  # the refused ones wrote nothing


def test_fork_has_the_source_commit_as_second_parent(repo: Path) -> None:
    with gitexp.start_run(name="pretrain", experiment="cnn", **QUIET) as source:
        source.log_metric("loss", 0.5)
    source_tip = git(repo, "rev-parse", source.ref).strip()
    with gitexp.start_run(fork=source.id, name="finetune", params={"lr": 0.001}, **QUIET) as child:
        child.log_metric("loss", 0.2)
    record = gitexp.get_run(child.id)
    assert record.experiment == "cnn" and record.meta["forked_from"] == source.id
    first = git(repo, "rev-list", "--max-parents=2", "--min-parents=2", record.ref).split()
    assert len(first) == 1
    base = git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "log", "-1", "--format=%P", first[0]).split() == [base, source_tip]
    assert record.history("loss").steps == [0]  # a fork starts its own metrics


def test_log_draws_forks_reruns_and_resumes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="root", **QUIET) as root:
        root.log_metric("acc", 0.5)
    with gitexp.start_run(resume=root.id, **QUIET) as again:
        again.log_metric("acc", 0.6)
    with gitexp.start_run(fork=root.id, name="child", **QUIET) as child:
        child.log_metric("acc", 0.7)
    with gitexp.start_run(name="again", meta={"rerun_of": child.id}, **QUIET) as rerun:
        rerun.log_metric("acc", 0.7)
    with gitexp.start_run(name="unrelated", **QUIET):
        pass
    code, out, _ = cli(capsys, "log", "child")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"o {root.id}  default/root  FINISHED  acc=0.6")
    assert "resumed" in lines[1] and "session 2" in lines[1]
    assert lines[2].startswith(f"`-- fork: * {child.id}  default/child")
    assert lines[3].startswith(f"    `-- rerun: o {rerun.id}  default/again")
    assert "unrelated" not in out
    code, out, _ = cli(capsys, "log", root.id, "--format", "json")
    tree = json.loads(out)
    assert tree["id"] == root.id and tree["sessions"] == 2
    assert tree["children"][0]["relation"] == "fork" and tree["children"][0]["children"][0]["id"] == rerun.id


def test_a_lineage_is_found_from_the_listing_rows_without_reading_each_run(repo: Path) -> None:
    """graph() looks for forks and reruns among every run: from their rows (RunRecord.origin), not
    their meta, which at 100,000 runs meant reading every summary (4 s, 1 GB)."""
    from gitexp.store.runs import load_runs
    from gitexp.views import lineage

    with gitexp.start_run(name="root", **QUIET) as root:
        pass
    with gitexp.start_run(fork=root.id, name="child", **QUIET) as child:
        pass
    with gitexp.start_run(name="again", meta={"rerun_of": child.id, "forked_from": ""}, **QUIET):
        pass
    for _ in range(3):
        with gitexp.start_run(name="other", **QUIET):
            pass
    load_runs()  # the cache, with the rows
    records = load_runs()
    assert all(r.listing_row is not None for r in records)
    origins = {r.name: r.origin for r in records}
    lines = lineage.graph(records, next(r for r in records if r.name == "child"))
    assert [next(w for w in line.split() if w.startswith("default/")) for line in lines] == [
        "default/root", "default/child", "default/again"]
    others = [r for r in records if r.name == "other"]
    assert all(r.listing_row is not None for r in others), "graph read the meta of runs outside the tree"
    assert origins == {r.name: r.origin for r in records} == {  # the rows say what the meta says
        "root": None, "child": ("forked_from", root.id), "again": ("rerun_of", child.id), "other": None}
    assert lineage.lineage_dict(load_runs(), records[-1])["children"][0]["children"][0]["name"] == "again"


@pytest.mark.parametrize("indexed", [False, True])
def test_a_lineage_is_drawn_from_its_own_runs_as_from_every_run(repo: Path, indexed: bool) -> None:
    """lineage_records reads the runs of one lineage alone (the origins file knows where each run
    came from): `git exp log RUN` draws and answers the same as from every run; with the run index
    kept by a listing (*indexed*), the refs are not read either."""
    from gitexp.git.repo import Repo
    from gitexp.store import runcache, runindex, runs
    from gitexp.views import lineage, listing

    def made(name: str, **kw: object) -> gitexp.Run:
        with gitexp.start_run(name=name, **QUIET, **kw) as run:  # type: ignore[arg-type]
            run.log_metric("acc", 0.5)
        return run

    root = made("root")
    child = made("child", fork=root.id)
    made("grandchild", meta={"rerun_of": child.id})
    made("sibling", fork=root.id)
    other = made("other-root")
    made("other-child", fork=other.id)
    made("orphan", meta={"forked_from": "20200101-000000000000000"})  # its source is not here
    made("plain")
    every = runs.load_runs()
    if indexed:
        listing.remember(repo, listing.of_records(every))  # type: ignore[arg-type]
        assert runindex.every_run(Repo.discover(repo)) is not None
    for record in every:
        alone = runs.lineage_records(record)
        assert lineage.graph(alone, record) == lineage.graph(every, record), record.name
        assert lineage.lineage_dict(alone, record) == lineage.lineage_dict(every, record), record.name
    by_name = {r.name: r for r in every}
    assert sorted(r.name for r in runs.lineage_records(by_name["grandchild"])) == [
        "child", "grandchild", "root", "sibling"]
    (repo / ".git" / runcache.CACHE_FILE).unlink()
    assert sorted(r.name for r in runs.lineage_records(by_name["other-child"])) == ["other-child", "other-root"]
    assert not (repo / ".git" / runcache.CACHE_FILE).exists(), "every run was loaded"


def test_log_without_run_lists_commits_with_their_runs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="on-first", **QUIET) as run:
        run.log_metric("acc", 0.25)
    for n in range(3):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"later {n}")
    code, out, _ = cli(capsys, "log")
    assert code == 0
    lines = out.splitlines()
    assert [line.split("  ")[-1] for line in lines if not line.startswith(" ")] == \
        ["later 2", "later 1", "later 0", "initial"]
    assert lines[-1] == f"    {run.id} default/on-first FINISHED acc=0.25"
    code, out, _ = cli(capsys, "log", "--runs-only")
    assert out.splitlines()[0].endswith("initial") and len(out.splitlines()) == 2
    code, out, _ = cli(capsys, "log", "-n", "1")
    assert len(out.splitlines()) == 1
    code, _, err = cli(capsys, "log", "--start", "nope")
    assert code == 1 and "'nope' names no commit" in err
