"""Rows and text for `git exp ls`: flattening, short ids, differing columns, number formatting."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from gitexp.errors import GitexpError
from gitexp.table import differing, flatten, human_duration, render, short_ids


def test_flatten_nested_params_to_dotted_keys() -> None:
    params = {"lr": 0.1, "model": {"layers": 4, "act": {"name": "relu"}}, "empty": {}, "tags": [1, 2]}
    assert flatten(params) == {
        "lr": 0.1, "model.layers": 4, "model.act.name": "relu", "empty": {}, "tags": [1, 2],
    }
    assert flatten({}) == {}


def test_short_ids_are_13_characters_when_that_is_unique() -> None:
    ids = ["20260101-0000001aaaaaaaa", "20260101-1000002bbbbbbbb", "20260102-0000003cccccccc"]
    assert short_ids(ids) == {i: i[:13] for i in ids}
    assert short_ids(ids[:1]) == {ids[0]: ids[0][:13]}
    assert short_ids([]) == {}


def test_short_ids_grow_for_close_ids() -> None:
    a, b, c = "20260101-00000011aaaaaaa", "20260101-00000012bbbbbbb", "20260101-9000000cccccccc"
    shorts = short_ids([a, b, c])
    assert shorts == {a: a[:17], b: b[:17], c: c[:13]}
    # Every short id is a prefix of its own id and of no other.
    for full, short in shorts.items():
        assert [i for i in (a, b, c) if i.startswith(short)] == [full]


def test_short_ids_minimum_is_respected() -> None:
    ids = ["20260101-0000001aaaaaaaa", "20260101-0000001aaaaaaab"]
    assert short_ids(ids, minimum=20) == {ids[0]: ids[0], ids[1]: ids[1]}


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
