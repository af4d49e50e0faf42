"""load_runs and its cache (gitexp/store/runcache.py): records read lazily, never stale, on real repositories."""

from __future__ import annotations

import marshal
from pathlib import Path
from typing import Any

import pytest

import gitexp
from gitexp.git.repo import Repo
from gitexp.store import codec as fmt
from gitexp.store import runcache, runs
from gitexp.store.fields import MISSING
from gitexp.store.runcache import CACHE_FILE, OBSOLETE_FILES, ROW_FIELDS, SUMMARIES_FILE
from gitexp.store.runs import RunRecord, load_runs, run_ids
from gitexp.store.search import field_value, search_runs
from gitexp.views.table import run_rows
from tests.conftest import git

QUIET = {"system_metrics_interval": 0}


def cached(repo: Path, path: Path = CACHE_FILE) -> dict[str, Any]:
    return marshal.loads((repo / ".git" / path).read_bytes())


def read_from_git(record: RunRecord) -> RunRecord:
    """The same run, read from its commit in git, bypassing the cache (meta, params, metrics set)."""
    meta, params, metrics, env_blob = fmt.read_listing(record.repo, record.commit)
    return RunRecord(record.id, record.experiment, record.commit, meta, params, metrics, record.repo, env_blob)


def make_run(name: str, experiment: str = "default", params: dict[str, Any] | None = None,
             metrics: dict[str, float] | None = None, **kw: Any) -> gitexp.Run:
    with gitexp.start_run(name=name, experiment=experiment, params=params, **QUIET, **kw) as run:
        for key, value in (metrics or {}).items():
            run.log_metric(key, value, step=0)
    return run


def test_records_read_meta_params_and_metrics_when_first_used(repo: Path) -> None:
    make_run("a", params={"lr": 0.1, "model": {"layers": 4}}, metrics={"loss": 0.5, "system/cpu": 3.0})
    for attempt in ("cold", "warm"):  # built from git, then from the cache file
        (record,) = load_runs()
        row = record.listing_row
        assert row is not None, attempt
        shown = {field: getattr(record, field) for field in ROW_FIELDS[:5]}  # answered by the row
        assert record.listing_row is row
        expected = read_from_git(record)
        assert record == expected  # reads meta, params and metrics
        assert record.listing_row is None  # from now on they answer
        assert shown == {field: getattr(expected, field) for field in ROW_FIELDS[:5]}
        assert dict(zip(ROW_FIELDS[5:], row[5:], strict=True)) == {
            "flat_params": {"lr": 0.1, "model.layers": 4}, "lasts": {"loss": 0.5}}


def test_a_record_changed_by_its_reader_is_listed_as_changed(repo: Path) -> None:
    make_run("a", params={"lr": 0.1})
    make_run("b", params={"lr": 0.2})
    records = load_runs()
    records[0].meta["name"] = "renamed"
    records[0].params["lr"] = 5
    assert records[0].name == "renamed"
    _, rows = run_rows(records)
    assert [row["name"] for row in rows] == ["renamed", "a"]
    assert [row["params.lr"] for row in rows] == [5, 0.1]
    assert field_value(records[0], ("params", "lr")) == 5


def test_the_cache_never_serves_a_runs_old_commit(repo: Path) -> None:
    run = make_run("a", metrics={"loss": 1.0})
    first = gitexp.get_run("a")
    with gitexp.start_run(resume=run.id, **QUIET) as again:
        again.log_metric("acc", 0.5)
    record = gitexp.get_run("a")
    assert record.commit != first.commit
    assert record.metrics["acc"]["last"] == 0.5 and record.metrics["loss"]["count"] == 1
    assert search_runs("metrics.acc = 0.5")[0].id == run.id
    assert set(cached(repo)) == set(cached(repo, SUMMARIES_FILE)) == {record.commit}  # old commits' go


def test_listing_one_experiment_keeps_the_others_cached(repo: Path) -> None:
    make_run("a", experiment="cnn")
    make_run("b", experiment="rnn")
    load_runs()
    commits = set(cached(repo))
    make_run("c", experiment="cnn")
    assert [r.name for r in load_runs(experiment="cnn")] == ["c", "a"]
    assert commits < set(cached(repo))


def test_an_earlier_versions_cache_file_is_removed_once_this_ones_is_written(repo: Path) -> None:
    make_run("a")
    old = repo / ".git" / OBSOLETE_FILES[0]
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(marshal.dumps({"0" * 40: ("x",)}))
    assert [r.name for r in load_runs()] == ["a"]
    assert not old.exists() and cached(repo)


@pytest.mark.parametrize(("damaged", "data"), [
    (CACHE_FILE, b"\x00not marshal"), (SUMMARIES_FILE, b"\x00not marshal"),
    (CACHE_FILE, marshal.dumps({"0" * 40: (b"", None, None)})),  # another layout
    (SUMMARIES_FILE, marshal.dumps({"0" * 40: 1})),
])
def test_a_damaged_cache_is_rebuilt(repo: Path, damaged: Path, data: bytes) -> None:
    make_run("a", params={"lr": 0.1})
    load_runs()
    if damaged == SUMMARIES_FILE and data != b"\x00not marshal":  # the run's own entry made unreadable
        (commit,) = cached(repo)
        data = marshal.dumps({commit: b"\x00"})
    (repo / ".git" / damaged).write_bytes(data)
    (record,) = load_runs()
    assert record.params == {"lr": 0.1}  # read from git when the summary is not in the file
    make_run("b", params={"lr": 0.2})  # the listings that write the cache mend it
    for _ in range(2):
        assert [r.params for r in load_runs()] == [{"lr": 0.2}, {"lr": 0.1}]
    assert len(cached(repo)) == len(cached(repo, SUMMARIES_FILE)) == 2
    assert [r.listing_row is not None for r in load_runs()] == [True, True]


