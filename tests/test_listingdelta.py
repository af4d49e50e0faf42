"""The delta of a kept listing (gitexp/views/listingdelta.py): front() and joined() give back the
listing they split, and joined() takes nothing that does not fit the listing it names."""

from __future__ import annotations

import marshal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.views import listingdelta

RUN = st.tuples(st.sampled_from(["cnn", "rnn", "cnn/deep"]),
                st.dictionaries(st.sampled_from(["lr", "depth", "seed"]), st.one_of(st.integers(-3, 3), st.none())),
                st.dictionaries(st.sampled_from(["loss", "acc"]), st.floats(allow_nan=False)))


def listing_of(runs: list[tuple[str, str, dict[str, Any], dict[str, Any]]], extremes: bool) -> dict[str, Any]:
    """The file form of a listing of *runs* (id, experiment, params, metrics), newest first, built
    the plain way: a key's column holds every run's value (None without it) and who lacks it."""
    keys: dict[str, dict[str, Any]] = {}
    for head, at in (("params", 2), ("metrics", 3)):
        keys[head] = {key: (f"{head}.{key}", [run[at].get(key) for run in runs],
                            [i for i, run in enumerate(runs) if key not in run[at]])
                      for key in sorted({key for run in runs for key in run[at]})}
    return {"ids": [run[0] for run in runs], "handles": [run[0][-7:] for run in runs],
            "experiments": [run[1] for run in runs], "base": [[f"name-{run[0]}" for run in runs]],
            "keys": keys, "plain": True,
            "extremes": {key: ([run[3].get(key) for run in runs], [run[3].get(key) for run in runs])
                         for key in keys["metrics"]} if extremes else None}


def refs_of(listing: dict[str, Any]) -> dict[str, str]:
    return {f"refs/experiments/{exp}/{run_id}": f"{k:040x}"
            for k, (exp, run_id) in enumerate(zip(listing["experiments"], listing["ids"], strict=True))}


@settings(max_examples=200, deadline=None)
@given(st.lists(RUN, min_size=1, max_size=12), st.integers(1, 12), st.booleans(),
       st.sets(st.integers(0, 11), max_size=3))
def test_joined_gives_back_the_listing_front_split(runs: list[Any], count: int, extremes: bool,
                                                   lengthened: set[int]) -> None:
    count = min(count, len(runs))
    made = [(f"20261204-{len(runs) - k:015x}", exp, params, metrics) for k, (exp, params, metrics) in enumerate(runs)]
    whole, root = listing_of(made, extremes), listing_of(made[count:], extremes)
    # New runs may lengthen the handles of older ones: the whole listing shows them lengthened.
    whole["handles"] = [handle + "0" if k - count in lengthened else handle
                        for k, handle in enumerate(whole["handles"])]
    refs = refs_of(whole)
    delta = listingdelta.front(whole, root, count, refs)
    assert delta is not None
    assert set(delta["patches"]) == {k for k in lengthened if k < len(root["ids"])}
    back = listingdelta.joined(root, marshal.loads(marshal.dumps(delta)))  # (as the file holds it)
    assert back is not None
    assert back[0] == whole
    assert back[1] == {ref: refs[ref] for ref in list(refs)[:count]}


def sample() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    made = [(f"20261204-{9 - k:015x}", "cnn", {"lr": k}, {"loss": k / 2}) for k in range(5)]
    whole, root = listing_of(made, True), listing_of(made[2:], True)
    delta = listingdelta.front(whole, root, 2, refs_of(whole))
    assert delta is not None
    return whole, root, delta


def test_front_refuses_a_listing_that_is_not_the_root_with_runs_before() -> None:
    whole, root, _ = sample()
    assert listingdelta.front(whole, root, 1, refs_of(whole)) is None  # not 1 run before the root's
    moved = {**whole, "experiments": [*whole["experiments"][:3], "rnn", *whole["experiments"][4:]]}
    assert listingdelta.front(moved, root, 2, refs_of(moved)) is None
    assert listingdelta.front(whole, root, 2, {}) is None  # the new runs' refs unknown


def test_joined_refuses_what_does_not_fit_its_root() -> None:
    _, root, delta = sample()
    assert listingdelta.joined(root, delta) is not None
    ids = [root["ids"][-1], delta["ids"][1]]  # a run not newer than every kept one, its ref as it should be
    older = {**delta, "ids": ids, "refs": marshal.dumps({f"refs/experiments/cnn/{i}": "0" * 40 for i in ids})}
    for damaged in (older, {**delta, "ids": []}, {**delta, "ids": delta["ids"][:1]},
                    {**delta, "refs": marshal.dumps({})}, {**delta, "refs": b"\xff"},
                    {**delta, "patches": {len(root["ids"]): "x"}}, {**delta, "patches": [1]},
                    {**delta, "keys": {"params": {}, "metrics": delta["keys"]["metrics"]}},
                    {**delta, "base": []}, {k: v for k, v in delta.items() if k != "handles"}):
        assert listingdelta.joined(root, damaged) is None, damaged
