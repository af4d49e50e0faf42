"""The --where / --sort language: parsing, errors, evaluation semantics, sorting."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gitexp.errors import GitexpError, QueryError
from gitexp.store.evaluation import (
    compile_columns,
    compile_where,
    mapping_lookup,
    ranked_order,
    sort_positions,
    sort_records,
    sort_value,
)
from gitexp.store.fields import FIELDS, MISSING, PREFIXES
from gitexp.store.query import (
    And,
    Compare,
    In,
    IsNull,
    Match,
    Node,
    Not,
    Or,
    SortKey,
    field_paths,
    parse,
    parse_sort,
    unparse,
    unparse_value,
)

RUN: dict[str, object] = {
    "status": "FINISHED",
    "name": "baseline.v2",
    "id": "abc123",
    "experiment": "mnist",
    "duration": 12.5,
    "start": "2026-11-02T08:00:00Z",
    "end": datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc),
    "params": {
        "lr": "0.01",
        "epochs": 10,
        "model": {"layers": 4},
        "lr.max": 0.1,
        "opt": "adam",
        "flag": True,
        "sizes": [1, 2],
        "a`b": 1,
        "none": None,
    },
    "metrics": {"acc": 0.93, "val/acc": 0.9, "loss": 0.2},
    "tags": {"team": "vision", "note": "a.b", "pct": "100%", "rx": "a+b(c)", "when": "2026-11-05"},
}


def matches(where: str, run: dict[str, object] = RUN) -> bool:
    return compile_where(where)(mapping_lookup(run))


def cmp(field: str, op: str, value: object) -> Compare:
    return Compare(tuple(field.split(".")), op, value)  # type: ignore[arg-type]


# ---- parsing ------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    a, b, c = cmp("status", "=", "a"), cmp("name", "=", "b"), cmp("id", "=", "c")
    assert parse("status = a or name = b and id = c") == Or((a, And((b, c))))
    assert parse("status = a and name = b or id = c") == Or((And((a, b)), c))
    assert parse("(status = a or name = b) and id = c") == And((Or((a, b)), c))
    assert parse("not status = a and name = b") == And((Not(a), b))
    assert parse("not (status = a and name = b)") == Not(And((a, b)))
    assert parse("not not status = a") == Not(Not(a))
    assert parse("((status = a))") == a


def test_precedence_in_evaluation() -> None:
    assert matches("status = FAILED and name = x or metrics.acc > 0.9")
    assert not matches("status = FAILED and (name = x or metrics.acc > 0.9)")
    assert matches("not status = FAILED and metrics.acc > 0.9")
    assert not matches("not (status = FINISHED and metrics.acc > 0.9)")


def test_values_and_operators_parse() -> None:
    assert parse("metrics.acc == 1") == cmp("metrics.acc", "=", 1)
    assert parse("metrics.acc <> 1") == cmp("metrics.acc", "!=", 1)
    assert parse("metrics.acc>=-1.5e-3") == cmp("metrics.acc", ">=", -1.5e-3)
    assert parse("metrics.acc < +2") == cmp("metrics.acc", "<", 2)
    assert parse("status = FINISHED") == cmp("status", "=", "FINISHED")
    assert parse('name = "a\\"b\\n"') == cmp("name", "=", 'a"b\n')
    assert parse("params.x = TRUE or params.y = false or params.z = Null") == Or(
        (cmp("params.x", "=", True), cmp("params.y", "=", False), cmp("params.z", "=", None))
    )
    assert parse("start > 2026-11-01") == cmp("start", ">", date(2026, 11, 1))
    moment = datetime(2026, 11, 1, 10, 30, tzinfo=timezone.utc)
    assert parse("start > 2026-11-01T10:30:00Z") == cmp("start", ">", moment)
    assert parse("params.sizes = [1, 'a']") == cmp("params.sizes", "=", (1, "a"))
    assert parse("metrics.val/acc > 0.5") == Compare(("metrics", "val/acc"), ">", 0.5)
    assert parse("name = v1.2.3") == cmp("name", "=", "v1.2.3")
    assert parse("params.model.layers in (1, 2)") == In(("params", "model", "layers"), (1, 2))
    assert parse("name not like 'a%'") == Match(("name",), "like", "a%", negated=True)
    assert parse("tags.x is not null") == IsNull(("tags", "x"), negated=True)


def test_a_commit_id_is_read_as_written_even_where_it_spells_a_number() -> None:
    """0123456 as a number loses its leading zero, 12e4567 becomes inf: never what a commit id means."""
    assert parse("commit = 0123456") == cmp("commit", "=", "0123456")
    assert parse("commit != 12e4567") == cmp("commit", "!=", "12e4567")
    assert parse("commit in (0123456, 1.5, 2026-11-01, dfe94f2)") == In(
        ("commit",), ("0123456", "1.5", "2026-11-01", "dfe94f2"))
    assert parse("commit = [0123, 'x']") == cmp("commit", "=", ("0123", "x"))
    assert parse("params.commit = 0123") == cmp("params.commit", "=", 123)  # a param: a number as usual
    assert parse("name = 0123") == cmp("name", "=", 123)


def test_keywords_are_case_insensitive() -> None:
    upper = parse("status IN (FINISHED) AND NOT name LIKE 'x%' OR tags.t IS NOT NULL Or name GLOB 'a*'")
    lower = parse("status in (FINISHED) and not name like 'x%' or tags.t is not null or name glob 'a*'")
    assert upper == lower
    assert matches("status = FINISHED AnD Not metrics.acc < 0.5")
    with pytest.raises(QueryError, match="did you mean 'status'"):
        parse("STATUS = FINISHED")  # field names, unlike keywords, are case-sensitive


def test_backtick_fields() -> None:
    assert parse("params.`lr.max` > 0.05") == Compare(("params", "lr.max"), ">", 0.05)
    assert parse("params.`a``b` = 1") == Compare(("params", "a`b"), "=", 1)
    assert parse("`params`.`with space` = 1") == Compare(("params", "with space"), "=", 1)
    assert matches("params.`lr.max` > 0.05")
    assert matches("params.`a``b` = 1")
    assert unparse(parse("params.`a``b` = 1")) == "params.`a``b` = 1"


def test_unparse_is_canonical() -> None:
    text = "status == 'x' or (name <> y AND not params.a in (1, 2.5, null))"
    assert unparse(parse(text)) == "status = 'x' or name != 'y' and not params.a in (1, 2.5, null)"
    assert unparse(parse("(status = a or name = b) or id = c")) == "(status = 'a' or name = 'b') or id = 'c'"


def test_field_paths() -> None:
    node = parse("metrics.acc > 1 and (status = x or not params.`a.b` in (1)) and metrics.acc < 2")
    assert field_paths(node) == {("metrics", "acc"), ("status",), ("params", "a.b")}


def test_parsing_never_evals() -> None:
    with pytest.raises(QueryError, match="unknown field"):
        parse("__import__('os').system('true') = 1")


# ---- errors -------------------------------------------------------------------------------------

ERRORS = [
    ("(status = FINISHED", 19, "expected ')' to close the '(' at column 1, found end of input"),
    ("metrics.acc >", 14, "expected a value after '>', found end of input"),
    ("metrics.acc > and", 15, "expected a value after '>', found 'and'"),
    ("acc > 0.5", 1, "unknown field 'acc' (did you mean 'metrics.acc' or 'params.acc'?)"),
    ("stauts = x", 1, "did you mean 'status'?"),
    ("status = FINISHED extra", 19, "expected 'and', 'or' or end of input, found 'extra'"),
    ("status = FINISHED)", 18, "unmatched ')'"),
    ("name = 'abc", 8, "unterminated string"),
    ("params.`lr = 1", 8, "unterminated backtick-quoted field name"),
    ("status ~ x", 8, "expected an operator"),
    ("status in FINISHED", 11, "expected '(' after 'in'"),
    ("status in (a, b", 16, "expected ',' or ')' to end the list"),
    ("name like abc", 11, "expected a quoted pattern after 'like'"),
    ("status is FINISHED", 11, "expected 'null' after 'is'"),
    ("status not = 1", 12, "expected 'in', 'like' or 'glob' after 'not'"),
    ("start > 2026-13-01", 9, "invalid date '2026-13-01'"),
    ("status = x and", 15, "expected a field name, found end of input"),
    ("status.x = 1", 1, "field 'status' has no sub-keys"),
    ("params > 1", 7, "expected a key after 'params.'"),
    ("", 1, "expected a field name, found end of input"),
]


@pytest.mark.parametrize(("text", "column", "message"), ERRORS)
def test_syntax_errors_point_at_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, GitexpError)
    assert err.column == column  # type: ignore[attr-defined]
    assert err.expression == text  # type: ignore[attr-defined]
    first, echoed, caret = str(err).splitlines()
    assert first.startswith(f"invalid --where expression at column {column}: ")
    assert message in first
    assert echoed == "  " + text
    assert caret == "  " + " " * (column - 1) + "^"


def test_unknown_field_lists_valid_names() -> None:
    with pytest.raises(QueryError) as info:
        parse("bogus = 1")
    for name in (*FIELDS, *(p + "." for p in PREFIXES)):
        assert name in str(info.value)


def test_deep_nesting_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="nested"):
        parse("(" * 500 + "status = x" + ")" * 500)
    with pytest.raises(QueryError, match="nested"):
        parse("not " * 500 + "status = x")


def test_empty_where_matches_everything() -> None:
    assert compile_where("")(mapping_lookup({}))
    assert compile_where("   \n")(mapping_lookup({}))
    assert compile_where(None)(mapping_lookup({}))


# ---- evaluation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.acc = 0.93", True),
        ("metrics.acc == 0.93", True),
        ("metrics.acc != 0.93", False),
        ("metrics.acc <> 0.5", True),
        ("metrics.acc < 0.93", False),
        ("metrics.acc <= 0.93", True),
        ("metrics.acc > 0.9", True),
        ("metrics.acc >= 0.94", False),
        ("name > 'a'", True),
        ("name < 'a'", False),
        ("status = FINISHED", True),
        ("status = finished", False),
        ("duration > 12", True),
        ("params.model.layers = 4", True),
        ("params.lr.max = 0.1", True),
        ("params.flag = true", True),
        ("params.flag = 1", False),
        ("params.sizes = [1, 2]", True),
        ("params.sizes = [2, 1]", False),
        ("params.sizes != [2, 1]", True),
        ("params.epochs = [10]", False),
    ],
)
def test_every_operator(where: str, expected: bool) -> None:
    assert matches(where) is expected


def test_in_and_not_in() -> None:
    assert matches("status in (FINISHED, FAILED)")
    assert not matches("status in (FAILED, KILLED)")
    assert matches("status not in (FAILED, KILLED)")
    assert not matches("status not in (FINISHED)")
    assert matches("params.epochs in (1, 10)")
    assert matches("params.lr in (0.1, 0.01)")
    assert matches("params.epochs in ('10')")
    assert matches("start in (2026-11-02T08:00:00, 2027-01-01)")


def test_like_and_glob() -> None:
    assert matches("name like 'baseline%'")
    assert matches("name like 'baseline_v2'")
    assert matches("name like '%.v_'")
    assert not matches("name like 'baseline'")  # full match only
    assert not matches("name like 'BASE%'")  # case-sensitive
    assert not matches("name like 'baseline%v3'")
    assert matches("name glob 'baseline.*'")
    assert matches("name glob '*.v?'")
    assert not matches("name glob 'Baseline*'")
    assert matches("name not like 'x%'")
    assert matches("name not glob 'x*'")
    other = {"name": "baselineXv2"}
    assert not matches("name like 'baseline.v2'", other)  # '.' is literal, not a regex wildcard
    assert not matches("name glob 'baseline.v2'", other)
    assert matches("tags.rx like 'a+b(c)'")
    assert matches("tags.rx glob 'a+b(c)'")
    assert matches("tags.pct like '100\\%'")
    assert not matches("tags.pct like '100\\%'", {"tags": {"pct": "1000"}})
    assert matches("tags.note like 'a\\_b'", {"tags": {"note": "a_b"}})
    assert not matches("tags.note like 'a\\_b'")
    assert not matches("params.epochs like '1%'")  # not a string: no match


@pytest.mark.parametrize(
    "where",
    [
        "metrics.nope = 1",
        "metrics.nope != 1",
        "metrics.nope < 1",
        "metrics.nope >= 'a'",
        "metrics.nope in (1, 2)",
        "metrics.nope not in (1, 2)",
        "metrics.nope like '%'",
        "metrics.nope not like 'x'",
        "metrics.nope glob '*'",
        "metrics.nope is not null",
        "params.none = 1",
        "params.none != 1",
        "params.none not in (1)",
        "params.model.nope = 1",
        "params.lr.nope = 1",
        "start > 2026-01-01",
    ],
)
def test_missing_fields_never_match(where: str) -> None:
    run = {"params": {"none": None, "model": {}, "lr": 1}}
    assert matches(where, run) is False


def test_missing_fields_with_is_null_and_not() -> None:
    run = {"params": {"none": None}}
    assert matches("metrics.nope is null", run)
    assert matches("params.none is null", run)
    assert not matches("params.none is not null", run)
    assert matches("not metrics.nope = 1", run)
    assert matches("not metrics.nope != 1", run)
    assert not matches("metrics.acc is null")
    assert compile_where("metrics.acc = 1")(lambda path: MISSING) is False


def test_numbers_against_numeric_strings() -> None:
    assert matches("params.lr = 0.01")
    assert matches("params.lr < 0.1")
    assert matches("params.lr > 1e-3")
    assert matches("params.epochs = '10'")
    assert matches("params.epochs > '9'")  # numeric, not string, comparison
    assert not matches("params.opt > 1")
    assert not matches("params.opt != 1")  # incomparable is False, not an error
    assert not matches("params.flag = 1")  # bools are not numbers
    assert matches("metrics.acc > 0", {"metrics": {"acc": " 1.5 "}})
    assert not matches("metrics.acc > 0", {"metrics": {"acc": "1_0"}})


def test_dates_against_iso_strings_and_datetimes() -> None:
    assert matches("start > 2026-11-01")
    assert matches("start > 2026-11-02")  # 08:00 is after midnight UTC
    assert not matches("start > 2026-11-03")
    assert matches("start >= 2026-11-02T08:00:00")
    assert matches("start = 2026-11-02T09:00:00+01:00")
    assert matches("start < 2026-11-02T09:00:00+00:00")
    assert matches("end > 2026-11-02")
    assert matches("end = 2026-11-02T09:00:00Z")
    assert matches("end < '2026-11-03'")  # quoted ISO string against a datetime
    assert matches("start < '2026-11-02T09:00:00+00:00'")  # both ISO strings: compared as instants
    assert matches("tags.when > 2026-11-04")
    assert matches("end > 2026-11-01", {"end": date(2026, 11, 2)})
    assert matches("end < 2026-11-03", {"end": datetime(2026, 11, 2, 23, 0)})  # naive is UTC
    assert not matches("status > 2026-01-01")
    assert not matches("metrics.acc > 2026-01-01")
    assert not matches("start > 2026-01-01", {"start": "not a date"})


def test_mapping_lookup() -> None:
    look = mapping_lookup({"params": {"a.b": 1, "a": {"c": 2}}, "status": "x"})
    assert look(("params", "a", "b")) == 1
    assert look(("params", "a", "c")) == 2
    assert look(("params", "a", "d")) is MISSING
    assert look(("status",)) == "x"
    assert look(("status", "x")) is MISSING


def test_filter_over_ten_thousand_runs_matches_a_plain_python_filter() -> None:
    runs = [
        {"status": "FINISHED" if i % 2 else "FAILED", "name": f"run-{i}", "metrics": {"acc": i / 10_000},
         "params": {"lr": str(0.1 / (1 + i % 3))}, "start": f"2026-11-{1 + i % 28:02d}T00:00:00Z"}
        for i in range(10_000)
    ]
    looks = [mapping_lookup(r) for r in runs]
    where = compile_where(
        "status = FINISHED and metrics.acc > 0.5 and params.lr < 0.09 and start > 2026-11-10"
    )
    hits = sum(where(look) for look in looks)
    assert hits == sum(
        1 for r in runs
        if r["status"] == "FINISHED" and r["metrics"]["acc"] > 0.5  # type: ignore[index]
        and float(r["params"]["lr"]) < 0.09 and r["start"] >= "2026-11-11"  # type: ignore[index,operator]
    )


# ---- sorting ------------------------------------------------------------------------------------


def test_parse_sort() -> None:
    acc, dur = ("metrics", "acc"), ("duration",)
    assert parse_sort("-metrics.acc,duration") == [SortKey(acc, True), SortKey(dur, False)]
    assert parse_sort(["-metrics.acc", "duration"]) == [SortKey(acc, True), SortKey(dur, False)]
    assert parse_sort("metrics.acc DESC, duration asc") == [SortKey(acc, True), SortKey(dur, False)]
    assert parse_sort(" +metrics.acc ") == [SortKey(acc, False)]
    assert parse_sort("params.`a,b`") == [SortKey(("params", "a,b"))]
    assert parse_sort("") == [] and parse_sort([]) == [] and parse_sort(None) == []
    assert str(SortKey(("params", "a.b"), True)) == "-params.`a.b`"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-metrics.acc DESC", "not both"),
        ("bogus", "unknown field 'bogus'"),
        ("metrics.acc,", "expected a field name after ','"),
        ("metrics.acc name", "expected ',', ASC, DESC or end of input, found 'name'"),
    ],
)
def test_parse_sort_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError, match="invalid --sort key at column") as info:
        parse_sort(text)
    assert message in str(info.value)


def _sorted(values: list[object], spec: str) -> list[object]:
    records = [{"metrics": {} if v is MISSING else {"acc": v}, "i": i} for i, v in enumerate(values)]
    out = sort_records(records, parse_sort(spec), mapping_lookup)
    return [r["metrics"].get("acc", MISSING) for r in out]  # type: ignore[attr-defined]


def test_sort_missing_last_in_both_directions() -> None:
    values: list[object] = [0.5, MISSING, 0.9, None, 0.1, float("nan")]
    assert _sorted(values, "metrics.acc")[:3] == [0.1, 0.5, 0.9]
    assert _sorted(values, "-metrics.acc")[:3] == [0.9, 0.5, 0.1]
    for spec in ("metrics.acc", "-metrics.acc", "metrics.acc DESC"):
        tail = _sorted(values, spec)[3:]
        assert tail[0] is MISSING and tail[1] is None and tail[2] != tail[2]  # stable, input order


def test_sort_mixed_types_numbers_before_strings() -> None:
    values: list[object] = ["b", 3, MISSING, "a", 1, "10", 2.5]
    assert _sorted(values, "metrics.acc") == [1, 2.5, 3, "10", "a", "b", MISSING]
    assert _sorted(values, "-metrics.acc") == ["10", 3, 2.5, 1, "b", "a", MISSING]


def test_sort_is_stable_and_multi_key() -> None:
    runs = [
        {"status": "B", "metrics": {"acc": 1}, "name": "r0"},
        {"status": "A", "metrics": {"acc": 1}, "name": "r1"},
        {"status": "A", "metrics": {"acc": 2}, "name": "r2"},
        {"status": "B", "metrics": {"acc": 2}, "name": "r3"},
        {"metrics": {"acc": 3}, "name": "r4"},
        {"status": "A", "metrics": {"acc": 1}, "name": "r5"},
    ]
    names = [r["name"] for r in sort_records(runs, parse_sort("status,-metrics.acc"), mapping_lookup)]
    assert names == ["r2", "r1", "r5", "r3", "r0", "r4"]
    names = [r["name"] for r in sort_records(runs, parse_sort("-status"), mapping_lookup)]
    assert names == ["r0", "r3", "r1", "r2", "r5", "r4"]
    assert sort_records(runs, [], mapping_lookup) == runs


def test_sort_dates() -> None:
    nine = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    runs = [{"start": "2026-11-02T10:00:00+02:00"}, {"start": nine}, {}]
    out = sort_records(runs, parse_sort("start"), mapping_lookup)
    assert out == [runs[0], runs[1], runs[2]]


# ---- properties ---------------------------------------------------------------------------------

_segments = st.text(min_size=1, max_size=6)
_paths = st.one_of(
    st.sampled_from(FIELDS).map(lambda f: (f,)),
    st.builds(
        lambda p, rest: (p, *rest), st.sampled_from(PREFIXES), st.lists(_segments, min_size=1, max_size=3)
    ),
)
_zones = st.sampled_from(
    [None, timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.dates(),
    st.datetimes(timezones=_zones),
)
_OPS = ["=", "!=", "<", "<=", ">", ">="]
_leaves = st.one_of(
    st.builds(Compare, _paths, st.sampled_from(_OPS), _scalars),
    st.builds(Compare, _paths, st.sampled_from(["=", "!="]), st.lists(_scalars, max_size=3).map(tuple)),
    st.builds(In, _paths, st.lists(_scalars, min_size=1, max_size=4).map(tuple), st.booleans()),
    st.builds(Match, _paths, st.sampled_from(["like", "glob"]), st.text(max_size=8), st.booleans()),
    st.builds(IsNull, _paths, st.booleans()),
)
_nodes: st.SearchStrategy[Node] = st.recursive(
    _leaves,
    lambda children: st.one_of(
        children.map(Not),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)
_field_values = st.one_of(
    _scalars,
    st.just(MISSING),
    st.floats(),
    st.text(alphabet="0123456789.-+eE :TZ", max_size=12),
    st.lists(_scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
)


@given(_nodes)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_unparse_then_parse_round_trips(node: Node) -> None:
    text = unparse(node)
    read = as_written(node)
    assert parse(text) == read
    assert unparse(parse(text)) == text if read == node else parse(unparse(read)) == read


def as_written(node: Node) -> Node:
    """*node* as parse() reads it back from unparse(): a number or date compared with commit, as text."""
    def text(value: object) -> object:
        if isinstance(value, tuple):
            return tuple(map(text, value))
        return unparse_value(value) if isinstance(value, int | float | date) and not isinstance(value, bool) \
            else value
    match node:
        case And(operands) | Or(operands):
            return type(node)(tuple(map(as_written, operands)))
        case Not(operand):
            return Not(as_written(operand))
        case Compare(("commit",), op, value):
            return Compare(node.path, op, text(value))  # type: ignore[arg-type]
        case In(("commit",), values, negated):
            return In(node.path, text(values), negated)  # type: ignore[arg-type]
    return node


_QUERYISH = st.text(alphabet="()[]'\"`\\.,=<>!%_*-+ abcdeilmnorstuTZ0123456789:\n", max_size=40)


@given(st.one_of(st.text(), _QUERYISH, st.builds(lambda n, i: unparse(n)[:i], _nodes, st.integers(0, 60))))
@settings(max_examples=500)
def test_parse_returns_a_node_or_raises_query_error(text: str) -> None:
    try:
        node = parse(text)
    except QueryError as err:
        assert 1 <= err.column <= len(text) + 1  # type: ignore[attr-defined]
        return
    assert parse(unparse(node)) == node


@given(_nodes, st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_compiled_filters_never_raise(node: Node, data: st.DataObject) -> None:
    record = {path: data.draw(_field_values) for path in sorted(field_paths(node))}
    look = lambda path: record.get(path, MISSING)  # noqa: E731
    result = compile_where(node)(look)
    assert result in (True, False)
    assert compile_where(unparse(node))(look) is compile_where(as_written(node))(look) in (True, False)


@given(st.lists(_field_values, max_size=12), st.booleans())
def test_sorting_arbitrary_values_never_raises(values: list[object], descending: bool) -> None:
    key = SortKey(("metrics", "acc"), descending)
    out = sort_records(values, [key], lambda v: lambda path: v)
    assert len(out) == len(values)
    missing = [v is MISSING or v is None or (isinstance(v, float) and v != v) for v in out]
    assert missing == sorted(missing)  # every missing value after every present one


@given(st.lists(_field_values, max_size=12), st.booleans())
@example(values=[float("nan"), 2, True, 1.5, MISSING, "b", None, "a"], descending=True)
def test_sorting_by_position_ranks_each_value_as_sort_value_does(values: list[object], descending: bool) -> None:
    """sort_positions, whose usual numbers skip sort_value, orders as sort_value's ranks say: by
    rank, by value within one (stable), the missing last."""
    order = sort_positions(range(len(values)), [SortKey(("metrics", "acc"), descending)], lambda path: values)
    ranked = [sort_value(v) for v in values]
    expected = []
    for rank in sorted({r for r, _ in ranked} - {-1}):
        expected += sorted([i for i, (r, _) in enumerate(ranked) if r == rank], key=lambda i: ranked[i][1],
                           reverse=descending)
    assert order == expected + [i for i, (r, _) in enumerate(ranked) if r == -1]


@given(st.lists(st.one_of(st.integers(), st.floats(allow_nan=False), st.sampled_from([0.0, -0.0, 1, 1.0])),
                min_size=1, max_size=40), st.booleans(), st.randoms())
def test_sorting_numbers_alone_orders_as_the_ranked_reference(values: list[object], descending: bool,
                                                               rng: random.Random) -> None:
    """sort_positions' path for columns of numbers alone (no NaN, none missing) gives the order
    ranked_order gives, equal values keeping their order, among any subset of the positions."""
    order = [i for i in range(len(values)) if rng.random() < 0.8] or [0]
    rng.shuffle(order)
    key = [SortKey(("metrics", "acc"), descending)]
    assert sort_positions(order, key, lambda path: values) == ranked_order(order, values, descending)


@given(_nodes, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_column_filters_answer_and_look_up_as_record_filters_do(node: Node, data: st.DataObject) -> None:
    paths = sorted(field_paths(node))
    records = [{path: data.draw(_field_values) for path in paths} for _ in range(data.draw(st.integers(0, 6)))]
    looked_up: list[tuple[int, tuple[str, ...]]] = []
    fetched: list[tuple[int, tuple[str, ...]]] = []

    def look_in(i: int) -> Callable[[tuple[str, ...]], object]:
        def look(path: tuple[str, ...]) -> object:
            looked_up.append((i, path))
            return records[i].get(path, MISSING)
        return look

    def fetch(items: list[int], path: tuple[str, ...]) -> list[object]:
        fetched.extend((i, path) for i in items)
        return [records[i].get(path, MISSING) for i in items]

    expected = [compile_where(node)(look_in(i)) for i in range(len(records))]
    assert compile_columns(node)(list(range(len(records))), fetch) == expected
    assert sorted(fetched) == sorted(looked_up)  # the same fields of the same records, no more


@given(st.one_of(_paths.map(lambda path: ".".join(path)), st.text(alphabet="abmetrics.`-_/ +", max_size=20)))
@settings(max_examples=400)
def test_plain_paths_are_what_the_sort_parser_reads(text: str) -> None:
    from gitexp.store.fields import plain_path

    path = plain_path(text)
    if path is None:
        return  # the parser decides (or refuses) such a name
    keys = parse_sort(text)
    assert len(keys) == 1 and not keys[0].descending and keys[0].path == path
