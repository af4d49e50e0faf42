"""load_runs and its cache (gitexp/store/runcache.py): records read lazily, never stale, on real repositories."""

from __future__ import annotations

import json
import marshal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gitexp
from gitexp.git.repo import Repo
from gitexp.store import codec as fmt
from gitexp.store import runcache, runs, summary
from gitexp.store.fields import MISSING
from gitexp.store.runcache import CACHE_FILE, DELTA_FILE, OBSOLETE_FILES, ROW_FIELDS, SUMMARIES_FILE
from gitexp.store.runs import RunRecord, load_runs, run_ids, run_names_of
from gitexp.store.search import field_value, search_runs
from gitexp.views.table import run_rows
from tests.conftest import git
from tests.sample_runs import get_run_outcome

QUIET = {"system_metrics_interval": 0}


def cached(repo: Path, path: Path = CACHE_FILE) -> dict[str, Any]:
    """The runs of a cache file, by commit (CACHE_FILE's: their commits alone)."""
    data = marshal.loads((repo / ".git" / path).read_bytes())
    return dict.fromkeys(data["commits"]) if path == CACHE_FILE else data


def read_from_git(record: RunRecord) -> RunRecord:
    """The same run, read from its commit in git, bypassing the cache (meta, params, metrics set)."""
    meta, params, metrics = fmt.read_listing(record.repo, record.commit)
    return RunRecord(record.id, record.experiment, record.commit, meta, params, metrics, record.repo)


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
            "flat_params": {"lr": 0.1, "model.layers": 4}, "lasts": {"loss": 0.5}, "extremes": {"loss": (0.5, 0.5)},
            "origin": None}


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


