"""Rows and text for `git exp ls`: flattening, short ids, differing columns, number formatting."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from gitexp.errors import GitexpError
from gitexp.store.fields import flatten
from gitexp.views.fitting import terminal_table
from gitexp.views.plaintable import plain_table
from gitexp.views.table import (
    cell,
    cells,
    differing,
    human_duration,
    local_time,
    local_times,
    render,
    render_columns,
    short_ids,
    text_columns,
)


def test_flatten_nested_params_to_dotted_keys() -> None:
    params = {"lr": 0.1, "model": {"layers": 4, "act": {"name": "relu"}}, "empty": {}, "tags": [1, 2]}
    assert flatten(params) == {
        "lr": 0.1, "model.layers": 4, "model.act.name": "relu", "empty": {}, "tags": [1, 2],
    }
    assert flatten({}) == {}


def test_short_ids_are_handles() -> None:
    ids = ["20260101-0000001aaaaaaaa", "20260101-1000002bbbbbbbb", "20260102-0000003bbbbbbbc"]
    assert short_ids(ids) == {ids[0]: "aaaaaaa", ids[1]: "bbbbbbbb", ids[2]: "bbbbbbbc"}
    assert short_ids([]) == {}


def test_differing_lists_only_keys_that_differ() -> None:
    rows = [
        {"lr": 0.1, "opt": "adam", "layers": 3, "seed": 1},
        {"lr": 0.01, "opt": "adam", "layers": 3},
        {"lr": 0.1, "opt": "adam", "layers": 3.0, "seed": 1},
    ]
    # seed is missing from one run: missing counts as a value. 3 and 3.0 are shown differently.
    assert differing(rows) == ["layers", "lr", "seed"]
    assert differing([{"a": 1}, {"a": 1}]) == []


def test_differing_with_one_run_lists_every_key() -> None:
    assert differing([{"b": 1, "a": 2}]) == ["a", "b"]
    assert differing([]) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0, "0.0s"), (5.25, "5.2s"), (59.9, "59.9s"), (60, "1m00s"), (125.7, "2m05s"),
     (3599, "59m59s"), (3600, "1h00m"), (90_061, "25h01m")],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


COLUMNS = ["id", "name", "params.lr", "metrics.acc"]
ROWS = [
    {"id": "20260101-0000", "name": "a", "params.lr": 0.123456789012345, "metrics.acc": 2 / 3},
    {"id": "20260101-1111", "name": "b", "params.lr": 1e-5, "metrics.acc": None},
]


def test_csv_keeps_full_precision() -> None:
    rows = list(csv.DictReader(io.StringIO(render(COLUMNS, ROWS, "csv", precision=3))))
    assert rows[0]["params.lr"] == repr(0.123456789012345)
    assert float(rows[0]["metrics.acc"]) == 2 / 3
    assert rows[1]["params.lr"] == "1e-05"
    assert rows[1]["metrics.acc"] == ""


def test_table_uses_precision() -> None:
    out = render(COLUMNS, ROWS, "table", precision=3)
    assert "0.123" in out and "0.1235" not in out
    assert "0.667" in out
    assert "0.1235" in render(COLUMNS, ROWS, "table", precision=4)
    header, rule, *lines = out.splitlines()
    assert header.split() == COLUMNS
    assert set(rule.replace(" ", "")) == {"-"}
    assert [line.split()[1] for line in lines] == ["a", "b"]


def test_nan_and_inf_are_rendered_as_nan_and_inf() -> None:
    rows = [{"name": "x", "v": math.nan}, {"name": "y", "v": math.inf}, {"name": "z", "v": -math.inf}]
    table = render(["name", "v"], rows, "table")
    assert [line.split()[1] for line in table.splitlines()[2:]] == ["nan", "inf", "-inf"]
    assert [r["v"] for r in csv.DictReader(io.StringIO(render(["name", "v"], rows, "csv")))] == [
        "nan", "inf", "-inf"]


def test_md_output_is_a_markdown_table() -> None:
    out = render(COLUMNS, ROWS, "md")
    lines = out.splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert all(line.startswith("|") and line.endswith("|") for line in lines)
    assert [c.strip() for c in lines[0].strip("|").split("|")] == COLUMNS
    assert set(lines[1].replace("|", "").replace(":", "").replace(" ", "")) == {"-"}


def test_json_output_keeps_values_typed() -> None:
    data = json.loads(render(COLUMNS, ROWS, "json"))
    assert data[0]["params.lr"] == 0.123456789012345
    assert data[1]["metrics.acc"] is None


def test_booleans_and_structures_in_cells() -> None:
    out = render(["name", "flag", "sizes"], [{"name": "a", "flag": True, "sizes": [1, 2]}], "csv")
    assert list(csv.reader(io.StringIO(out)))[1] == ["a", "true", "[1, 2]"]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(GitexpError, match="unknown format 'xml'"):
        render(COLUMNS, ROWS, "xml")


# -- the fast paths of `git exp ls` against what they stand for ------------------------------------

_cell_text = st.text(alphabet="ab c-.%|:1_", max_size=7)


@given(st.lists(st.text(alphabet="hx. %|", max_size=6), min_size=1, max_size=5), st.data())
@settings(max_examples=300)
def test_plain_table_is_what_tabulate_prints(headers: list[str], data: st.DataObject) -> None:
    rows = data.draw(st.integers(1, 6))
    columns = [data.draw(st.one_of(st.lists(_cell_text, min_size=rows, max_size=rows),
                                   st.lists(st.sampled_from(["True", "False", ""]), min_size=rows, max_size=rows)))
               for _ in headers]
    table = [list(row) for row in zip(*columns, strict=True)]
    for markdown, style in ((False, "simple"), (True, "github")):
        expected = tabulate(table, headers=headers, tablefmt=style, disable_numparse=True) + "\n"
        assert plain_table(headers, columns, markdown=markdown) == expected


@pytest.mark.parametrize(("text", "shown"), [("café", "café"), ("漢字", "漢字"), ("two\nlines", "two\\nlines"),
                                           ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"), ("tab\there", "tab\\there"),
                                           ("\x7f", "\\x7f")])
def test_text_tabulate_measures_otherwise_is_left_to_it(text: str, shown: str) -> None:
    # Control characters of run data are shown escaped: a cell is one line, and no escape sequence
    # reaches the terminal (tests/test_hostile.py); the rest is tabulate's to lay out.
    assert plain_table(["name"], [[text, "plain"]]) is None
    assert plain_table([f"name {text}"], [["plain"]]) is None  # (a header, likewise)
    rows = [{"name": text, "v": 1.5}, {"name": "plain", "v": None}]
    for form, style in (("table", "simple"), ("md", "github")):
        expected = tabulate([[shown, "1.5"], ["plain", ""]], headers=["name", "v"], tablefmt=style,
                            disable_numparse=True) + "\n"
        assert render(["name", "v"], rows, form) == expected


@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
                          st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                                               max_size=2))),
       st.sampled_from([1, 4, 17]))
def test_cells_of_a_column_are_its_cells(values: list[object], precision: int) -> None:
    assert cells(values, precision) == [cell(v, precision) for v in values]


@given(st.one_of(st.lists(st.one_of(st.none(), st.floats())), st.lists(st.one_of(st.none(), st.integers())),
                 st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)))),
       st.sampled_from([1, 4, 17]))
def test_cells_of_a_column_with_gaps_are_its_cells(values: list[object], precision: int) -> None:
    assert cells(values, precision) == [cell(v, precision) for v in values]


@given(st.one_of(st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=1, max_size=5),
                 st.lists(st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.5, -1.5, 1e-9, 59.99, 61.0, 3600.5])),
                          min_size=1, max_size=5),
                 st.lists(st.one_of(st.none(), st.sampled_from(["2026-03-29T01:00:00.000Z", "2026-03-29T01:00:59.999Z",
                                                                "2026-03-29T01:01:00.000Z", "2026-03-29T01:01:00Z"])),
                          min_size=1, max_size=5)),
       st.lists(st.integers(0, 4), min_size=1, max_size=80), st.sampled_from([1, 4, 17]))
def test_columns_of_repeated_values_show_each_value_as_alone(pool: list[object], picks: list[int],
                                                             precision: int) -> None:
    """A sweep's columns repeat a few values (shown once each, per_distinct): every cell is what
    the value gives alone, 0.0 and -0.0 apart, start times and durations too."""
    values = [pool[k % len(pool)] for k in picks]
    assert cells(values, precision) == [cell(v, precision) for v in values]
    if all(v is None or type(v) is str for v in values):
        (starts,) = text_columns(["start"], [values], precision, True)
        assert starts == [local_time(v) for v in values]  # type: ignore[arg-type]
    if all(v is None or type(v) is float for v in values):
        (shown,) = text_columns(["duration"], [values], precision, True)
        assert shown == [human_duration(v) for v in values]  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(st.integers(4001, 9000), st.integers(1, 20_000), st.sampled_from([0.0, -0.0, None, 3, 1.5]),
       st.sampled_from([1, 4, 17]))
def test_long_columns_show_each_value_as_alone(rows: int, distinct: int, odd: object, precision: int) -> None:
    """Columns past a few thousand runs, whose values are sampled before per_distinct counts them:
    mostly distinct, a few repeated, or with a 0.0 or -0.0 among them, every cell is what its value gives alone."""
    values: list[object] = [(k % distinct) / 7 - 3 for k in range(rows)]
    values[rows // 2] = odd
    assert cells(values, precision) == [cell(v, precision) for v in values]


def test_local_times_are_remembered_by_the_minute_only_when_that_is_exact() -> None:
    times = [f"2026-03-29T0{h}:{m:02d}:{s:02d}.{ms:03d}Z" for h in range(4) for m in (0, 59) for s in (0, 30, 59)
             for ms in (0, 999)] + ["2026-03-29T01:00:00Z", "1970-01-01T00:00:30.000Z", None, ""]
    fresh = [local_time(t) for t in times]
    assert local_times(times) == fresh  # the second time from the memo
    assert [local_time(t) for t in times] == fresh


# -- the table for a terminal (`git exp ls` on a tty) ---------------------------------------------------


def _listing(runs: int = 6) -> tuple[list[str], list[list[object]], list[str]]:
    """Columns as run_columns makes them for runs of two experiments: mlp's params and metrics are
    empty for cnn's runs and the other way round; params.unused is empty for every run."""
    experiments = ["mlp" if i % 3 else "cnn" for i in range(runs)]
    mlp = [e == "mlp" for e in experiments]
    columns = ["id", "name", "status", "start", "duration", "commit", "params.batch_size", "params.dropout",
               "params.lr", "params.unused", "metrics.acc", "metrics.loss", "metrics.top1"]
    values: list[list[object]] = [
        [f"{i:07x}" for i in range(runs)], [f"{e}-run-{i}" for i, e in enumerate(experiments)], ["FINISHED"] * runs,
        ["2026-03-29T08:15:00.000Z"] * runs, [12.5] * runs, ["abcdef0"] * runs,
        [32 * (1 + i % 2) if m else None for i, m in enumerate(mlp)],
        [None if m else 0.1 * i for i, m in enumerate(mlp)],
        [0.01 * (i + 1) if m else None for i, m in enumerate(mlp)], [None] * runs,
        [0.5 + i / 100 if m else None for i, m in enumerate(mlp)], [1.0 / (i + 1) for i in range(runs)],
        [None if m else 0.25 for m in mlp]]
    return columns, values, experiments


