"""`git exp ls` on a terminal: the run table fitted to the terminal's width.

What the table holds is table.py's; this module only decides which of those columns a terminal of
a given width can show, in which order they give way, and how their text is cut to fit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

from gitexp.views.table import printable_column, render_columns, text_columns

_GIVE_UP_FIRST = ("commit", "duration", "start")
_KEPT = ("id", "name", "experiment", "status")
_GROUPS = ("params", "metrics")  # shown under one label each, so their headers can drop the prefix


def terminal_table(columns: Sequence[str], values: Sequence[Sequence[Any]], experiments: Sequence[str],
                   width: int | None, precision: int = 4, ellipsis: str = "…") -> tuple[str, list[str]]:
    """The run table for a person at a terminal *width* characters wide (None: as wide as it takes).

    *columns* and *values* are run_columns' for some runs, *experiments* the experiment of each. An
    experiment column follows the id when the runs belong to more than one. With a width, columns
    empty for every run are left out; the params and metrics sit under a "params" and a "metrics"
    label, their headers without the prefix; when the rows are still too wide, the start time loses
    its year, then columns are hidden (_give_up_order), and at last the names are shortened with
    *ellipsis*. Returns the text and the names of the hidden columns, in the table's order.
    """
    columns, values = list(columns), list(values)
    if "experiment" not in columns and len(set(experiments)) > 1:
        at = columns.index("id") + 1 if "id" in columns else 0
        columns.insert(at, "experiment")
        values.insert(at, list(experiments))
    if width is None or not experiments:
        return render_columns(columns, values, "table", precision), []
    shown = [printable_column(c) for c in text_columns(columns, values, precision, True)]
    keep = [i for i, (name, column) in enumerate(zip(columns, shown, strict=True)) if name in _KEPT or any(column)]
    groups = [_group(name) for name in columns]
    headers = printable_column([name[len(group) + 1:] if group else name
                                 for name, group in zip(columns, groups, strict=True)])
    widths = [max(_width(header), _column_width(column)) for header, column in zip(headers, shown, strict=True)]

    def total(kept: Sequence[int]) -> int:
        return sum(_layout(kept, widths, groups)) + 2 * (len(kept) - 1)

    hidden: list[int] = []
    if total(keep) > width and "start" in columns:
        shown[columns.index("start")] = start = _without_year(shown[columns.index("start")])
        widths[columns.index("start")] = max(len("start"), _column_width(start))
    for i in _give_up_order(columns, shown, groups):
        if total(keep) <= width:
            break
        if i in keep:
            keep.remove(i)
            hidden.append(i)
    if "name" in columns and (excess := total(keep) - width) > 0:
        at = columns.index("name")
        room = max(widths[at] - excess, len("name"), 8)
        shown[at] = [c if _width(c) <= room else _cut(c, room, ellipsis) for c in shown[at]]
        widths[at] = max(len("name"), _column_width(shown[at]))
    text = _fitted_text([headers[i] for i in keep], [shown[i] for i in keep], _layout(keep, widths, groups),
                        [groups[i] for i in keep])
    return text, [columns[i] for i in sorted(hidden)]


def _group(column: str) -> str:
    head = column.partition(".")[0]
    return head if head in _GROUPS and column != head else ""


def _layout(kept: Sequence[int], widths: Sequence[int], groups: Sequence[str]) -> list[int]:
    """The widths of the *kept* columns, the last of a group widened when its label needs more room."""
    out = [widths[i] for i in kept]
    label = [groups[i] for i in kept]
    for at, group in enumerate(label):
        if group and (at + 1 == len(label) or label[at + 1] != group):
            first = label.index(group)
            span = sum(out[first:at + 1]) + 2 * (at - first)
            out[at] += max(0, len(group) - span)
    return out


def _give_up_order(columns: Sequence[str], shown: Sequence[list[str]], groups: Sequence[str]) -> list[int]:
    """The columns in the order they are hidden: the base columns of _GIVE_UP_FIRST, then the params and
    metrics, in the reverse of the order they are kept.

    Those filled for the most runs are kept first. Columns filled for as many runs are taken to be
    one family (the params and metrics of one experiment, say), and the families take turns, so that
    runs of a smaller experiment keep some of their own columns; within a family, params and metrics
    take turns, left to right.
    """
    first = [columns.index(name) for name in _GIVE_UP_FIRST if name in columns]
    families: dict[int, tuple[list[int], list[int]]] = {}
    for i, group in enumerate(groups):
        if group:
            family = families.setdefault(len(shown[i]) - shown[i].count(""), ([], []))
            family[group == "metrics"].append(i)
    turns = [[i for pair in zip_longest(*families[filled]) for i in pair if i is not None]
             for filled in sorted(families, reverse=True)]
    kept = [i for turn in zip_longest(*turns) for i in turn if i is not None]
    others = [i for i, name in enumerate(columns) if name not in _KEPT and i not in first and not groups[i]]
    return first + others + kept[::-1]


def _without_year(column: list[str]) -> list[str]:
    """Local start times ("YYYY-MM-DD HH:MM") without the year, when every one is of this year."""
    year = time.strftime("%Y-")
    if all(c.startswith(year) for c in column if c):
        return [c[5:] for c in column]
    return column


def _width(text: str) -> int:
    """The columns a terminal gives *text*: two for a wide East Asian character, none for a combining one."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _column_width(column: Sequence[str]) -> int:
    return max(map(len, column) if "".join(column).isascii() else map(_width, column), default=0)


def _cut(text: str, room: int, ellipsis: str) -> str:
    """*text* shortened to *room* terminal columns, ending with *ellipsis*."""
    room -= _width(ellipsis)
    while _width(text) > room:
        text = text[:-1]
    return text + ellipsis


def _fitted_text(headers: Sequence[str], shown: Sequence[list[str]], widths: Sequence[int],
                 groups: Sequence[str]) -> str:
    """The table's lines: a line of group labels (when there are groups), the headers, a rule, the rows."""
    def pad(text: str, width: int) -> str:
        return text + " " * (width - _width(text))

    # One % per row, as plaintable does; a column a % cannot pad (wide characters) is padded first.
    ascii_only = ["".join(column).isascii() for column in shown]
    cells = [column if plain else [pad(c, width) for c in column]
             for column, width, plain in zip(shown, widths, ascii_only, strict=True)]
    row = "  ".join(f"%-{w}s" if plain else "%s" for w, plain in zip(widths, ascii_only, strict=True))
    lines = []
    if any(groups):
        labels = [group if group != before else "" for group, before in zip(groups, ["", *groups], strict=False)]
        lines.append("  ".join(map(pad, labels, widths)))
    lines += ["  ".join(map(pad, headers, widths)), "  ".join("-" * w for w in widths),
              *map(row.__mod__, zip(*cells, strict=True))]
    return "\n".join(map(str.rstrip, lines)) + "\n"
