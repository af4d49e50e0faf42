"""gitexp.views.sampling: the downsampled line keeps every bucket's minimum and maximum, and the
fast path (numpy) picks exactly the points the reference picks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.views import sampling

# Values as metrics hold them: ordinary numbers, repeats (ties), NaN and infinities.
VALUES = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, -1.0])),
                  max_size=300)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(min_value=4, max_value=80))
def test_the_fast_path_picks_the_points_the_reference_picks(values: list[float], max_points: int) -> None:
    assert sampling.minmax_indices(values, max_points) == sampling.reference_indices(values, max_points)


@settings(max_examples=200, deadline=None)
@given(VALUES, st.integers(min_value=4, max_value=80))
def test_every_bucket_keeps_its_extremes_within_max_points(values: list[float], max_points: int) -> None:
    keep = sampling.minmax_indices(values, max_points)
    assert len(keep) <= max(max_points, 0) and keep == sorted(set(keep))
    if len(values) <= max_points:
        assert keep == list(range(len(values)))
        return
    assert keep[0] == 0 and keep[-1] == len(values) - 1
    kept = [values[i] for i in keep]
    size = sampling.bucket_size(len(values), max_points)
    for start in range(0, len(values), size):
        bucket = [v for v in values[start:start + size] if not math.isnan(v)]
        if bucket:
            assert min(bucket) in kept and max(bucket) in kept
    finite = [v for v in values if not math.isnan(v)]
    if finite:  # the global extremes are among them
        assert min(finite) in kept and max(finite) in kept


def test_a_spike_of_one_step_in_a_million_survives() -> None:
    values = [math.sin(i / 1000) for i in range(1_000_000)]
    values[654_321] = 50.0
    values[123_456] = -50.0
    steps = list(range(1_000_000))
    xs, ys = sampling.downsample_minmax(steps, values, 2000)
    assert len(xs) <= 2000 and len(xs) == len(ys)
    points = set(zip(xs, ys, strict=True))
    assert (654_321, 50.0) in points and (123_456, -50.0) in points
    assert xs[0] == 0 and xs[-1] == 999_999


def test_short_lines_and_nan_buckets() -> None:
    assert sampling.downsample_minmax([1, 2, 3], [3.0, 1.0, 2.0], 4) == ([1, 2, 3], [3.0, 1.0, 2.0])
    nan = float("nan")
    # A bucket of NaN only keeps its first point: the gap stays a gap.
    values = [1.0, 2.0, 3.0, nan, nan, nan, 4.0, 0.0, 1.0, 2.0, 2.0, 2.0]  # 4 buckets of 3 for 10 points
    assert sampling.reference_indices(values, 10) == [0, 2, 3, 6, 7, 9, 11]
    assert sampling.minmax_indices(values, 10) == [0, 2, 3, 6, 7, 9, 11]


def test_bad_arguments_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"at least 4.*not 3"):
        sampling.minmax_indices([1.0] * 10, 3)
    with pytest.raises(ValueError, match="differ in length: 2 and 1"):
        sampling.downsample_minmax([1, 2], [1.0], 10)
