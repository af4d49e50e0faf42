"""The checks of a run's documents, which may come from an untrusted remote."""

from __future__ import annotations

from typing import Any

import pytest

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
