"""What a reader may rely on: the types docs/format.md gives a run's documents, and their checks.

Runs may come from an untrusted remote, so a run's documents are checked against these types once,
where codec reads them from git (a listing's cache holds only checked runs): every view can then
use them without guarding each access. Each check answers the document, or raises CorruptRunError
saying which value is wrong, naming the file (*what*) it came from.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from gitexp.errors import CorruptRunError, GitexpError
from gitexp.store import names
from gitexp.store.isotime import parse_iso


def mapping(value: Any, what: str) -> dict[str, Any]:
    """*value* as a mapping ({} for None); CorruptRunError naming *what* when it is anything else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CorruptRunError(f"{what} should be a mapping, found {type(value).__name__}")
    return value


def _shown(value: Any) -> str:
    """A value for a message: its repr (escaped, so safe on a terminal), cut short, and its type."""
    text, kind = repr(value), type(value).__name__
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({'an' if kind[0] in 'aeiou' else 'a'} {kind})"


def _is_text(value: Any) -> bool:
    return value is None or type(value) is str


def _is_int(value: Any) -> bool:
    return value is None or type(value) is int


def _is_mapping(value: Any) -> bool:
    return value is None or type(value) is dict


def _is_texts(value: Any) -> bool:
    return value is None or (type(value) is list and all(type(item) is str for item in value))


def fits_float(value: int) -> bool:
    """Whether an int is within a float's range: past it (JSON and YAML integers have no bound),
    math.isfinite, float() and matplotlib raise OverflowError."""
    return -_FLOAT_MAX <= value <= _FLOAT_MAX


def _is_number(value: Any) -> bool:
    """An int or a float that every view can take as a float."""
    kind = type(value)
    return (kind is float and math.isfinite(value)) or (kind is int and fits_float(value))


_FLOAT_MAX = sys.float_info.max


def _is_duration(value: Any) -> bool:
    return value is None or _is_number(value)


def _is_time(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is not str:
        return False
    # A time written as gitexp writes them, within an hour already read whole, is sound without
    # parsing it: its minutes, seconds and milliseconds are in range (a run's two times, and most
    # of a sweep's, share their hour; parsing each was a third of checking 100,000 runs' meta).
    written = _WRITTEN_TIME.fullmatch(value)
    if written is not None and written[1] in _SOUND_HOURS:
        return True
    try:
        parse_iso(value)
    except (ValueError, OverflowError, OSError):
        return False
    if written is not None and len(_SOUND_HOURS) < _MOST_SOUND_KEYS:
        _SOUND_HOURS.add(written[1])
    return True


_WRITTEN_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d):[0-5]\d:[0-5]\d\.\d{3}Z")  # isotime.iso's form
_SOUND_HOURS: set[str] = set()  # "2026-12-04T07" of times that parsed


def _is_tags(value: Any) -> bool:
    return value is None or (type(value) is dict and all(
        type(k) is str and (v is None or type(v) in (str, int, float, bool)) for k, v in value.items()))


_TEXT, _TEXTS, _MAPPING = (_is_text, "text"), (_is_texts, "a list of text"), (_is_mapping, "a mapping")
_REQUIRED = (lambda v: type(v) is str and bool(v), "non-empty text")
META_RULES: dict[str, tuple[Any, str]] = {
    "id": _REQUIRED, "experiment": _REQUIRED, "name": _TEXT, "status": (lambda v: type(v) is str, "text"),
    "start": (_is_time, "an ISO 8601 time"), "end": (_is_time, "an ISO 8601 time"),
    "duration": (_is_duration, "a finite number of seconds"), "user": _TEXT, "host": _TEXT,
    "pid": (_is_int, "an integer"), "exit_code": (_is_int, "an integer"), "format": (_is_int, "an integer"),
    "command": _TEXTS, "tags": (_is_tags, "a mapping of text to text"), "description": _TEXT, "error": _MAPPING,
    "git": _MAPPING, "code": _MAPPING, "imported_from": _MAPPING, "forked_from": _TEXT, "rerun_of": _TEXT,
    "linked_commit": _TEXT, "parent_run": _TEXT,
}
# The types that alone satisfy a key's rule (a value of another type goes to the rule itself).
_KINDS: dict[str, frozenset[type]] = {
    **{key: frozenset((str, type(None))) for key, rule in META_RULES.items() if rule is _TEXT},
    **{key: frozenset((dict, type(None))) for key, rule in META_RULES.items() if rule is _MAPPING},
    **{key: frozenset((int, type(None))) for key in ("pid", "exit_code", "format")},
    "status": frozenset((str,)), "duration": frozenset((type(None),)),
}
_NESTED_RULES: dict[str, dict[str, tuple[Any, str]]] = {
    "git": {"commit": _TEXT, "branch": _TEXT, "remote": _TEXT,
            "dirty": (lambda v: v is None or type(v) is bool, "true or false")},
    "code": {"tree": _TEXT, "skipped": _TEXTS, "cwd": _TEXT},
}
# As _KINDS, for the fields above (whose names the two mappings do not share).
_NESTED_KINDS: dict[str, frozenset[type]] = {
    **{field: frozenset((str, type(None))) for rules in _NESTED_RULES.values() for field, rule in rules.items()
       if rule is _TEXT},
    "dirty": frozenset((bool, type(None))), "skipped": frozenset((type(None),)),
}