def _header_line(text: str) -> list[str]:
    """The headers: the line above the rule (a line of group labels may come first)."""
    lines = text.splitlines()
    return lines[[line.startswith("-") for line in lines].index(True) - 1].split()


def test_a_terminal_table_fits_its_width() -> None:
    columns, values, experiments = _listing()
    text, hidden = terminal_table(columns, values, experiments, 70)
    lines = text.splitlines()
    assert all(len(line) <= 70 for line in lines), text
    # The params and metrics under their labels, the headers without the prefix.
    assert lines[0].split() == ["params", "metrics"]
    assert lines[0].index("params") == lines[1].index("batch_size")
    header = _header_line(text)
    assert header[:4] == ["id", "experiment", "name", "status"]
    assert "unused" not in header  # empty for every run: left out, and not counted as hidden
    # What is hidden is said, in the table's order; the base columns went first.
    assert hidden[:3] == ["start", "duration", "commit"]
    assert set(hidden) | {"params.unused"} | {c for c in columns if c.split(".")[-1] in header} == set(columns)
    # Each experiment keeps a column of its own: mlp's batch_size and cnn's dropout, before mlp's lr.
    assert {"batch_size", "dropout", "loss"} <= set(header)
    assert [line.split()[1] for line in lines[3:]] == experiments


