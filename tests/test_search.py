"""search_runs and `git exp ls --where/--sort/--columns/--only-changed` on real runs in a real repository."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.cli.main import main
from gitexp.errors import GitexpError, QueryError
from gitexp.store import runcache
from gitexp.store.fields import MISSING
from gitexp.store.search import UNKNOWN, column_path, field_value, from_row, metric_value, search_runs, select_runs
from gitexp.views.table import render, run_rows, split_columns
from tests.conftest import git
from tests.sample_runs import Sample, sample_runs, sha


@pytest.fixture
def sample(repo: Path) -> Sample:
    return sample_runs(repo, git(repo, "rev-parse", "HEAD").strip())


def names(where: str | None = None, order_by: str | list[str] | None = None, **kw: object) -> list[str]:
    return [r.name for r in search_runs(where, order_by, **kw)]  # type: ignore[arg-type]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- fields -------------------------------------------------------------------------------------


def test_every_field_kind_matches(sample: Sample) -> None:
    assert names("params.lr = 0.01") == ["baseline"]
    assert names("params.model.layers >= 4", "params.model.layers") == ["baseline", "wide"]
    assert names("params.model.act = relu and params.batch = 32", "name") == ["baseline", "wide"]
    assert names("metrics.loss < 0.5", "name") == ["baseline", "wide"]  # last values 0.2 and 0.1
    assert names("metrics.val/acc.max > 0.85") == ["wide"]
    assert names("metrics.val/acc.min = 0.5") == ["baseline"]
    assert names("metrics.loss.count = 3") == ["rnn"]
    assert names("metrics.loss.max >= 5") == ["broken"]
    assert names("tags.dataset like 'cifar1%'", "name") == ["baseline", "wide"]
    assert names("tags.dataset = cifar100") == ["wide"]
    assert names("status = FAILED") == ["broken"]
    assert names("status != FAILED", "name") == ["baseline", "rnn", "wide"]
    assert names("name glob 'w*'") == ["wide"]
    assert names("experiment = rnn") == ["rnn"]
    assert names(f"id = '{sample.ids['rnn']}'") == ["rnn"]
    assert names("duration >= 0", "name") == ["baseline", "broken", "rnn", "wide"]
    assert names(f"inputs.train.sha256 = '{sha('train v2')}'") == ["wide"]
    assert names("inputs.extra.size = 5") == ["wide"]
    assert names("env.python like '3.%' and env.gpu.count >= 0", "name") == ["baseline", "broken", "rnn", "wide"]


def test_metric_keys_with_dots_take_the_longest_match(sample: Sample) -> None:
    rnn = gitexp.get_run("rnn")
    # "acc.max" is a metric of its own: metrics.acc.max is its last value, not acc's maximum.
    assert field_value(rnn, ("metrics", "acc", "max")) == 0.3
    assert field_value(rnn, ("metrics", "acc.max", "count")) == 1
    assert field_value(rnn, ("metrics", "acc")) is MISSING
    assert names("metrics.acc.max = 0.3") == ["rnn"]
    assert names("metrics.`acc.max`.last = 0.3") == ["rnn"]
    metrics = {"a": {"last": 1, "max": 2}, "a.max": {"last": 3}, "b/c.d": {"last": 4, "min": 0}}
    assert metric_value(metrics, ["a", "max"]) == 3
    assert metric_value(metrics, ["a"]) == 1
    assert metric_value(metrics, ["b/c", "d", "min"]) == 0
    assert metric_value(metrics, ["b/c", "d"]) == 4
    assert metric_value(metrics, ["b/c"]) is MISSING


def test_nan_last_value_and_missing_fields_never_match(sample: Sample) -> None:
    # rnn's loss ends with 1.5 (its NaN was in the middle); its min and max skip the NaN.
    assert field_value(gitexp.get_run("rnn"), ("metrics", "loss", "min")) == 1.5
    # Runs without val/acc, tags.dataset or inputs do not match either way: not an error.
    assert names("metrics.val/acc > 0 or metrics.val/acc <= 0", "name") == ["baseline", "wide"]
    assert names("tags.dataset != cifar10") == ["wide"]
    assert names("inputs.train.sha256 like '%'", "name") == ["baseline", "wide"]
    assert names("params.nothing = 1 or tags.nothing = x or env.nothing.here = 1") == []
    assert names("not tags.dataset = cifar10", "name") == ["broken", "rnn", "wide"]
    assert names("tags.dataset is null", "name") == ["broken", "rnn"]


def test_start_compares_as_a_date(sample: Sample) -> None:
    today = datetime.now(timezone.utc).date()
    assert len(names(f"start > {today - timedelta(days=1)}")) == 4
    assert names(f"start > {today + timedelta(days=1)}") == []
    start = field_value(gitexp.get_run("rnn"), ("start",))
    assert isinstance(start, datetime) and start.tzinfo is not None
    assert names(f"start >= {start.isoformat()}", "name") == ["broken", "rnn"]


def test_commit_matches_a_full_id_or_a_prefix(sample: Sample) -> None:
    everything = ["baseline", "broken", "rnn", "wide"]
    assert names(f"commit = '{sample.base}'", "name") == everything
    assert names(f"commit = '{sample.base[:7]}'", "name") == everything
    assert names(f"commit = '{sample.base[:4].upper()}'", "name") == everything
    assert names(f"commit in ('0000000', '{sample.base[:10]}')", "name") == everything
    assert names(f"commit != '{sample.base[:7]}'") == []
    assert names("commit = 'abc'") == []  # under 4 characters: compared whole, not as a prefix
    assert names("commit = dfe94f2 or commit = 'ffffffff'") == []  # a bare word is a string
    assert names("commit = 0123456") == []  # read as text, not as the number 123456 (an error before)


def test_an_unquoted_commit_of_digits_alone_finds_its_runs(repo: Path) -> None:
    """A commit whose short id is all digits (about 1 in 27) is written unquoted by whoever copies it
    from `git log --oneline`; it read as a number, which the query refused."""
    for attempt in range(2000):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"attempt {attempt}")
        commit = git(repo, "rev-parse", "HEAD").strip()
        if commit[:7].isdigit():
            break
    else:  # pragma: no cover - 2,000 tries each 1 in 27 to succeed
        pytest.fail("no commit with a short id of digits alone")
    with gitexp.start_run(name="on-digits", system_metrics_interval=0):
        pass
    assert names(f"commit = {commit[:7]}") == ["on-digits"]
    assert names(f"commit in ({commit[:9]}, 0000000)") == ["on-digits"]
    assert names(f"commit != {commit[:7]}") == []


def test_sort_keys_and_missing_values_last(sample: Sample) -> None:
    # Runs without val/acc come last, in their newest-first order, in either direction.
    assert names(order_by="-metrics.val/acc") == ["wide", "baseline", "broken", "rnn"]
    assert names(order_by="metrics.val/acc") == ["baseline", "wide", "broken", "rnn"]
    assert names(order_by=["experiment", "-params.lr"]) == ["broken", "wide", "baseline", "rnn"]
    assert names(order_by="params.model.layers desc")[:2] == ["wide", "baseline"]
    assert names(experiment="cnn", order_by="name") == ["baseline", "broken", "wide"]


def test_errors_say_where_and_what(sample: Sample) -> None:
    with pytest.raises(QueryError, match="column 13") as info:
        search_runs("params.lr < and")
    assert "expected a value" in str(info.value)
    with pytest.raises(QueryError, match=r"unknown field 'paramz\.lr'"):
        search_runs("paramz.lr = 1")
    with pytest.raises(QueryError):
        search_runs(order_by="-metrics.acc,,")


def test_select_runs_by_name_keeps_the_order_given_and_applies_where(sample: Sample) -> None:
    assert [r.name for r in select_runs(["rnn", "baseline", sample.ids["rnn"]])] == ["rnn", "baseline"]
    assert [r.name for r in select_runs(["rnn", "baseline"], where="experiment = cnn")] == ["baseline"]
    assert [r.name for r in select_runs(where="experiment = rnn")] == ["rnn"]
    with pytest.raises(GitexpError, match="no run matches 'nope'"):
        select_runs(["nope"])


def test_search_runs_is_exported_lazily() -> None:
    assert "search_runs" in gitexp.__all__ and "plot" in gitexp.__all__
    assert gitexp.search_runs is search_runs


# -- columns ------------------------------------------------------------------------------------


def test_columns_use_the_query_field_names(sample: Sample) -> None:
    records = search_runs(order_by="name")
    columns, rows = run_rows(records, ["params.model.layers", "metrics.val/acc.max", "metrics.`acc.max`",
                                       "tags.dataset", "env.python", "inputs.train.sha256", "host", "experiment"])
    assert columns[-8:] == ["params.model.layers", "metrics.val/acc.max", "metrics.`acc.max`", "tags.dataset",
                            "env.python", "inputs.train.sha256", "host", "experiment"]
    by_name = {row["name"]: row for row in rows}
    assert by_name["wide"]["params.model.layers"] == 8
    assert by_name["wide"]["metrics.val/acc.max"] == pytest.approx(0.9)
    assert by_name["rnn"]["metrics.`acc.max`"] == 0.3
    assert by_name["rnn"]["params.model.layers"] is None
    assert by_name["baseline"]["inputs.train.sha256"] == sha("train v1")
    assert by_name["baseline"]["env.python"].startswith("3.")
    assert by_name["rnn"]["experiment"] == "rnn"
    with pytest.raises(GitexpError, match="unknown column 'bogus'"):
        run_rows(records, ["bogus"])


def test_split_columns_keeps_commas_inside_backticks() -> None:
    assert split_columns("params.lr, metrics.`a,b`.max,,tags.x") == ["params.lr", "metrics.`a,b`.max", "tags.x"]
    assert column_path("metrics.`a,b`.max") == ("metrics", "a,b", "max")


def test_only_changed_keeps_differing_columns(sample: Sample) -> None:
    records = search_runs("experiment = cnn and status = FINISHED")
    columns, _ = run_rows(records, ["params.lr", "params.batch", "params.model.act", "metrics.loss"],
                          only_changed=True)
    assert "params.lr" in columns and "metrics.loss" in columns
    assert "params.batch" not in columns and "params.model.act" not in columns
    assert "status" not in columns and "commit" not in columns  # FINISHED, same base commit
    assert columns[:2] == ["id", "name"]
    columns, _ = run_rows(records, None, only_changed=True)  # default columns: every differing param/metric
    assert {"params.lr", "params.model.layers", "metrics.loss", "metrics.val/acc"} <= set(columns)
    assert "params.batch" not in columns


# -- git exp ls ---------------------------------------------------------------------------------


def test_ls_where_sort_in_every_format(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ls", "--where", "experiment = cnn and metrics.loss < 1", "--sort", "-metrics.val/acc",
            "--columns", "params.lr,metrics.val/acc,metrics.loss.min", "--precision", "2"]
    code, out, err = cli(capsys, *args)
    assert (code, err) == (0, "")
    header, rule, *lines = out.splitlines()
    assert header.split()[-3:] == ["params.lr", "metrics.val/acc", "metrics.loss.min"]
    assert set(rule) <= {"-", " "}
    assert [line.split()[1] for line in lines] == ["wide", "baseline"]
    assert lines[0].split()[-2:] == ["0.9", "0.1"]  # --precision 2

    code, out, _ = cli(capsys, *args, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["name"], float(r["metrics.val/acc"])) for r in rows] == [("wide", pytest.approx(0.9)),
                                                                         ("baseline", pytest.approx(0.8))]
    assert rows[0]["params.lr"] == "0.1" and rows[0]["start"].endswith("Z")  # csv: full precision, ISO time

    code, out, _ = cli(capsys, *args, "--format", "json")
    data = json.loads(out)
    assert [d["name"] for d in data] == ["wide", "baseline"]
    assert data[1]["metrics.loss.min"] == pytest.approx(0.2) and data[1]["params.lr"] == 0.01

    code, out, _ = cli(capsys, *args, "--format", "md")
    lines = out.splitlines()
    assert len(lines) == 4 and all(line.startswith("|") and line.endswith("|") for line in lines)
    assert "| metrics.val/acc" in lines[0] and "wide" in lines[2]


def test_ls_json_without_columns_prints_whole_records(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "-w", "name = rnn", "-f", "json")
    assert code == 0
    (record,) = json.loads(out)
    assert record["params"] == {"hidden": 128, "lr": 0.001}
    assert record["metrics"]["loss"]["count"] == 3


def test_ls_only_changed(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "-w", "name in (baseline, wide)", "--only-changed", "-f", "csv")
    assert code == 0
    reader = csv.DictReader(io.StringIO(out))
    list(reader)
    assert "params.lr" in reader.fieldnames and "params.batch" not in reader.fieldnames  # type: ignore[operator]
    assert "status" not in reader.fieldnames  # type: ignore[operator]


def test_ls_sort_accepts_descending_keys_as_written(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--sort", "-name"], ["-s", "-name"], ["--sort=-name"], ["--sort", "name desc"]):
        code, out, err = cli(capsys, "ls", *args, "-f", "csv", "-c", "name")
        assert (code, err) == (0, ""), args
        assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["wide", "rnn", "broken", "baseline"]
    code, out, _ = cli(capsys, "ls", "-n", "1", "--sort", "-duration,name", "-c", "name", "-f", "csv")
    assert len(out.splitlines()) == 2


def test_ls_where_errors_and_empty_results(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls", "--where", "params.lr <")
    assert (code, out) == (1, "")
    assert err.startswith("git exp: error: invalid --where expression at column 12: expected a value")
    code, out, err = cli(capsys, "ls", "--where", "params.lr > 100")
    assert (code, out) == (0, "")
    assert "no runs match --where 'params.lr > 100'" in err


def test_render_every_format_for_one_row() -> None:
    columns, rows = ["id", "name", "metrics.acc"], [{"id": "x", "name": "a|b", "metrics.acc": 0.123456}]
    assert render(columns, rows, "csv", 2).splitlines() == ["id,name,metrics.acc", "x,a|b,0.123456"]
    assert json.loads(render(columns, rows, "json")) == rows
    assert "0.12" in render(columns, rows, "table", 2)
    assert render(columns, rows, "md", 2).count("\n") == 3


# -- the listing row's shortcut (search.from_row) against the run's own summaries ------------------

_KEYS = st.sampled_from(["loss", "acc", "acc.max", "val/acc", "a.b", "system/cpu", "system/gpu.max", "x.min"])
_SUMMARY = st.fixed_dictionaries({"last": st.floats(allow_nan=False), "min": st.floats(allow_nan=False),
                                  "max": st.floats(allow_nan=False), "count": st.integers(1, 9),
                                  "step": st.integers(0, 9)})


@settings(max_examples=300, deadline=None)
@given(metrics=st.dictionaries(_KEYS, _SUMMARY, max_size=5), data=st.data())
def test_a_metric_read_from_the_listing_row_is_what_the_runs_summaries_say(metrics: dict[str, Any],
                                                                          data: st.DataObject) -> None:
    """from_row answers a metric path as metric_value does over the run's summaries, or UNKNOWN (then
    the summaries are read): the minima and maxima in the row must never give another value."""
    key = data.draw(st.sampled_from(sorted(metrics)) if metrics and data.draw(st.booleans()) else _KEYS)
    parts = key.split(".") if data.draw(st.booleans()) else [key]
    path = [*parts, *data.draw(st.lists(st.sampled_from(["last", "min", "max", "count", "step"]), max_size=1))]
    row = runcache.make_row({"name": "r", "status": "FINISHED"}, {}, metrics)
    assert row is not None
    found = from_row(row, "metrics", tuple(path))
    if found is not UNKNOWN:
        assert found == metric_value(metrics, path)
    else:
        assert path[0].startswith("system/") or path[-1] in ("count", "step")