def test_a_record_changed_before_the_cache_is_written_leaves_the_cache_as_git_has_it(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitexp.store import cachefile

    make_run("a", params={"lr": 0.1}, metrics={"loss": 1.0})
    (repo / ".git" / CACHE_FILE).unlink(missing_ok=True)
    # As `git exp` lists many runs: read by git, parsed from summary.json, the cache written later.
    monkeypatch.setattr(runs, "BATCH_FROM", 1)
    monkeypatch.setattr(cachefile, "DETACH_FROM", 1)
    cachefile.write_behind()
    try:
        records = load_runs()
        assert not (repo / ".git" / CACHE_FILE).exists()  # (left for later)
        records[0].params["lr"] = 5
        records[0].metrics["loss"]["last"] = 9.0
        again = load_runs()[0]  # its cache read: the job left for later runs first
        assert (again.params, again.metrics["loss"]["last"]) == ({"lr": 0.1}, 1.0)
        assert set(cached(repo)) == {again.commit}
    finally:
        cachefile.wait()
        cachefile.write_behind(False)


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


def test_a_run_named_by_its_full_id_is_read_alone_and_the_cache_keeps_every_run(repo: Path) -> None:
    a = make_run("a", experiment="cnn", params={"lr": 0.1}, metrics={"loss": 1.0})
    b = make_run("b", experiment="rnn", params={"lr": 0.2})
    load_runs()
    kept = cached(repo)
    record = gitexp.get_run(a.id)
    assert cached(repo) == kept, "reading one run must not rewrite (or prune) the listing cache"
    assert record == read_from_git(load_runs()[1]) and record.name == "a" and record.metrics["loss"]["last"] == 1.0
    assert gitexp.get_run(b.id, experiment="rnn").name == "b"
    with pytest.raises(gitexp.GitexpError, match=f"no run matches '{b.id}'"):
        gitexp.get_run(b.id, experiment="cnn")  # not of that experiment: the full search says so
    # A run named like another run's id: ids come first, as resolve() orders them.
    make_run(a.id)
    assert gitexp.get_run(a.id).id == a.id


def test_a_run_named_by_a_handle_is_what_resolving_every_run_gives(repo: Path) -> None:
    """get_run(handle) reads the one run a handle names without loading every run, unless a run is
    named like the handle (names come first), it is ambiguous, or unknown: for every such text,
    it answers (or raises) exactly what resolve() over every run does."""
    made = [make_run(f"r{i}", experiment=("cnn", "rnn")[i % 2]) for i in range(6)]
    load_runs()  # the listing cache, whose rows name the runs
    handles = runs.run_handles(load_runs())
    target = made[0]
    make_run(handles[target.id], experiment="cnn")  # a run named like another's handle
    load_runs()
    make_run("twice", experiment="cnn")
    make_run("twice", experiment="rnn")
    make_run(made[3].id[16:22], experiment="rnn")  # named like the start of another run's id
    load_runs()
    texts = [*(handles[r.id] for r in made), *(handles[r.id][:4] for r in made), *(r.id[16:22] for r in made),
             "ffff", "0000", made[1].id[:8], "20261", handles[made[2].id].upper(),
             "r0", "r5", "twice", "r", "R1", made[3].id, "no-such-name"]  # names, as `git exp show NAME` reads them

    for text in texts:
        for experiment in (None, "cnn"):
            assert get_run_outcome(text, experiment, False) == get_run_outcome(text, experiment, True), \
                (text, experiment)
    assert gitexp.get_run(handles[target.id]).name == handles[target.id], "the name wins over the handle"
    # get_runs (`git exp diff A B`): each text answers as get_run does, every run loaded once at most.
    every = load_runs()
    for pair in ([made[1].id, handles[made[2].id]], [handles[target.id], "r3"], [made[4].id, handles[made[4].id]]):
        assert [r.id for r in runs.get_runs(pair)] == [runs.resolve(every, text).id for text in pair], pair
    with pytest.raises(gitexp.GitexpError, match="no run matches 'ffff'"):
        runs.get_runs([made[0].id, "ffff"])


def test_runs_read_by_git_in_a_batch_are_the_runs_read_one_by_one(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_runs reads many uncached runs through one `git cat-file` (runs.BATCH_FROM of them): the
    same records, rows and warnings as reading each through libgit2, damaged and shared commits too."""
    for i in range(6):
        make_run(f"r{i}", experiment=("cnn", "rnn")[i % 2], params={"lr": i / 10, "model": {"layers": i}},
                 metrics={"loss": 1 / (i + 1)})
    first = git(repo, "for-each-ref", "--format=%(objectname)", "--count=1", "refs/experiments/cnn/").strip()
    git(repo, "update-ref", "refs/experiments/cnn/20260101-00000000000beef", first)  # two runs, one commit
    blob = git(repo, "hash-object", "-w", "--stdin").strip()
    git(repo, "update-ref", "refs/experiments/cnn/20260101-0000000deadbeef", blob)  # not a commit

    def read() -> tuple[str, list[tuple[Any, ...]]]:
        for cached in (repo / ".git" / "gitexp").glob("cache/runs-*"):
            cached.unlink()
        with pytest.warns(RuntimeWarning) as caught:
            records = load_runs()
        return "\n".join(sorted(str(w.message) for w in caught)), [
            (r.id, r.experiment, r.commit, r.listing_row, r.meta, r.params, r.metrics) for r in records]

    one_by_one = read()
    monkeypatch.setattr(runs, "BATCH_FROM", 1)
    assert read() == one_by_one
    assert "deadbeef" in one_by_one[0] and len(one_by_one[1]) == 7


def test_the_names_file_knows_every_listed_runs_name(repo: Path) -> None:
    """NAMES_FILE, which spares get_run(name or handle) loading every row: each cached run's commit
    and name; the runs of a delta write too."""
    for name in ("plain-name", "0abc12", "ABCDEF12", "abc", "0abc123456", *(f"r{i}" for i in range(15))):
        make_run(name)
    commits = {r.name: r.commit for r in load_runs()}
    named = runcache.known_names(repo / ".git")
    assert named == {commit: name for name, commit in commits.items()}
    newer = make_run("cafe")
    commit = Repo.discover().ref(newer.ref) or ""
    cache = runcache.Cache(repo / ".git")
    meta, params, metrics = fmt.read_listing(Repo.discover(), commit)
    cache.add(commit, meta, params, metrics)
    cache.save([commit], prune=True, delta_from=20)  # 1 new of 20: a delta write
    assert (repo / ".git" / DELTA_FILE).exists()
    assert runcache.known_names(repo / ".git") == {**named, commit: "cafe"}
    # A name the file knows one run by is read alone: the listing cache is neither loaded nor rebuilt.
    (repo / ".git" / CACHE_FILE).unlink()
    assert gitexp.get_run("plain-name").commit == commits["plain-name"]
    assert not (repo / ".git" / CACHE_FILE).exists()
    assert gitexp.get_run("r3").name == "r3" and not (repo / ".git" / CACHE_FILE).exists()


def test_the_names_of_many_records_read_at_once_are_each_records_name(repo: Path) -> None:
    """run_names_of, which takes names from the names file where it can, against each record's name."""
    for name in ("a", None, "b", "a"):
        make_run(name)  # (None: gitexp names it)
    load_runs()  # (cached: the next load's records have neither rows nor summaries read)
    for names_file in (True, False):
        if not names_file:
            (repo / ".git" / runcache.NAMES_FILE).unlink()
        shown = [r.name for r in load_runs()]
        assert run_names_of(load_runs()) == shown and shown[0] == "a" and shown[1] == "b" and shown[3] == "a"
    records = load_runs()
    records[0].meta["name"] = "changed"  # (read and changed: the record's own meta says its name)
    assert run_names_of(records) == ["changed", *shown[1:]]
    with gitexp.start_run(name="live", **QUIET) as run:  # (live here: its record is its journal's)
        run.log_metric("acc", 0.5)
        records = load_runs()
        assert run_names_of(records) == [r.name for r in records] == ["live", *shown]


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


def test_a_large_caches_new_entries_go_to_a_file_of_their_own(repo: Path) -> None:
    for i in range(40):
        make_run(f"r{i}", params={"lr": i / 100})
    load_runs()
    main = (repo / ".git" / CACHE_FILE).read_bytes()
    new = make_run("new", params={"lr": 5}, metrics={"loss": 0.5})
    cache = runcache.Cache(repo / ".git")
    commit = Repo.discover().ref(new.ref) or ""
    assert commit not in cache.commits
    meta, params, metrics = fmt.read_listing(Repo.discover(), commit)
    assert cache.add(commit, meta, params, metrics) == (True, runcache.make_row(meta, params, metrics))
    cache.save([commit], prune=True, delta_from=40)  # 1 new of 40: beside them
    assert (repo / ".git" / CACHE_FILE).read_bytes() == main and (repo / ".git" / DELTA_FILE).exists()
    again = runcache.Cache(repo / ".git")
    assert commit in again.commits and again.rows.get(commit) == cache.rows.get(commit) is not None
    assert again.summaries.read(commit) == (meta, params, metrics)
    records = load_runs()  # all from the cache: nothing written
    assert (repo / ".git" / CACHE_FILE).read_bytes() == main
    assert records[0].listing_row is not None and records[0].name == "new" and records[0].params == {"lr": 5}
    make_run("newer")
    assert [r.name for r in load_runs()][:2] == ["newer", "new"]  # a small cache: written whole, the delta in it
    assert not (repo / ".git" / DELTA_FILE).exists() and commit in cached(repo) and len(cached(repo)) == 42


def test_a_few_new_entries_beside_many_are_written_at_once_not_left_to_a_child(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`git exp` leaves a cache job of DETACH_FROM runs or more to a child as it exits: weighed by
    what it writes, a delta write of a few new runs beside many is not such a job."""
    from gitexp.store import cachefile

    for i in range(40):
        make_run(f"r{i}")
    load_runs()
    new = make_run("new")
    commit = Repo.discover().ref(new.ref) or ""
    monkeypatch.setattr(cachefile, "DETACH_FROM", 10)  # (40 runs count as many)
    cachefile.write_behind()
    try:
        for delta_from, written_now in ((40, True), (1_000, False)):  # 1 new of 40: a delta; else whole
            cache = runcache.Cache(repo / ".git")
            (repo / ".git" / DELTA_FILE).unlink(missing_ok=True)
            cache.add(commit, *fmt.read_listing(Repo.discover(), commit))
            cache.save([commit], prune=False, delta_from=delta_from)
            cachefile.wait()  # (this process's own writes: not a job left for later)
            assert (repo / ".git" / DELTA_FILE).exists() is written_now
            if not written_now:
                assert commit not in cached(repo)  # left for later: the next load of the file runs it
                assert commit in runcache.Cache(repo / ".git").commits and commit in cached(repo)
    finally:
        cachefile.wait()
        cachefile.write_behind(False)


def test_a_damaged_delta_file_is_left_aside(repo: Path) -> None:
    make_run("a", params={"lr": 0.1})
    load_runs()
    (repo / ".git" / DELTA_FILE).write_bytes(marshal.dumps({"rows": {"0" * 40: "x"}, "summaries": {}}))
    make_run("b", params={"lr": 0.2})
    assert [r.params for r in load_runs()] == [{"lr": 0.2}, {"lr": 0.1}]
    (repo / ".git" / DELTA_FILE).write_bytes(b"\x00not marshal")
    assert [r.params for r in load_runs()] == [{"lr": 0.2}, {"lr": 0.1}]


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
        "base_commit": record.base_commit, "flat_params": {"lr": 0.1}, "lasts": {"loss": 0.5},
        "extremes": {"loss": (0.5, 0.5)}, "origin": None}


# -- live runs: what their journal holds beyond their last commit (gitexp/store/live.py) ----------


def journaled_only(name: str, values: list[float], **kw: Any) -> gitexp.Run:
    """A live run of this process whose commit holds none of *values*: they are in its journal only."""
    run = gitexp.start_run(name=name, checkpoint_interval=3600, **QUIET, **kw)
    run.checkpoint()  # on its ref now; the next checkpoint is an hour away
    for value in values:
        run.log_metric("loss", value)
    run.flush_journal()
    return run


def test_a_live_run_is_listed_with_what_its_journal_holds(repo: Path) -> None:
    run = journaled_only("live", [1.0, 0.5, 0.25])
    committed = fmt.read_listing(Repo.discover(), Repo.discover().ref(run.ref) or "")
    assert committed[2] == {}, "the commit holds no values: what is listed comes from the journal"
    (record,) = load_runs()
    assert record.status == "RUNNING" and record.metrics["loss"] == {
        "last": 0.25, "step": 2, "min": 0.25, "max": 1.0, "count": 3}
    assert record.duration is not None and record.duration >= 0, "elapsed time since the start"
    assert record.history("loss").values == [1.0, 0.5, 0.25]
    row = load_runs()[0].listing_row  # what listings read, before meta, params and metrics are
    assert row is not None and runcache.row_lasts(row) == {"loss": 0.25} and runcache.row_duration(row) is not None
    assert run_rows(load_runs(), ["metrics.loss"])[1][0]["metrics.loss"] == 0.25
    assert [r.id for r in search_runs("metrics.loss < 0.3")] == [run.id]
    data = marshal.loads((repo / ".git" / CACHE_FILE).read_bytes())
    stored = dict(zip(data["commits"], marshal.loads(data["rows"]), strict=True))
    assert runcache.row_lasts(stored[record.commit]) == {}, "the cache holds what the commit holds, never live values"
    run.log_metric("loss", 0.125)
    run.flush_journal()
    assert gitexp.get_run("live").metrics["loss"]["count"] == 4
    run.end()
    (record,) = load_runs()
    assert record.status == "FINISHED" and record.metrics["loss"]["count"] == 4
    assert record.history("loss").values == [1.0, 0.5, 0.25, 0.125]


def test_a_resumed_live_run_adds_its_journal_to_the_history_it_had(repo: Path) -> None:
    with gitexp.start_run(name="long", **QUIET) as first:
        for value in (4.0, 3.0):
            first.log_metric("loss", value)
        first.log_metric("acc", 0.5)
    run = gitexp.start_run(resume="long", checkpoint_interval=3600, **QUIET)
    run.log_metric("loss", 5.0)
    run.log_metric("loss", 1.0)
    run.flush_journal()
    (record,) = load_runs()
    assert record.status == "RUNNING"
    assert record.metrics["loss"] == {"last": 1.0, "step": 3, "min": 1.0, "max": 5.0, "count": 4}
    assert record.metrics["acc"]["count"] == 1, "a metric the journal lacks keeps its summary"
    history = record.history("loss")
    assert (history.steps, history.values) == ([0, 1, 2, 3], [4.0, 3.0, 5.0, 1.0])
    run.end()


def test_a_live_journal_is_read_defensively(repo: Path) -> None:
    run = journaled_only("live", [1.0, 0.5], params={"lr": 0.1})
    root = repo / ".git" / "gitexp" / "journal"
    # Another process's segment of the run, as a writer that went wrong would leave it: records of
    # the wrong shape, and a last line it is still writing.
    (root / f"{run.id}.999999.log").write_text(
        "M\tnot-a-step\t1.0\t2.0\tloss\n" "S\t[1, 2]\n" "P\tnull\n" "T\t\"text\"\n" "A\t{\"x\": [1, \"mode\"]}\n"
        "X\t{}\n" "S\t{\"description\": \"still sound\"}\n" "M\t7\t1.0\t0.1\tacc")
    (record,) = load_runs()
    assert record.metrics == {"loss": {"last": 0.5, "step": 1, "min": 0.5, "max": 1.0, "count": 2}}
    assert record.params == {"lr": 0.1} and record.meta["description"] == "still sound"
    (root / f"{run.id}.lock").write_bytes(b"{not json")  # an owner rewriting its info: the commit stands
    (record,) = load_runs()
    assert record.status == "RUNNING" and record.metrics == {} and record.duration is None
    run.end()


def test_a_listing_with_no_live_run_reads_no_journal(repo: Path) -> None:
    make_run("a", metrics={"loss": 1.0})
    done = journaled_only("b", [2.0])
    done.end()
    lock = repo / ".git" / "gitexp" / "journal" / "0-not-a-run.lock"
    lock.write_text("{}")  # a lock nobody holds, naming no listed run
    assert [r._live for r in load_runs(recover=False)] == [None, None]


LIVE_SCRIPT = """
import sys, gitexp
with gitexp.start_run(name="live", params={"lr": 0.1}, checkpoint_interval=3600, system_metrics_interval=0) as run:
    run.checkpoint()  # on its ref with no values; the next checkpoint is an hour away
    for step in range(4):
        run.log_metric("loss", 1.0 / (step + 1))
    run.flush_journal()  # journaled, not committed: what `git exp ls` in another terminal reads
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_ls_show_and_plot_show_a_live_runs_latest_values(repo: Path, env_for_subprocess: dict[str, str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import subprocess
    import sys

    from gitexp.cli.main import main

    (repo / "live.py").write_text(LIVE_SCRIPT)
    proc = subprocess.Popen([sys.executable, "live.py"], cwd=repo, env=env_for_subprocess, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        assert main(["ls", "--format", "csv"]) == 0
        (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
        assert (row["name"], row["status"], row["metrics.loss"]) == ("live", "RUNNING", "0.25")
        assert float(row["duration"]) >= 0, "the time since the start"
        assert main(["show", "live"]) == 0
        shown = capsys.readouterr().out
        assert "still running" not in shown
        assert [line.split() for line in shown.splitlines() if line.startswith("  loss")] == [
            ["loss", "0.25", "3", "0.25", "1", "4"]]
        fig = gitexp.plot("loss", runs=["live"], output=repo.parent / "live.png")
        assert list(fig.axes[0].lines[0].get_ydata()) == [1.0, 0.5, 1 / 3, 0.25]
        assert main(["plot", "loss", "-o", str(repo.parent / "cli.png")]) == 0
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0
    (record,) = load_runs()
    assert record.status == "FINISHED" and record.metrics["loss"]["count"] == 4


def test_a_run_whose_process_died_is_not_shown_live(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    import subprocess
    import sys

    script = ("import os, gitexp\n"
              "run = gitexp.start_run(name='dead', checkpoint_interval=3600, system_metrics_interval=0)\n"
              "run.checkpoint()\nrun.log_metric('loss', 0.5)\nrun.flush_journal()\nos._exit(9)\n")
    subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, check=False, timeout=60)
    (record,) = load_runs(recover=False)  # as a reader who may not recover sees it
    assert record.status == "RUNNING" and record._live is None and record.duration is None
    (record,) = load_runs()
    assert record.status == "CRASHED" and record.metrics["loss"]["last"] == 0.5



def _fresh(text: str) -> str:
    """*text* as a new object: equal strings from different runs are different objects until shared."""
    return "".join(list(text))


_TEXT = st.text(alphabet="abc/._", min_size=2, max_size=4).map(_fresh)  # (one character: one object in CPython)
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), _TEXT,
                   st.lists(st.integers(0, 2), max_size=2), st.just({}))
_PARAMS = st.recursive(st.dictionaries(_TEXT, _VALUE, max_size=3),
                       lambda inner: st.dictionaries(_TEXT, inner, min_size=1, max_size=2), max_leaves=6)
_SUMMARY = st.one_of(
    st.fixed_dictionaries({"last": st.floats(allow_nan=False), "min": st.floats(allow_nan=False),
                           "max": st.floats(allow_nan=False)}, optional={"step": st.integers(0, 9)}),
    # Rows without lasts or extremes: a metric with no last value, or no min and max.
    st.fixed_dictionaries({}, optional={"last": st.floats(allow_nan=False), "min": st.floats(allow_nan=False)}))
_METRICS = st.dictionaries(st.sampled_from(["loss", "val/acc", "system/cpu", "lr"]).map(_fresh), _SUMMARY, max_size=3)
_COMMITS = st.sampled_from(["a" * 40, "b" * 40]).map(_fresh)
_META = st.fixed_dictionaries({}, optional={
    "name": _TEXT, "status": st.sampled_from(["FINISHED", "RUNNING"]).map(_fresh),
    "start": st.sampled_from(["2026-12-04T01:02:03.000Z"]).map(_fresh), "duration": st.floats(0, 9),
    "git": st.fixed_dictionaries({"commit": _COMMITS}),
    "forked_from": st.sampled_from(["20261204-0000000abcdef01"]).map(_fresh)})

def _strings(value: Any, out: list[str]) -> list[str]:
    """Every str object *value* holds (dict keys too)."""
    if type(value) is str:
        out.append(value)
    elif type(value) is dict:
        for k, v in value.items():
            _strings(k, out)
            _strings(v, out)
    elif type(value) in (list, tuple):
        for v in value:
            _strings(v, out)
    return out


@given(st.lists(st.tuples(_META, _PARAMS, _METRICS), max_size=6))
def test_share_row_is_share_of_the_row(runs: list[tuple[dict, dict, dict]]) -> None:
    """The cache's rows as Cache.add keeps them: share_row() (knowing a row's shape) gives what
    share() gives, and as share() does, makes every string equal to another the same object; so
    does shared_row(), which makes the row and shares it in one pass."""
    fast_memo: dict[str, str] = {}
    reference_memo: dict[str, str] = {}
    fast, reference, one_pass = [], [], []
    one_pass_memo: dict[str, str] = {}
    for meta, params, metrics in runs:
        row = runcache.make_row(meta, params, metrics)
        fast.append(runcache.share_row(row, fast_memo))
        reference.append(runcache.share(runcache.make_row(meta, params, metrics), reference_memo))
        one_pass.append(runcache.shared_row(meta, params, metrics, one_pass_memo))
    assert fast == reference
    assert one_pass == reference
    for made in (fast, one_pass):
        found: dict[str, int] = {}
        for text in _strings(made, []):
            assert found.setdefault(text, id(text)) == id(text), f"{text!r} is two objects"


def test_rows_are_read_when_first_used_and_damaged_rows_fall_back_to_the_runs(repo: Path) -> None:
    """load_runs() makes its records from the cache's commits alone; the rows (what listings
    read) come when the first is asked for, and rows that cannot be read cost time, not answers."""
    for name in ("a", "b"):
        make_run(name, params={"lr": 0.1}, metrics={"loss": 0.5})
    want = [(r.name, r.status, r.params, r.metrics["loss"]["last"]) for r in map(read_from_git, load_runs())]
    records = load_runs()
    assert all(r._row is None for r in records), "no row read before one is asked for"
    assert [runcache.row_name(row) for row in runs.listing_rows(records) if row is not None] == ["b", "a"]
    path = repo / ".git" / CACHE_FILE
    data = marshal.loads(path.read_bytes())
    for rows in (b"\x00not marshal", marshal.dumps([None]), marshal.dumps([("a",), ("b",)])):
        path.write_bytes(marshal.dumps({**data, "rows": rows}))
        records = load_runs()
        assert runs.listing_rows(records) == [None, None]
        assert [(r.name, r.status, r.params, r.metrics["loss"]["last"]) for r in records] == want


_SOUND = st.tuples(_META, _PARAMS, _METRICS).map(
    lambda parts: fmt.summary_json({**parts[0], "id": "20261204-0000000abcdef01", "experiment": "e"}, *parts[1:]))
# Pieces that parse only together with their neighbours, or not as JSON text at all.
_PIECES = st.sampled_from([b'{"meta":', b"{}],[", b"1", b".5", b"e3", b'"', b"[", b"]", b",", b"true", b"-",
                           b"Infinity", b"\xc3", b"\xa9", b"\xef\xbb\xbf{}", b"", b" ", b"\xed\xa0\x80",
                           b'{"meta":{},"params":{},"metrics":{}} ', b' {"meta":{},"params":{},"metrics":{}}',
                           b"NaN", b"1e400", b"18446744073709551616", b"-0", b'"\\ud800"', b"\xff\xfe{\x00}\x00",
                           b"\x00", b"[" * 1500 + b"]" * 1500])


@st.composite
def _reads(draw: st.DrawFn) -> list[bytes | None]:
    """What git may read of a listing's runs: sound summaries, hostile pieces, sound ones cut in two."""
    reads: list[bytes | None] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["sound", "piece", "cut", "none", "bytes"]))
        if kind == "sound":
            reads.append(draw(_SOUND))
        elif kind == "cut":
            whole = draw(_SOUND)
            at = draw(st.integers(0, len(whole)))
            reads += [whole[:at], whole[at:]]
        elif kind == "piece":
            reads.append(draw(_PIECES))
        else:
            reads.append(None if kind == "none" else draw(st.binary(max_size=12)))
    return reads


@given(_reads())
def test_summaries_parsed_as_one_text_are_what_each_parsed_alone_is(reads: list[bytes | None]) -> None:
    assert summary.joined_reads(reads) == [summary.from_read(read) for read in reads]
    assert summary.from_reads(reads) == [summary.from_read(read) for read in reads]


@given(_reads())
def test_summaries_parsed_by_msgspec_are_what_the_standard_library_parses(reads: list[bytes | None]) -> None:
    # The parser of a first listing of thousands of runs; json.loads, through from_read, is the reference.
    assert summary.from_reads(reads, many=True) == [summary.from_read(read) for read in reads]


def test_what_msgspec_refuses_the_standard_library_reads() -> None:
    """A summary json.loads takes and msgspec does not (a lone surrogate, a number past a float's
    range) is the run that from_read gives, not a damaged one; one that neither takes (an integer
    of more digits than Python reads) is damaged for both."""
    meta = b'{"id": "20261204-0000000abcdef01", "experiment": "e"}'
    reads = [b'{"meta": %s, "params": {"p": %s}, "metrics": {}}' % (meta, value)
             for value in (b'"\\ud800"', b"1e400", b"1" * 5000)]
    assert summary.from_reads(reads, many=True) == [summary.from_read(read) for read in reads]
    assert [found[1] for found in summary.from_reads(reads, many=True) if found] == [{"p": "\ud800"},
                                                                                    {"p": float("inf")}]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12))
def test_msgspec_parses_params_as_json_does(params: Any) -> None:
    """Params of any JSON value (integers past 64 bits, floats that round, text past ASCII) come back
    from msgspec's parser as from the standard library's."""
    meta = {"id": "20261204-0000000abcdef01", "experiment": "e"}
    read = json.dumps({"meta": meta, "params": {"p": params}, "metrics": {}}).encode()
    assert summary.from_reads([read], many=True) == [summary.from_read(read)] == [(meta, {"p": params}, {})]


def test_a_summary_is_never_read_from_its_neighbours_bytes() -> None:
    """Runs fetched from a teammate are untrusted: summaries made to join up, parsed as one text,
    must not hand a sound run's place another's values (nor their own to the next run)."""
    x, y, z = (fmt.summary_json({"id": f"20261204-000000000000{lr}", "experiment": "e", "name": name}, {"lr": lr}, {})
               for name, lr in (("x", 1), ("y", 2), ("z", 3)))
    reads = [b'[{"meta":{}', b'{"a":1}]', x + b"," + y, z]  # 3 documents for 4 runs, the last two shifted
    assert summary.from_reads(reads) == [None, None, None, summary.from_read(z)]
    assert summary.from_read(z) == ({"id": "20261204-0000000000003", "experiment": "e", "name": "z"}, {"lr": 3}, {})
