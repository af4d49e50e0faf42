"""`git exp ls --where/--sort` from the kept listing (gitexp/views/selection.py): every field it
answers is what the run's record answers, every query it answers selects and orders the runs
search_runs does, and the command prints what searching the runs prints."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gitexp
from gitexp.errors import GitexpError, QueryError
from gitexp.store.query import parse_sort
from gitexp.store.runs import load_runs
from gitexp.store.search import RunFields, search_runs
from gitexp.views import listing, selection, table
from gitexp.views.compare import best_run, find_best, metric_path
from tests.conftest import git
from tests.sample_runs import QUIET, Sample, age_kept_listing, make_mixed_run, sample_runs

FIELDS = ["params.lr", "params.batch", "params.model", "params.model.layers", "params.`model.layers`",
          "params.model.act", "params.hidden", "params.nothing", "params.layers", "params.flag", "params.opt",
          "metrics.loss", "metrics.loss.max", "metrics.loss.min", "metrics.loss.last", "metrics.loss.count",
          "metrics.loss.step", "metrics.acc", "metrics.acc.max", "metrics.`acc.max`", "metrics.acc.max.min",
          "metrics.val/acc", "metrics.val/acc.max", "metrics.val/acc.min", "metrics.system/cpu",
          "metrics.nothing.max", "id", "name", "status", "experiment", "tags.dataset", "start", "commit", "duration"]
# What the kept listing of plain runs must answer itself, for the usual queries to be fast.
ANSWERED = ["params.lr", "params.model.layers", "params.nothing", "metrics.loss", "metrics.loss.max",
            "metrics.val/acc.min", "metrics.acc.max", "metrics.nothing.max", "id", "name", "status", "experiment"]


def path_of(text: str) -> tuple[str, ...]:
    return parse_sort(text)[0].path


@pytest.fixture(params=["plain", "user-text"])
def sample(repo: Path, request: pytest.FixtureRequest) -> Sample:
    made = sample_runs(repo, git(repo, "rev-parse", "HEAD").strip(), request.param)
    made.ids["mixed"] = make_mixed_run(repo)
    ls(repo)  # keeps the listing
    return made


def ls(repo: Path, *args: str) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-m", "gitexp", "ls", *args], cwd=repo, capture_output=True, text=True,
                          check=True)
    return proc.stdout, proc.stderr


def kept(repo: Path) -> listing.Listing:
    found = listing.current(repo)
    assert found is not None
    return found


def check_fields(repo: Path) -> None:
    """Every field the kept listing answers is what each run's record answers, in the runs' order."""
    whole, records = kept(repo), load_runs(repo)
    assert whole.ids == [r.id for r in records]
    for text in FIELDS:
        got = selection.field(whole, path_of(text))
        if got is not None:
            assert repr(got) == repr([RunFields(r)(path_of(text)) for r in records]), text  # (NaN: by repr)
        elif whole.plain:
            assert text not in ANSWERED, f"the listing of plain runs cannot answer {text}"


def test_each_field_is_what_the_runs_record_says(sample: Sample) -> None:
    check_fields(sample.repo)
    assert kept(sample.repo).plain == ("evil" not in sample.ids)  # the user-text run has a dotted param key


def test_a_listing_brought_up_to_date_answers_as_the_runs_do(sample: Sample) -> None:
    with gitexp.start_run(name="newest", experiment="cnn", repo=sample.repo, params={"lr": 0.5}, **QUIET) as run:
        run.log_metrics({"loss": 0.25, "val/acc": 0.5})
        run.log_metrics({"loss": 0.125, "val/acc": 0.875})
        run.log_metric("fid", 9.5)  # a key no kept run has
    updated = listing.current(sample.repo)
    assert (updated is not None) == ("evil" not in sample.ids)
    if updated is not None:
        assert updated.refs is not None  # brought up to date, not listed anew
        assert selection.field(updated, path_of("metrics.fid.min")) is not None
        age_kept_listing(sample.repo)
        listing.remember(sample.repo, updated)
        check_fields(sample.repo)


_VALUES = st.sampled_from(["0", "0.01", "0.5", "1", "4", "'relu'", "cnn", "FINISHED", "'mix%'"])
_OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "like"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        field = draw(st.sampled_from(FIELDS))
        if draw(st.integers(0, 5)) == 0:
            return f"{field} is {draw(st.sampled_from(['null', 'not null']))}"
        return f"{field} {draw(_OPS)} {draw(_VALUES)}"
    if draw(st.integers(0, 4)) == 0:
        return f"not ({draw(expressions(depth - 1))})"
    return f"({draw(expressions(depth - 1))}) {draw(st.sampled_from(['and', 'or']))} ({draw(expressions(depth - 1))})"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.one_of(st.none(), expressions()),
       order=st.lists(st.tuples(st.sampled_from(["", "-"]), st.sampled_from(FIELDS)), max_size=2))
def test_a_query_answered_from_the_listing_selects_the_runs_search_runs_does(sample: Sample, where: str | None,
                                                                            order: list[tuple[str, str]]) -> None:
    order_by = [sign + field for sign, field in order] or None
    whole = kept(sample.repo)
    try:
        found = selection.select(whole, where, order_by)
    except QueryError as exc:  # ("params.lr like 0": a pattern must be text) the error search_runs gives
        with pytest.raises(QueryError) as raised:
            search_runs(where, order_by, repo=sample.repo)
        assert str(raised.value) == str(exc)
        return
    if found is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert found.ids == [r.id for r in search_runs(where, order_by, repo=sample.repo)], (where, order_by)


BEST = ["loss", "val/acc", "val/acc.max", "loss.min", "acc.max", "loss.count", "nothing"]  # as `best` takes them


def test_best_from_the_listing_is_the_run_best_run_picks(sample: Sample) -> None:
    whole = kept(sample.repo)
    for metric in BEST:
        if whole.plain and metric not in ("loss.count", "nothing"):  # (else find_best reads the runs)
            assert selection.field(whole, metric_path(metric)) is not None, metric
        for minimize in (True, False):
            for where in (None, "params.lr < 0.05", "experiment = rnn", "params.lr > 99"):
                matching = search_runs(where, repo=sample.repo)
                try:
                    expected = best_run(matching, metric, minimize)[0].id if matching else None
                except GitexpError as exc:
                    expected = str(exc)
                try:
                    found = find_best(metric, minimize, where)
                    got = None if found is None else found.id
                except GitexpError as exc:
                    got = str(exc)
                assert got == expected, (metric, minimize, where)


QUERIES = [("params.lr < 0.05 and metrics.val/acc.max > 0.5", "-metrics.val/acc"),
           ("metrics.loss.min <= 1 or status = FAILED", "params.lr"), ("experiment != rnn", "-metrics.loss.max,name"),
           ("params.model.layers >= 4", None), (None, "-params.lr"), ("metrics.acc.max is not null", None)]


def test_the_usual_queries_are_answered_from_the_listing(sample: Sample) -> None:
    if "evil" in sample.ids:
        pytest.skip("a run with a dotted param key: only the runs' records answer")
    whole = kept(sample.repo)
    for where, order_by in QUERIES:
        found = selection.select(whole, where, order_by)
        assert found is not None, (where, order_by)
        assert found.ids == [r.id for r in search_runs(where, order_by, repo=sample.repo)]
        assert found.handles == [whole.handles[whole.ids.index(i)] for i in found.ids]


def test_the_runs_plot_compare_and_report_take_are_those_search_runs_gives(sample: Sample) -> None:
    # selection.select_runs picks them from the kept listing where it can tell, and reads only those.
    queries = [*QUERIES, ("params.lr > 99", None), ("tags.dataset = cifar", None), ("metrics.loss.count > 1", None)]
    for experiment in (None, "cnn"):
        for where, order_by in queries:
            if where is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = search_runs(where, order_by, experiment, sample.repo)
                got = selection.select_runs((), where, order_by, experiment, sample.repo)
            assert [(r.id, r.commit, r.params, r.metrics, r.meta) for r in got] == \
                [(r.id, r.commit, r.params, r.metrics, r.meta) for r in expected], (where, order_by, experiment)


def searched(repo: Path, query: list[str], args: list[str]) -> str:
    """What `git exp ls *query *args` prints (not to a terminal) from search_runs and run_columns."""
    options = dict(zip(args[::2], args[1::2], strict=False))
    form, experiment = options.get("--format", "table"), options.get("--experiment")
    where, order_by = (dict(zip(query[::2], query[1::2], strict=True)).get(f) for f in ("--where", "--sort"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = search_runs(where, order_by, experiment, repo)
    records = records[:int(options["-n"])] if "-n" in options else records
    if not records:
        return ""
    columns, values = table.run_columns(records, None, "--all" in args or form == "csv", "--only-changed" in args,
                                        full_ids=form == "csv")
    return table.render_columns(columns, values, form, 4)


def test_ls_prints_what_searching_the_runs_prints(sample: Sample) -> None:
    cache = sample.repo / ".git" / listing.CACHE_FILE
    asked = [["--format", "csv"], ["--format", "md", "-n", "2"], ["--all"], ["--only-changed"],
             ["--experiment", "cnn", "--format", "csv"], []]
    queries = [*QUERIES, ("params.lr > 100", None), ("params.lr_typo > 0", None), (None, "-metrics.loss.count")]
    for n, (where, order_by) in enumerate(queries):
        query = [*(["--where", where] if where else []), *(["--sort", order_by] if order_by else [])]
        for args in (asked[n % len(asked)], asked[(n + 1) % len(asked)]):
            expected = searched(sample.repo, query, args)
            assert ls(sample.repo, *query, *args)[0] == expected, (query, args)  # with the listing kept
            cache.unlink()
            assert ls(sample.repo, *query, *args)[0] == expected, (query, args)  # with none kept
            # A query of every run keeps the listing it made for the next; one experiment's does not.
            assert cache.exists() == ("--experiment" not in args), (query, args)
            ls(sample.repo)
    # A typo is warned of, whichever way the query is answered.
    assert "params.lr_typo" in ls(sample.repo, "--where", "params.lr_typo > 0")[1]
    cache.unlink()
    assert "params.lr_typo" in ls(sample.repo, "--where", "params.lr_typo > 0")[1]


def test_ls_n_prints_the_newest_runs_as_reading_them_does(sample: Sample) -> None:
    """`git exp ls -n N` shows the first N runs of the kept listing (newest first, as load_runs
    orders them): what reading the N newest runs alone prints."""
    cache = sample.repo / ".git" / listing.CACHE_FILE
    ls(sample.repo)
    for args in (["-n", "2"], ["-n", "1", "--format", "csv"], ["-n", "3", "--experiment", "cnn"], ["-n", "500"],
                 ["-n", "2", "--only-changed"], ["-n", "3", "--format", "md", "--all"]):
        expected = searched(sample.repo, [], args)
        assert cache.exists()
        assert ls(sample.repo, *args)[0] == expected, args  # from the listing kept
        cache.unlink()
        assert ls(sample.repo, *args)[0] == expected, args  # the newest runs read alone
        ls(sample.repo)
    # A listing brought up to date for it is kept for the next, as a plain listing's is.
    with gitexp.start_run(name="newest", experiment="cnn", repo=sample.repo, **QUIET) as run:
        run.log_metric("val/acc", 0.9)
    age_kept_listing(sample.repo)
    assert ls(sample.repo, "-n", "1", "--format", "csv")[0].splitlines()[1].startswith(run.id)
    if "evil" not in sample.ids:  # (a run with a dotted param key: no listing is brought up to date)
        again = listing.current(sample.repo)
        assert again is not None and again.refs is None and run.id in again.ids  # kept as it is now


def test_a_query_keeps_the_listing_it_brought_up_to_date(sample: Sample) -> None:
    with gitexp.start_run(name="newest", experiment="cnn", repo=sample.repo, params={"lr": 0.001}, **QUIET) as run:
        run.log_metric("val/acc", 0.9)
    age_kept_listing(sample.repo)
    out, _ = ls(sample.repo, "--where", "params.lr < 0.05", "--sort", "-metrics.val/acc", "--format", "csv")
    assert out.splitlines()[1].startswith(run.id)
    if "evil" not in sample.ids:
        again = listing.current(sample.repo)
        assert again is not None and again.refs is None and run.id in again.ids  # kept as it is now
