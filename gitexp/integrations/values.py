"""Framework values as gitexp params and metrics: numpy and torch scalars, enums, namespaces and
objects of no YAML form (a loss function, a device) made plain."""

from __future__ import annotations

import enum
import numbers
from typing import Any


def plain(value: Any) -> Any:
    """*value* as a param can hold it: dicts and lists kept (keys as strings), numbers, strings,
    booleans and None as they are, a numpy or torch scalar as its number, anything else as text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    shape = getattr(value, "shape", None)
    if hasattr(value, "item") and shape is not None and tuple(shape) == ():  # a numpy or torch scalar
        try:
            return plain(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "__dict__") and type(value).__name__ == "Namespace":
        return plain(vars(value))
    return str(value)


def number(value: Any) -> float | None:
    """*value* as a metric value, or None when it is no number (a string, an array of several)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (str, bytes)) or value is None:
        return None
    try:
        if hasattr(value, "item"):
            value = value.item()  # numpy / torch / jax scalars; one of several values raises
        result = float(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return result  # NaN and inf too: gitexp keeps them


def numbers_of(values: dict[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """The entries of *values* that are numbers, keyed prefix + key."""
    found: dict[str, float] = {}
    for key, value in (values or {}).items():
        converted = number(value)
        if converted is not None:
            found[prefix + str(key)] = converted
    return found
