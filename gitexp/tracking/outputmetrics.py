"""`git exp run --metrics-from-output`: metrics read from the lines a command prints.

A script that does not import gitexp still prints its progress (`epoch 3 loss=0.25 acc: 0.91`).
OutputMetrics reads each line the runner captures, stdout and stderr alike, and logs the values
its patterns find in the run: each occurrence of a metric is its next step, unless the line gives a
step (a `step` pair, or a `step` group of a custom pattern). A pattern's problems are reported before
the command starts; nothing a line holds can stop the run or the copying of its output.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from gitexp import threads
from gitexp.errors import GitexpError, InvalidNameError
from gitexp.store import names
from gitexp.warn import warn

# `name=value` and `name: value` pairs, several a line: a name starts a word (a letter or _, then
# letters, digits, _ . / -), optionally quoted as a dict or JSON prints it (`{'loss': 0.25}`); the
# value is a decimal number (sign, exponent), nan or inf, that ends there, so a time (12:30), a
# date (2026-12-02), a version (1.2.3) or an address (10.0.0.1) is no value.
DEFAULT_PATTERN = (
    r"(?<![\w./-])(?P<quote>['\"]?)(?P<name>[^\W\d](?:[\w./-]*\w)?)(?P=quote)\s*[=:]\s*"
    r"(?P<value>[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?i:nan|inf(?:inity)?)))(?![\w.:/-])"
)
STEP = "step"  # a line's step: a pair named so (the default pattern), or a group (a custom one)


class Pattern:
    """One compiled --metric-pattern: how its matches become (metric, text of the value) pairs."""

    def __init__(self, text: str) -> None:
        try:
            self.regex = re.compile(text)
        except re.error as exc:
            raise GitexpError(f"--metric-pattern {text!r} is not a regular expression: {exc}") from None
        self.text = text
        groups = set(self.regex.groupindex)
        self.paired = {"name", "value"} <= groups  # each match is one metric, named by its `name` group
        if "value" in groups and not self.paired:
            raise GitexpError(f"--metric-pattern {text!r} has a `value` group but no `name` group: add "
                              "(?P<name>...) to capture the metric's name, or name the group after the metric, "
                              "e.g. (?P<loss>[0-9.e+-]+)")
        self.metrics = [] if self.paired else [g for g in self.regex.groupindex if g != STEP]
        if not self.paired and not self.metrics:
            raise GitexpError(f"--metric-pattern {text!r} captures no metric: use the named groups (?P<name>...) "
                              "and (?P<value>...), or name a group after each metric, e.g. "
                              "'loss (?P<loss>\\S+)'; an optional (?P<step>\\d+) gives the step")

    def pairs(self, line: str) -> list[tuple[str, str, str | None]]:
        """(metric, value text, step text or None) of each match in *line*."""
        found: list[tuple[str, str, str | None]] = []
        for match in self.regex.finditer(line):
            groups = match.groupdict()
            step = groups.get(STEP)
            if self.paired:
                if groups["name"] is not None and groups["value"] is not None:
                    found.append((groups["name"], groups["value"], step))
            else:
                found += [(key, groups[key], step) for key in self.metrics if groups[key] is not None]
        return found


def compile_patterns(texts: list[str] | None) -> list[Pattern]:
    """The patterns of --metric-pattern (none given: DEFAULT_PATTERN); GitexpError for a bad one."""
    return [Pattern(text) for text in (texts or [DEFAULT_PATTERN])]


class OutputMetrics:
    """Logs into *run* the metrics that *patterns* find in each line fed; safe to feed from two threads."""

    def __init__(self, run: Any, patterns: list[Pattern]) -> None:
        self.run = run
        self.patterns = patterns
        self._lock = threading.Lock()
        self._warned: set[str] = set()  # what a warning was given for already
        self._broken = False

    def feed(self, line: str) -> None:
        """Log the values of one line of output (a line a progress bar redraws with \\r is each of its
        versions). Never raises: a failure is warned of once and ends the reading, not the run."""
        if self._broken:
            return
        try:
            with self._lock:
                for part in line.split("\r"):
                    if part:
                        self._log_line(part)
        except Exception as exc:  # the copying of the command's output must go on
            self._broken = True
            warn(f"gitexp: --metrics-from-output stopped reading metrics from the output ({exc}); the run "
                 "and its output.log go on")

    def _log_line(self, line: str) -> None:
        for pattern in self.patterns:
            pairs = pattern.pairs(line)
            if not pairs:
                continue
            # The default pattern's `step` pair is the step of the line's other values.
            line_step = next((value for key, value, _ in pairs if key == STEP), None) if pattern.paired else None
            for key, text, step in pairs:
                if pattern.paired and key == STEP:
                    continue
                self._log(key, text, step if step is not None else line_step)

    def _log(self, key: str, text: str, step_text: str | None) -> None:
        try:
            names.check_key(key, "metric")
        except InvalidNameError as exc:
            self._once(key, f"{exc}; its values are skipped")
            return
        try:
            value = float(text)
        except ValueError:
            self._once(key, f"metric {key!r}: {text!r} is not a number; such values are skipped")
            return
        step = _step(step_text)
        if step_text is not None and step is None:
            self._once(f"{STEP} {key}", f"metric {key!r}: step {step_text!r} is not a whole number of 0 or more; "
                                        "such values are logged at the metric's next step")
        self.run.log_metric(key, value, step)

    def _once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            warn(f"gitexp: --metrics-from-output: {message} (said once)")


def _step(text: str | None) -> int | None:
    """A step's text as an int; None when absent or not a whole number of 0 or more (nan, 2.5, -1)."""
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and number >= 0 else None


# Under these locks a signal handler would wait for its own thread (gitexp/threads.py).
threads.holds_locks(OutputMetrics.feed)