def check_meta(meta: Any, what: str) -> dict[str, Any]:
    """*meta* when it has the types docs/format.md gives meta.yaml, else CorruptRunError saying which value."""
    meta = mapping(meta, what)
    for key in ("id", "experiment"):
        if key not in meta:
            raise CorruptRunError(f"{what} lacks {key!r}")
    kinds_of = _KINDS
    for key, value in meta.items():
        kinds = kinds_of.get(key)
        if kinds is not None and type(value) in kinds:
            continue  # (most keys: a type test, without a call)
        rule = META_RULES.get(key)
        if rule is not None and not rule[0](value):
            raise CorruptRunError(f"{what}: {key} is {_shown(value)}, not {rule[1]}")
    for key, rules in _NESTED_RULES.items():
        for field, (valid, expected) in rules.items() if meta.get(key) else ():
            value = meta[key].get(field)
            if type(value) not in _NESTED_KINDS[field] and not valid(value):
                raise CorruptRunError(f"{what}: {key}.{field} is {_shown(value)}, not {expected}")
    return meta


_SOUND_KEYS: set[str] = set()  # metric keys that names.check_key accepted
_MOST_SOUND_KEYS = 10_000
_INT64 = 2 ** 63  # steps and counts: a history's steps are int64 (gitexp/store/histories.py)
_SUMMARY_FIELDS = (("last", float), ("min", float), ("max", float), ("step", int), ("count", int))


def check_metrics(metrics: Any, what: str) -> dict[str, Any]:
    """*metrics* when it maps metric keys to summaries of numbers, else CorruptRunError saying which."""
    metrics = mapping(metrics, what)
    for key, summary in metrics.items():
        if key not in _SOUND_KEYS:  # (a sweep's runs share their keys: each is checked once)
            try:
                names.check_key(key)
            except GitexpError as exc:
                raise CorruptRunError(f"{what}: {exc}") from None
            if len(_SOUND_KEYS) < _MOST_SOUND_KEYS:
                _SOUND_KEYS.add(key)
        if type(summary) is not dict:
            raise CorruptRunError(f"{what} maps {key!r} to {_shown(summary)}, not to a summary of the metric "
                                  "(last, step, min, max, count)")
        for field, kind in _SUMMARY_FIELDS:
            value = summary.get(field)
            if value is None:
                continue
            if kind is int and (type(value) is not int or not -_INT64 <= value < _INT64):
                raise CorruptRunError(f"{what}: {key}.{field} is {_shown(value)}, not an integer of 64 bits")
            if kind is float and type(value) is not float and not _is_number(value):
                raise CorruptRunError(f"{what}: {key}.{field} is {_shown(value)}, not a number")
    return metrics


def check_env(env: Any, what: str) -> dict[str, Any]:
    """*env* ({} for none) when its parts have the types docs/format.md gives env.yaml, else CorruptRunError."""
    env = mapping(env, what)
    for key in ("python", "os", "cpu", "gpu", "packages", "variables"):
        value = env.get(key)
        if not _is_mapping(value):
            raise CorruptRunError(f"{what}: {key} is {_shown(value)}, not a mapping")
        if key in ("packages", "variables") and value and not all(type(name) is str for name in value):
            raise CorruptRunError(f"{what}: {key} has a name that is not text")
    devices = (env.get("gpu") or {}).get("devices")
    if devices is not None and not (type(devices) is list and all(type(d) is dict for d in devices)):
        raise CorruptRunError(f"{what}: gpu.devices is {_shown(devices)}, not a list of mappings")
    return env