def test_a_terminal_table_wide_enough_hides_nothing() -> None:
    columns, values, experiments = _listing()
    text, hidden = terminal_table(columns, values, experiments, 200)
    assert hidden == []
    assert _header_line(text) == ["id", "experiment", "name", "status", "start", "duration", "commit", "batch_size",
                                  "dropout", "lr", "acc", "loss", "top1"]
    assert text.splitlines()[3].split()[4:6] == ["2026-03-29", local_time("2026-03-29T08:15:00.000Z")[11:]]


def test_a_terminal_table_without_a_width_is_the_plain_table_with_the_experiment() -> None:
    columns, values, experiments = _listing()
    text, hidden = terminal_table(columns, values, experiments, None)
    assert hidden == []
    with_experiment = [*columns[:1], "experiment", *columns[1:]]
    assert text == render_columns(with_experiment, [values[0], experiments, *values[1:]], "table")
    # One experiment: no experiment column.
    text, _ = terminal_table(columns, values, ["mlp"] * len(experiments), None)
    assert text == render_columns(columns, values, "table")


def test_a_narrow_terminal_shortens_the_names_last() -> None:
    columns, values, experiments = _listing()
    values[1] = [f"a-rather-long-run-name-{i}" for i in range(len(experiments))]
    text, hidden = terminal_table(columns, values, experiments, 50, ellipsis="~")
    assert all(len(line) <= 50 for line in text.splitlines()), text
    assert _header_line(text) == ["id", "experiment", "name", "status"]
    names = [line.split()[2] for line in text.splitlines()[2:]]
    assert all(name.startswith("a-rather-") and name.endswith("~") for name in names), names
    assert len(hidden) == 9


def test_a_terminal_table_measures_wide_characters_as_the_terminal_does() -> None:
    columns, values, experiments = _listing(3)
    values[1] = ["学習率-実験", "plain", "café"]
    text, _ = terminal_table(columns, values, experiments, 200)
    lines = text.splitlines()
    # The column after the names starts at the same terminal column on every line.
    starts = {_display_width(line[:line.index("FINISHED")]) for line in lines[3:]}
    assert len(starts) == 1, text


def _display_width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
