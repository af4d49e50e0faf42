"""The fast YAML writer: whatever it writes, yaml.safe_load reads back exactly."""

from __future__ import annotations

import math
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.store import codec as fmt
from gitexp.store import yamltext

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(),
    st.sampled_from(["yes", "No", "ON", "null", "~", "1:20", "2026-11-27", "0x1f", ".inf", "1_000", "=", "<<",
                     "- x", "a: b", "a #b", " lead", "trail ", "", "3.5", "1e5", "\u2028", "\x85", "\x7f", "\t"]),
)
documents = st.dictionaries(
    st.text(), st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                                  max_size=4),
                            max_leaves=20), min_size=1, max_size=6)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(documents)
def test_safe_load_reads_back_exactly_what_was_written(data: dict[str, Any]) -> None:
    text = yamltext.dump(data)
    assert text is not None
    assert same(yaml.safe_load(text.decode()), data)
    assert same(yaml.load(text, Loader=yaml.CSafeLoader), data)


def test_block_style_like_pyyaml_with_plain_strings_where_unambiguous() -> None:
    meta = {"name": "lr sweep 1", "id": "20261127-0b163c78f69d694", "status": "FINISHED", "tags": {},
            "command": ["python", "train.py", "--lr", "0.1"], "git": {"commit": None, "dirty": True},
            "duration": 1e-05, "runs": [{"a": 1, "b": [1, 2]}], "answer": "yes"}
    assert yamltext.dump(meta) == (
        b"answer: \"yes\"\n"
        b"command:\n- python\n- train.py\n- \"--lr\"\n- \"0.1\"\n"
        b"duration: 1.0e-05\n"
        b"git:\n  commit: null\n  dirty: true\n"
        b"id: 20261127-0b163c78f69d694\n"
        b"name: lr sweep 1\n"
        b"runs:\n- a: 1\n  b:\n  - 1\n  - 2\n"
        b"status: FINISHED\n"
        b"tags: {}\n"
    )


def test_other_types_are_left_to_pyyaml() -> None:
    assert yamltext.dump({1: "int key"}) is None and yamltext.dump({"t": (1, 2)}) is None
    assert yamltext.dump(["not", "a mapping"]) is None
    assert yamltext.dump({"lone surrogate": "\ud800"}) is None
    assert yaml.safe_load(fmt.dump_yaml({1: "int key"})) == {1: "int key"}  # dump_yaml falls back