def test_a_summary_missing_from_the_cache_is_read_from_git(repo: Path) -> None:
    make_run("a", params={"lr": 0.1}, metrics={"loss": 1.0})
    make_run("b", params={"lr": 0.2})
    load_runs()
    summaries = cached(repo, SUMMARIES_FILE)
    a = next(r for r in load_runs() if r.name == "a")
    del summaries[a.commit]  # as when two processes' writes of the two files cross
    (repo / ".git" / SUMMARIES_FILE).write_bytes(marshal.dumps(summaries))
    records = load_runs()
    assert [(r.name, r.params, r.metrics.get("loss", {}).get("last")) for r in records] == [
        ("b", {"lr": 0.2}, None), ("a", {"lr": 0.1}, 1.0)]


def test_a_run_that_marshal_cannot_store_is_read_from_git_each_time(repo: Path) -> None:
    make_run("a", params={"lr": 0.1})
    (record,) = load_runs()
    # A run written by another tool, without summary.json, with a YAML timestamp among its params.
    entries = Repo.discover().tree_entries(record.commit)
    spec: dict[str, Any] = {name: entry for name, entry in entries.items() if name != fmt.SUMMARY}
    spec[fmt.PARAMS] = b"when: 2026-11-27 10:00:00\n"
    repo_ = Repo.discover()
    commit = repo_.commit(repo_.write_tree(spec), [record.commit], "foreign")
    git(repo, "update-ref", record.ref, commit)
    for _ in range(2):
        (record,) = load_runs()
        assert record.commit == commit and record.listing_row is None
        assert str(record.params["when"]) == "2026-11-27 10:00:00"


def test_rows_answer_as_the_params_and_metrics_do(repo: Path) -> None:
    """Params with dotted keys, or keys that are a path of another run's params, and metrics whose
    names end like a summary: looked up through the listing rows or the full data, the same."""
    make_run("plain", params={"a": {"b": 1, "c": {"d": 2}}, "x": []}, metrics={"acc": 0.5, "acc.max": 0.7},
             tags={"t": "1"})
    make_run("dotted", params={"a.b": 3, "a": {"b": 4}, "e": {}}, metrics={"system/gpu": 9.0, "loss": 2.0})
    make_run("other", params={"a": 5, "x": [1]}, metrics={"acc": 0.1})
    paths = [("params", *p) for p in (("a",), ("a", "b"), ("a.b",), ("a", "c"), ("a", "c", "d"), ("a", "c.d"),
                                      ("x",), ("e",), ("missing",), ("a", "b", "z"))]
    paths += [("metrics", *p) for p in (("acc",), ("acc", "max"), ("acc.max",), ("acc.max", "count"),
                                        ("system/gpu",), ("loss", "min"), ("nope",), ("acc", "step"))]
    paths += [("name",), ("status",), ("start",), ("duration",), ("commit",), ("tags", "t")]
    records = load_runs()
    assert all(r.listing_row is not None for r in records)
    for path in paths:
        lazy = [field_value(r, path) for r in load_runs()]  # fresh, unread records
        full = [field_value(read_from_git(r), path) for r in records]
        assert lazy == full, path
    assert any(field_value(r, ("params", "a.b")) is MISSING for r in load_runs())
    for where in ("params.a.b = 4", "params.`a.b` = 3", "metrics.acc.max > 0.6", "params.x is null",
                  "metrics.system/gpu > 1 or params.e is not null", "not params.a.c.d = 2"):
        assert [r.name for r in search_runs(where, "name")] == \
            [r.name for r in sorted(records, key=lambda r: r.name) if _matches(read_from_git(r), where)], where
    columns = ["params.a", "params.a.b", "params.`a.b`", "params.a.c", "metrics.acc.max", "metrics.acc"]
    assert run_rows(load_runs(), columns) == run_rows([read_from_git(r) for r in records], columns)
    assert run_rows(load_runs()) == run_rows([read_from_git(r) for r in records])


def _matches(record: RunRecord, where: str) -> bool:
    from gitexp.store.search import compile_filter

    return compile_filter(where)(record)


def test_short_ids_use_the_run_ids_of_the_listing(repo: Path) -> None:
    first = make_run("a")
    listed = load_runs()
    assert run_ids(listed[0].repo) == [first.id]
    second = make_run("b", experiment="other")
    assert run_ids(listed[0].repo) == [first.id]  # what those records were read against
    load_runs(listed[0].repo, experiment="other")  # a partial listing: ids are listed afresh
    assert sorted(run_ids(listed[0].repo)) == sorted([first.id, second.id])


def test_unread_records_compare_copy_and_print_like_read_ones(repo: Path) -> None:
    import copy

    make_run("a", params={"lr": 0.1})
    unread, read = load_runs()[0], read_from_git(load_runs()[0])
    assert repr(load_runs()[0]) == repr(read)
    assert copy.copy(unread) == read and unread == read
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        load_runs()[0].nothing  # noqa: B018
    assert runs.listing_rows([load_runs()[0], read])[1] is None


def test_the_row_accessors_read_their_own_fields(repo: Path) -> None:
    make_run("a", params={"lr": 0.1}, metrics={"loss": 0.5})
    (record,) = load_runs()
    row = record.listing_row
    assert row is not None and len(row) == len(ROW_FIELDS)
    assert {field: getattr(runcache, f"row_{field}")(row) for field in ROW_FIELDS} == {
        "name": "a", "status": "FINISHED", "start": record.start, "duration": record.duration,
        "base_commit": record.base_commit, "flat_params": {"lr": 0.1}, "lasts": {"loss": 0.5}}
