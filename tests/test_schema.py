"""The checks of a run's documents, which may come from an untrusted remote."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.errors import CorruptRunError
from gitexp.store import schema

_GOOD = {"id": "20261204-1ae46f205880fec", "experiment": "sweep/arch", "name": "calm-cedar-927",
         "status": "FINISHED", "start": "2026-12-04T07:49:58.642Z", "end": "2026-12-04T07:49:58.644Z",
         "duration": 0.001, "pid": 10683, "format": 2, "command": ["python", "train.py"],
         "tags": {"gpu": "h100"}, "git": {"branch": "main", "commit": "c60d0d7", "dirty": False, "remote": None},
         "code": {"tree": "7e457b8"}, "user": "root", "host": "vm", "description": None}


@pytest.mark.parametrize(("key", "value", "said"), [
    ("start", "2026-02-30T07:49:58.642Z", "start is '2026-02-30T07:49:58.642Z' (a str), not an ISO 8601 time"),
    ("duration", float("inf"), "duration is inf (a float), not a finite number of seconds"),
    ("duration", True, "duration is True (a bool), not a finite number of seconds"),
    ("command", ["python", 1], "command is ['python', 1] (a list), not a list of text"),
    ("git", {"dirty": "no"}, "git.dirty is 'no' (a str), not true or false"),
    ("id", "", "id is '' (a str), not non-empty text"),
])
def test_a_wrong_value_is_named(key: str, value: Any, said: str) -> None:
    with pytest.raises(CorruptRunError) as caught:
        schema.check_meta({**_GOOD, key: value}, "meta.yaml")
    assert str(caught.value) == f"meta.yaml: {said}"


def test_numbers_past_what_views_can_take_are_named() -> None:
    # JSON's and YAML's integers have no bound: one past a float's range made math.isfinite, float()
    # and matplotlib raise OverflowError, which crashed a listing; steps are int64 in histories.
    with pytest.raises(CorruptRunError, match=r"duration is 1000+\.\.\. \(an int\), not a finite number"):
        schema.check_meta({**_GOOD, "duration": 10 ** 400}, "meta.yaml")
    assert schema.check_meta({**_GOOD, "duration": 10 ** 300}, "meta.yaml")["duration"] == 10 ** 300
    with pytest.raises(CorruptRunError, match=r"loss.last is 1000+\.\.\. \(an int\), not a number"):
        schema.check_metrics({"loss": {"last": 10 ** 400}}, "summary.json metrics")
    with pytest.raises(CorruptRunError, match=r"loss.step is 9223372036854775808 \(an int\), not an integer of 64"):
        schema.check_metrics({"loss": {"last": 1.0, "step": 2 ** 63}}, "summary.json metrics")
    kept = {"loss": {"last": float("nan"), "min": -float("inf"), "max": 10 ** 300, "step": -2 ** 63, "count": 0}}
    assert schema.check_metrics(kept, "summary.json metrics") == kept


def test_a_time_in_an_hour_already_read_is_still_checked() -> None:
    # Times of an hour one sound time opened skip parsing: only in gitexp's own form, with its
    # minutes, seconds and milliseconds in range.
    schema.check_meta({**_GOOD, "start": "2026-12-04T07:00:00.000Z"}, "meta.yaml")
    for wrong in ("2026-12-04T07:60:00.000Z", "2026-12-04T07:59:60.000Z", "2026-12-04T07:5:00.000Z",
                  "2026-12-04T07:00:00.000Z ", "2026-12-04T07:00:00.000+25:00"):
        with pytest.raises(CorruptRunError, match="not an ISO 8601 time"):
            schema.check_meta({**_GOOD, "end": wrong}, "meta.yaml")
    assert schema.check_meta({**_GOOD, "end": "2026-12-04T07:59:59.999Z"}, "meta.yaml")


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4),
                    st.sampled_from(["2026-12-04T07:49:58.642Z", "2026-02-30T07:49:58.642Z", "", "x"]),
                    st.lists(st.one_of(st.text(max_size=2), st.integers()), max_size=2),
                    st.dictionaries(st.text(max_size=2), st.one_of(st.none(), st.text(max_size=2), st.lists(
                        st.integers(), max_size=1)), max_size=2))
_FIELDS = st.sampled_from(["commit", "branch", "remote", "dirty", "tree", "skipped", "cwd"])


def _by_the_rules(meta: dict[str, Any]) -> bool:
    """The reference: every rule of META_RULES and _NESTED_RULES called, as check_meta once did."""
    if "id" not in meta or "experiment" not in meta:
        return False
    if not all(rule[0](value) for key, value in meta.items() if (rule := schema.META_RULES.get(key))):
        return False
    return all(valid(meta[key].get(field)) for key, rules in schema._NESTED_RULES.items() if meta.get(key)
               for field, (valid, _) in rules.items())


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([*schema.META_RULES, "other"]), _VALUES, max_size=8),
       st.sampled_from(["git", "code"]), st.dictionaries(_FIELDS, _VALUES, max_size=3))
def test_check_meta_agrees_with_its_rules(meta: dict[str, Any], nested_key: str, nested: dict[str, Any]) -> None:
    """check_meta's type tests without a call (_KINDS, _NESTED_KINDS) accept what the rules accept, no more."""
    meta = {"id": "r1", "experiment": "e", **meta}
    for candidate in (meta, {**meta, nested_key: nested}):
        try:
            schema.check_meta(candidate, "meta.yaml")
            accepted = True
        except CorruptRunError:
            accepted = False
        assert accepted == _by_the_rules(candidate), candidate
