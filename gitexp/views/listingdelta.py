"""A kept listing's newest runs alone, written in place of the whole listing when only they are new.

A sweep makes runs while its user lists them. Each `git exp ls` then brought the kept listing up
to date with the new runs alone, and wrote all of it again: 30 MiB at 100,000 runs, at times 0.3 s
of waiting for the disk, for ten new runs. Run ids start with the time they began, so a sweep's
new runs are newer than every kept one, and the listing of all is their columns put in front of
the kept ones. The delta file holds those front rows alone, tied to the kept file by its token;
joined() puts them back in front. Both work on the files' form of a listing: a dict of FIELDS (its
extremes as gitexp.views.extremes.kept_form takes them; joined() gives them as pairs).
"""

from __future__ import annotations

import itertools
import marshal
import operator
from bisect import bisect_left
from typing import Any

from gitexp.store.names import REF_PREFIX
from gitexp.views.extremes import kept_form

FIELDS = ("ids", "handles", "experiments", "base", "keys", "plain", "extremes")


def front(data: dict[str, Any], root: dict[str, Any], count: int, refs: dict[str, str]) -> dict[str, Any] | None:
    """The delta of the listing *data* over *root*, when *data* is *count* runs put before the runs
    of *root*: their columns, their refs (from *refs*, every run's) and the handles of *root*'s runs
    that they changed ({position: handle}); None when *data* is not that."""
    ids = data["ids"]
    if ids[count:] != root["ids"] or data["experiments"][count:] != root["experiments"]:
        return None
    try:
        own = {f"{REF_PREFIX}{exp}/{run_id}": refs[f"{REF_PREFIX}{exp}/{run_id}"]
               for exp, run_id in zip(data["experiments"][:count], ids[:count], strict=True)}
    except KeyError:
        return None
    handles, before = data["handles"], root["handles"]
    # (A new run may lengthen the handles of old ones that start like it: a few among 100,000.)
    changed = itertools.compress(range(len(before)), map(operator.ne, handles[count:], before))
    try:
        kept = kept_form(data["extremes"], len(ids))
        extremes = None if kept is None else kept.whole()
    except ValueError:
        return None  # (a damaged file's: the whole listing is written again, from what it holds)
    return {
        "refs": marshal.dumps(own), "ids": ids[:count], "handles": handles[:count],
        "experiments": data["experiments"][:count], "base": [column[:count] for column in data["base"]],
        "keys": {head: {key: (column, values[:count], absent[:bisect_left(absent, count)])
                        for key, (column, values, absent) in part.items()} for head, part in data["keys"].items()},
        "plain": data["plain"], "patches": {k: handles[count + k] for k in changed},
        "extremes": None if extremes is None else {key: (low[:count], high[:count])
                                                    for key, (low, high) in extremes.items()}}


def joined(root: dict[str, Any], delta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]] | None:
    """The listing of *delta*'s runs put before *root*'s, and the refs of *delta*'s runs; None when
    *delta* is not what front() writes for *root* (damaged, or its runs not all newer)."""
    try:
        ids, experiments, refs = delta["ids"], delta["experiments"], marshal.loads(delta["refs"])
        count, rooted = len(ids), len(root["ids"])
        if type(ids) is not list or not ids or type(experiments) is not list or len(experiments) != count or \
                not all(type(i) is str for i in ids) or (rooted and min(ids) <= root["ids"][0]):
            return None
        named = {f"{REF_PREFIX}{exp}/{run_id}" for exp, run_id in zip(experiments, ids, strict=True)}
        if type(refs) is not dict or set(refs) != named or not all(type(commit) is str for commit in refs.values()):
            return None
        patches, keys = delta["patches"], delta["keys"]
        if type(patches) is not dict or not all(type(k) is int and 0 <= k < rooted and type(h) is str
                                                for k, h in patches.items()):
            return None
        if type(keys) is not dict or set(keys) != set(root["keys"]) or \
                not all(type(keys[head]) is dict and keys[head].keys() >= part.keys()
                        for head, part in root["keys"].items()):
            return None
        handles = list(root["handles"]) if patches else root["handles"]  # (copied again just below)
        for position, handle in patches.items():
            handles[position] = handle
        gap, everywhere = [None] * rooted, list(range(count, count + rooted))
        whole: dict[str, Any] = {
            "ids": ids + root["ids"], "handles": delta["handles"] + handles, "experiments": experiments +
            root["experiments"], "base": [a + b for a, b in zip(delta["base"], root["base"], strict=True)],
            "plain": delta["plain"] is True and root["plain"] is True, "keys": {}, "extremes": None}
        for head, part in keys.items():
            kept = root["keys"][head]
            whole["keys"][head] = {key: (column, values + kept[key][1], absent + [k + count for k in kept[key][2]])
                                   if key in kept else (column, values + gap, absent + everywhere)
                                   for key, (column, values, absent) in part.items()}
        rooted_pairs, own = kept_form(root["extremes"], rooted), kept_form(delta["extremes"], count)
        if rooted_pairs is not None and own is not None:  # (every pair read: the join is of every one)
            whole["extremes"] = {key: (low + rooted_pairs[key][0], high + rooted_pairs[key][1])
                                 if key in rooted_pairs else (low + gap, high + gap)
                                 for key, (low, high) in own.whole().items()}
    except (KeyError, TypeError, ValueError, EOFError, AttributeError, IndexError):
        return None  # not what this code writes: the caller checks the shape of what it gives, too
    return whole, refs
