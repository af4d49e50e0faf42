"""Downsampling a metric's history for drawing, keeping every bucket's minimum and maximum.

A screen is a few thousand pixels wide: a history of 1,000,000 steps is drawn from a few thousand
points. Which ones matters. Taking every n-th value hides spikes (a loss blowing up for one step);
averaging flattens them. These functions cut the points, in order, into equal buckets and keep,
of each bucket, the first point of its lowest value and the first point of its highest (NaN is
neither), plus the very first and last points: the drawn line reaches every extreme the full line
reaches, the global minimum and maximum among them, and never more than *max_points* points.

minmax_indices is the plain reference; the same answer comes faster from numpy when it can be
imported (matplotlib, a dependency, brings it; tests/test_sampling.py checks both agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
MIN_POINTS = 4  # the first, the last, and one bucket's minimum and maximum


def bucket_size(count: int, max_points: int) -> int:
    """How many consecutive points each bucket holds when *count* points are cut down to *max_points*."""
    buckets = max(1, (max_points - 2) // 2)
    return math.ceil(count / buckets)


def minmax_indices(values: Sequence[float], max_points: int) -> list[int]:
    """The indices (increasing) of the points of *values* to draw: all of them when there are at most
    *max_points*, else the first, the last, and each bucket's first lowest and first highest value
    (a bucket of NaN only keeps its first point, so that the gap still shows). At most *max_points*."""
    count = len(values)
    _check(max_points)
    if count <= max_points:
        return list(range(count))
    fast = _numpy_indices(values, max_points)
    return fast if fast is not None else reference_indices(values, max_points)


def downsample_minmax(steps: Sequence[T], values: Sequence[float], max_points: int) -> tuple[list[T], list[float]]:
    """(steps, values) cut down to at most *max_points* points by minmax_indices: every bucket's
    minimum and maximum stays, with its step. *steps* may be anything of the same length (times too)."""
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} and {len(values)}")
    keep = minmax_indices(values, max_points)
    if len(keep) == len(values):
        return list(steps), list(values)
    return [steps[i] for i in keep], [values[i] for i in keep]


def reference_indices(values: Sequence[float], max_points: int) -> list[int]:
    """minmax_indices in plain Python, one bucket at a time: the definition the fast path must match."""
    count = len(values)
    _check(max_points)
    if count <= max_points:
        return list(range(count))
    size = bucket_size(count, max_points)
    keep = {0, count - 1}
    for start in range(0, count, size):
        low = high = None
        for i in range(start, min(start + size, count)):
            value = values[i]
            if value != value:  # NaN
                continue
            if low is None or value < values[low]:
                low = i
            if high is None or value > values[high]:
                high = i
        if low is None or high is None:
            keep.add(start)
        else:
            keep.update((low, high))
    return sorted(keep)


def _check(max_points: int) -> None:
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS} (the first, the last, a minimum and a "
                         f"maximum), not {max_points}")


def _numpy_indices(values: Sequence[float], max_points: int) -> list[int] | None:
    try:
        import numpy as np
    except ImportError:
        return None
    data = values if isinstance(values, np.ndarray) else np.fromiter(values, dtype=float, count=len(values))
    count = len(data)
    size = bucket_size(count, max_points)
    buckets = math.ceil(count / size)
    padded = np.full(buckets * size, np.nan)
    padded[:count] = data
    grid = padded.reshape(buckets, size)
    nan = np.isnan(grid)
    # The first index of each bucket's extreme: where the bucket equals it first. A bucket of NaN
    # only compares unequal everywhere, so argmax says 0, its first point, as the reference keeps.
    lows = np.where(nan, np.inf, grid).min(axis=1)
    highs = np.where(nan, -np.inf, grid).max(axis=1)
    offsets = np.arange(buckets) * size
    low = (grid == lows[:, None]).argmax(axis=1) + offsets
    high = (grid == highs[:, None]).argmax(axis=1) + offsets
    keep = np.unique(np.concatenate(([0, count - 1], low, high)))
    return [int(i) for i in keep]
