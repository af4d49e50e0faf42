"""Names and ids: experiment names, run ids, run names, and metric/param keys."""

from __future__ import annotations

import itertools
import operator
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from urllib.parse import unquote

from gitexp.errors import InvalidNameError

REF_PREFIX = "refs/experiments/"
TRASH_PREFIX = "refs/experiments-trash/"
DEFAULT_EXPERIMENT = "default"

# git check-ref-format rules, applied per path component.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_RUN_ID = re.compile(r"^\d{8}-[0-9a-f]{15}$")


def check_experiment(name: str) -> str:
    """Return *name* if it can be a ref path component sequence, else say why not."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"invalid experiment name {name!r}: it must be a non-empty string")
    reason = _ref_problem(name)
    if reason is None and name.startswith("-"):
        reason = "it starts with '-', which would read as a command-line option"
    if reason is None and _RUN_ID.match(name.rsplit("/", 1)[-1]):
        reason = "its last component looks like a run id"
    if reason:
        raise InvalidNameError(
            f"invalid experiment name {name!r}: {reason}; experiment names follow git's ref-name "
            "rules (see `git help check-ref-format`), for example 'cnn' or 'team/cnn-v2'"
        )
    return name


def _ref_problem(name: str) -> str | None:
    if bad := _BAD_REF_CHARS.search(name):
        return f"it contains {bad.group()!r}, which git does not allow in ref names"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty path component (a leading, trailing or doubled '/')"
    if ".." in name:
        return "it contains '..'"
    if "@{" in name or name == "@":
        return "it contains '@{' or is '@'"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"the component {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"the component {part!r} ends with '.lock'"
    return None


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))


_id_lock = threading.Lock()
_last_ms = 0
# A clock that steps back by less than this keeps a process's ids increasing (ids run a little
# ahead of it until it catches up); a bigger step is taken as the time, so that a run's id and
# meta.start never disagree by more than this.
_BACKSTEP_MS = 1000


def new_run_id(now: float | None = None) -> str:
    """YYYYMMDD-TTTTTTTRRRRRRRR: UTC date, 7 hex digits of milliseconds since midnight, 8 random.

    Fixed width, so ids sort by creation time as strings; 32 random bits make ids created
    on different machines in the same millisecond distinct without coordination.
    """
    return new_run_id_at(now)[0]


def new_run_id_at(now: float | None = None) -> tuple[str, float]:
    """A new run id and the time it encodes (Unix seconds, whole milliseconds): a run's meta.start
    is that time, so the id's date and time are always the start's.

    Without *now*, the clock is read and a process's ids strictly increase, even within one
    millisecond or after the clock steps back by less than a second; after a bigger step back
    the ids follow the clock.
    """
    global _last_ms
    with _id_lock:
        ms = int((time.time() if now is None else now) * 1000)
        if now is None:
            if ms > _last_ms - _BACKSTEP_MS:
                ms = max(ms, _last_ms + 1)
            _last_ms = ms
    day, ms_of_day = divmod(ms, 86_400_000)
    date = time.strftime("%Y%m%d", time.gmtime(day * 86_400))
    return f"{date}-{ms_of_day:07x}{int.from_bytes(os.urandom(4), 'big'):08x}", ms / 1000


# A run's handle: what gitexp shows of a run id and users type, like git's abbreviated commit
# hashes. The date and time that lead an id are shared by every run of a moment, so the handle is
# taken from the id's random end instead: 7 of its 8 hex digits (28 random bits) tell apart the runs
# of a repository for years, whenever they were made. It is derived, never stored (docs/format.md).
HANDLE_LEN = 7
MIN_HANDLE_LEN = 4  # the fewest characters of a handle or id prefix that name a run
RANDOM_START = 16  # where the random part of YYYYMMDD-TTTTTTTRRRRRRRR begins
_HANDLE_TEXT = re.compile(r"^[0-9a-fA-F]{4,8}$")


def random_part(run_id: str) -> str:
    """The 8 random hex digits that end a run id."""
    return run_id[RANDOM_START:]


def could_be_handle(text: str) -> bool:
    """Whether *text* reads as (the start of) a handle: 4 to 8 hex digits, no '-'."""
    return 4 <= len(text) <= 9 and bool(_HANDLE_TEXT.match(text))  # (the length first: most names are longer)


def handles(ids: Iterable[str]) -> dict[str, str]:
    """The handle of each run id: the first HANDLE_LEN digits of its random part, or more of them
    when another id's random part starts the same way, as git lengthens an abbreviated hash.

    A handle of digits only is lengthened too while it is the start of an id (the date of a run:
    "2026120" would also name the runs of 2026-12-0x), so that every handle names its run alone.
    An id whose 8 random digits do not tell it apart (or one not of the standard form) is its own
    handle.

    handles_reference() says the same a run at a time; this works a list at a time (100,000 runs:
    0.1 s rather than 0.5 s), deciding one run at a time only for the few whose handle grows.
    """
    unique = list(set(ids))
    joined = "\n".join(unique) + "\n"
    if len(joined) != 25 * len(unique) or not _RUN_IDS.fullmatch(joined):
        return handles_reference(unique)  # not all of the standard form: rare, and the reference is plain
    standard = sorted(unique, key=_RANDOM)
    randoms = list(map(_RANDOM, standard))
    heads = list(map(_HEAD, randoms))
    out = dict(zip(standard, heads, strict=True))
    # Only neighbours (in the order of their random parts) can share the first HANDLE_LEN digits,
    # and only a handle of digits can be the start of an id.
    shared = set(itertools.compress(range(len(heads) - 1), map(operator.eq, heads, heads[1:])))
    grow = sorted(shared | {k + 1 for k in shared} | set(itertools.compress(range(len(heads)),
                                                                            map(str.isdecimal, heads))))
    if grow:
        dates = set(map(_HEAD_AND_ONE, unique))  # every id starts with 8 digits: a date
        starts = dates | set(map(_HEAD, dates))
        for k in grow:
            length = HANDLE_LEN
            for other in (k - 1, k + 1):
                if 0 <= other < len(randoms) and heads[other] == heads[k]:
                    length = max(length, _common(randoms[k], randoms[other]) + 1)
            out[standard[k]] = _grown(standard[k], randoms[k], length, starts)
    return out


def handles_of(wanted: Iterable[str], every: Iterable[str]) -> dict[str, str]:
    """{i: handles([*every, *wanted])[i] for i in wanted}, looking closely only at the ids whose
    random part starts like one of *wanted*'s: `git exp show` of one run among 100,000 need not
    work out 100,000 handles (0.35 s) to print one."""
    wanted = list(dict.fromkeys(wanted))
    heads = {_HEAD(_RANDOM(i)) for i in wanted}
    pool = set(every).union(wanted)
    alike = [i for i in pool if _HEAD(_RANDOM(i)) in heads]
    if not all(_RUN_ID.match(i) for i in alike):
        shown = handles_reference(pool)
        return {i: shown[i] for i in wanted}
    return _handles_among(wanted, alike, set(map(_HEAD_AND_ONE, pool)))


def _handles_among(wanted: Iterable[str], alike: list[str], dates: set[str]) -> dict[str, str]:
    """The handles of *wanted*, standard ids, among every id: *alike*, the ids whose random part
    starts like one of theirs (every one that could lengthen theirs), and *dates*, the first 8
    characters of every id."""
    shown = handles(alike)
    # A handle of digits grows past the start of any id, not only of those alike.
    starts = dates | set(map(_HEAD, dates))
    out = {}
    for run_id in wanted:
        handle = shown[run_id]
        if handle.isdecimal() and len(handle) <= 8:
            handle = _grown(run_id, _RANDOM(run_id), len(handle), starts)
        out[run_id] = handle
    return out


def handles_after(before: Mapping[str, str], every: Sequence[str], changed: Iterable[str]) -> dict[str, str]:
    """handles(every), knowing *before*: the handles of the ids there were before the ids *changed*
    came or went. Only the ids whose handle may differ are worked out again: those of the changed
    random parts' first digits (a collision came or went), and those whose first digits are all
    decimal (an id's date that they start came or went); a sweep's listing need not work out
    100,000 handles for ten new runs."""
    changed = set(changed)
    joined = "\n".join([*every, *changed]) + "\n"
    if not _RUN_IDS.fullmatch(joined) or len(set(every)) != len(every):
        return handles(every)
    heads = set(map(_HEAD, map(_RANDOM, changed)))
    dates = set(map(_HEAD_AND_ONE, every))
    if dates == set(map(_HEAD_AND_ONE, before)):
        # No date came or went (a sweep's new runs are of a day some run already was): a handle of
        # digits grows past the same starts as before, and only the ids of the changed random parts'
        # first digits (and any without a handle before) need theirs worked out again. In C-speed
        # passes: at 100,000 runs a Python loop over them was most of a sweep's listing's handles.
        heads.update(map(_RANDOM_HEAD, itertools.filterfalse(before.__contains__, every)))
        alike = list(itertools.compress(every, map(heads.__contains__, map(_RANDOM_HEAD, every))))
        out = dict(zip(every, map(before.get, every, every), strict=True))  # (an id new here: its handle next)
        out.update(_handles_among(alike, alike, dates))  # (every id of those heads: all that can lengthen them)
        return out
    # A handle whose first digits are all decimal may have grown (or may grow) past an id's date.
    again = {i for i in every
             if i in changed or i not in before or (head := _HEAD(_RANDOM(i))) in heads or head.isdecimal()}
    out = {i: before[i] for i in every if i not in again}
    out.update(handles_of(again, every))
    return out


def handles_before(ids: Sequence[str], shown: Sequence[str], added: Sequence[str]) -> list[str] | None:
    """handles() of the ids *added* then *ids*, as a list in that order, knowing *shown*: the handles
    of *ids* among themselves. Where the added ids bring no date that *ids* lack (a sweep's new
    runs), only the handles of the ids whose random part starts like an added one's can change, and
    those alone are worked out: a list of 100,000 handles without a map of them. None where that
    does not hold: handles_after() answers then."""
    joined = "\n".join([*added, *ids]) + "\n"
    if not added or not _RUN_IDS.fullmatch(joined):
        return None
    dates = set(map(_HEAD_AND_ONE, ids))
    if not dates.issuperset(map(_HEAD_AND_ONE, added)):
        return None
    heads = set(map(_RANDOM_HEAD, added))
    alike = list(itertools.compress(range(len(ids)), map(heads.__contains__, map(_RANDOM_HEAD, ids))))
    group = [*added, *(ids[k] for k in alike)]
    found = _handles_among(group, group, dates)
    out = [found[i] for i in added]
    out.extend(shown)
    for k in alike:
        out[len(added) + k] = found[ids[k]]
    return out


def _common(a: str, b: str) -> int:
    """How many leading characters *a* and *b* share."""
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def _grown(run_id: str, random_digits: str, length: int, starts: set[str]) -> str:
    """The handle of *run_id* of at least *length* digits: longer while it is digits that start an
    id (*starts*: the first 7 and 8 characters of every id), the whole id past 8 digits."""
    if random_digits[:length].isdecimal():
        while length <= len(random_digits) and random_digits[:length] in starts:
            length += 1
    return random_digits[:length] if length <= len(random_digits) else run_id


_RUN_IDS = re.compile(r"(?:\d{8}-[0-9a-f]{15}\n)*")  # _RUN_ID, a line each
_RANDOM = operator.itemgetter(slice(RANDOM_START, None))
_HEAD = operator.itemgetter(slice(0, HANDLE_LEN))
_HEAD_AND_ONE = operator.itemgetter(slice(0, HANDLE_LEN + 1))
_RANDOM_HEAD = operator.itemgetter(slice(RANDOM_START, RANDOM_START + HANDLE_LEN))  # _HEAD(_RANDOM(i))


def handles_reference(ids: Iterable[str]) -> dict[str, str]:
    """The handle of each run id: the first HANDLE_LEN digits of its random part, or more of them
    when another id's random part starts the same way, as git lengthens an abbreviated hash.

    A handle of digits only is lengthened too while it is the start of an id (the date of a run:
    "2026120" would also name the runs of 2026-12-0x), so that every handle names its run alone.
    An id whose 8 random digits do not tell it apart (or one not of the standard form) is its own
    handle.
    """
    unique = set(ids)
    standard = sorted((i for i in unique if _RUN_ID.match(i)), key=random_part)
    out = {i: i for i in unique if not _RUN_ID.match(i)}
    randoms = [random_part(i) for i in standard]
    need = [HANDLE_LEN] * len(standard)
    # Only neighbours (in the order of their random parts) can share the first HANDLE_LEN digits.
    for k, (current, following) in enumerate(pairwise(randoms)):
        if current[:HANDLE_LEN] == following[:HANDLE_LEN]:
            common = HANDLE_LEN
            while common < len(current) and current[common] == following[common]:
                common += 1
            need[k] = max(need[k], common + 1)
            need[k + 1] = max(need[k + 1], common + 1)
    starts: set[str] | None = None  # the first 7 and 8 characters of every id, when a handle needs them
    for run_id, random_digits, length in zip(standard, randoms, need, strict=True):
        if random_digits[:length].isdecimal():
            if starts is None:
                starts = {i[:n] for i in unique for n in (HANDLE_LEN, HANDLE_LEN + 1)}
            while length <= len(random_digits) and random_digits[:length] in starts:
                length += 1
        out[run_id] = random_digits[:length] if length <= len(random_digits) else run_id
    return out



_ADJECTIVES = ("amber", "bold", "brisk", "calm", "clever", "crisp", "eager", "fond", "gentle", "glad",
               "grand", "keen", "lively", "lucky", "merry", "noble", "quiet", "rapid", "silent", "steady",
               "sunny", "swift", "tidy", "vivid", "warm", "wise", "young", "zesty")
_NOUNS = ("otter", "falcon", "maple", "comet", "river", "cedar", "heron", "lynx", "pebble", "harbor",
          "meadow", "orbit", "quartz", "raven", "spruce", "tide", "willow", "bison", "ember", "fjord",
          "gecko", "kite", "lotus", "nova", "panda", "sparrow", "tulip", "walrus")


def random_run_name() -> str:
    rng = random.SystemRandom()
    return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{rng.randrange(100, 1000)}"


def check_run_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise InvalidNameError(f"invalid run name {name!r}: use a non-empty line of printable text")
    if len(name) > 250:
        raise InvalidNameError(f"invalid run name {name[:40]!r}...: it is {len(name)} characters, at most 250")
    return name


def check_key(key: object, kind: str = "metric") -> str:
    """Metric, param and tag keys: printable unicode, '/' separates namespaces."""
    if not isinstance(key, str):
        raise InvalidNameError(f"invalid {kind} key {key!r}: keys must be strings, not {type(key).__name__}")
    if not key or not key.isprintable() or len(key) > 250:
        raise InvalidNameError(
            f"invalid {kind} key {key!r}: keys must be 1-250 printable characters "
            "(no tabs, newlines or control characters)"
        )
    if key.startswith("/") or key.endswith("/") or "//" in key:
        raise InvalidNameError(f"invalid {kind} key {key!r}: '/' separates namespaces, so no empty part")
    return key


# Characters that are unsafe in a file name on some system, plus '%' (the escape itself).
_UNSAFE = re.compile(r'[%<>:"\\|?*\x00-\x1f]')


def _escape(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


def key_to_path(key: str) -> str:
    """Reversible mapping of a metric key to a relative path (without suffix) in the run tree."""
    parts = []
    for part in key.split("/"):
        encoded = _UNSAFE.sub(lambda m: _escape(m.group()), part)
        # '.', '..' and dotfiles are special to git; trailing dots and spaces vanish on Windows.
        if encoded.startswith("."):
            encoded = "%2E" + encoded[1:]
        if encoded.endswith((".", " ")):
            encoded = encoded[:-1] + _escape(encoded[-1])
        parts.append(encoded)
    return "/".join(parts)


def path_to_key(path: str) -> str:
    return "/".join(unquote(part) for part in path.split("/"))
