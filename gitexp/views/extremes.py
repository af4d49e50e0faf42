"""The minima and maxima of each metric over a kept listing's runs, read one metric at a time.

A listing keeps, for each metric key, every run's minimum and maximum: what `git exp ls --where`
or `--sort` on `metrics.KEY.min` or `.max` reads (gitexp/views/selection.py). At 100,000 runs
and three metrics they were a fifth of the listing file, loaded by every `git exp ls` (20 ms),
which shows none of them, and by every query, which reads one. The file holds each metric's pair
of lists as marshal bytes of its own (docs/format.md); MetricExtremes reads a metric's when it is
first asked for, checks that it is a pair of lists of one value per run, and never reads the
others unless they are asked for.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator, Mapping
from typing import Any

Pair = tuple[list[Any], list[Any]]


class MetricExtremes(Mapping[str, Pair]):
    """metric key -> (minima, maxima), one value per run (None for a run without the key).

    Reading a pair that is not one (a damaged file) raises ValueError, which the listing's readers
    turn into a listing read again from the runs, or a query answered from the runs."""

    __slots__ = ("_count", "_kept", "_read")

    def __init__(self, kept: Mapping[str, bytes | Pair], count: int) -> None:
        """*kept*: each key's pair, or the marshal bytes of it; *count*: the runs."""
        self._kept, self._count = dict(kept), count
        self._read: dict[str, Pair] = {}

    def __getitem__(self, key: str) -> Pair:
        found = self._read.get(key)
        if found is not None:
            return found
        kept = self._kept[key]
        try:
            pair = marshal.loads(kept) if type(kept) is bytes else kept
        except (EOFError, ValueError, TypeError) as exc:
            raise ValueError(f"the kept minima and maxima of metric {key!r} are damaged ({exc})") from None
        if type(pair) is not tuple or len(pair) != 2 or \
                not all(type(part) is list and len(part) == self._count for part in pair):
            raise ValueError(f"the kept minima and maxima of metric {key!r} are not one pair of values per run")
        self._read[key] = pair
        return pair

    def __iter__(self) -> Iterator[str]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, key: object) -> bool:
        return key in self._kept

    def whole(self) -> dict[str, Pair]:
        """Every pair, read (ValueError: one is damaged)."""
        return {key: self[key] for key in self._kept}

    def stored(self) -> dict[str, bytes]:
        """What the file holds: each pair's marshal bytes, those never read as they were read."""
        return {key: kept if type(kept) is bytes and key not in self._read else marshal.dumps(self[key])
                for key, kept in self._kept.items()}

    @property
    def count(self) -> int:
        return self._count


def kept_form(found: Any, count: int) -> MetricExtremes | None:
    """MetricExtremes of what a file or a caller gives (None, a dict of pairs or of their bytes, or
    MetricExtremes); None where it is none, or not a dict of text keys."""
    if found is None:
        return None
    if isinstance(found, MetricExtremes):
        return found if found.count == count else None
    if type(found) is not dict or not all(type(key) is str for key in found):
        return None
    return MetricExtremes(found, count)
