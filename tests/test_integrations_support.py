"""What the integrations share: guard (errors in callbacks are warnings), values (framework values as
params and metrics) and holder (which run a callback logs into). No framework needed."""

from __future__ import annotations

import argparse
import enum
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import gitexp
from gitexp.integrations.guard import guarded
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import number, numbers_of, plain


class Flaky:
    calls = 0

    @guarded
    def on_step(self, value: float) -> float:
        self.calls += 1
        if value < 0:
            raise ValueError(f"negative {value}")
        return value * 2

    @guarded
    def on_end(self) -> None:
        raise OSError("disk full")


def test_an_error_in_a_guarded_method_is_one_warning_per_method_and_the_calls_go_on() -> None:
    flaky = Flaky()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert flaky.on_step(-1) is None and flaky.on_step(-2) is None
        assert flaky.on_step(3) == 6
        flaky.on_end()
        flaky.on_end()
    assert [str(w.message) for w in caught] == [
        "gitexp: Flaky.on_step failed (ValueError: negative -1); training goes on and so does logging, but this "
        "part of the run may be missing",
        "gitexp: Flaky.on_end failed (OSError: disk full); training goes on and so does logging, but this part of "
        "the run may be missing"]
    assert caught[0].filename == __file__  # pointed at the caller, not at gitexp
    assert flaky.calls == 3


class Color(enum.Enum):
    RED = "red"


def test_framework_values_become_plain_params_and_numbers() -> None:
    assert plain({"lr": np.float32(0.5), 1: (np.int64(2), Color.RED), "ns": argparse.Namespace(a=None),
                  "fn": len}) == {"lr": 0.5, "1": [2, "red"], "ns": {"a": None}, "fn": "<built-in function len>"}
    assert number(np.float64(1.5)) == 1.5 and number(True) == 1.0 and math.isnan(number(float("nan")) or 0)
    assert number("0.5") is None and number(np.array([1.0, 2.0])) is None and number(None) is None
    assert numbers_of({"loss": np.array(0.25), "name": "x", "n": 3}, "train/") == {"train/loss": 0.25, "train/n": 3.0}


def test_a_holder_logs_into_the_run_given_or_active_and_ends_only_its_own(repo: Path) -> None:
    with gitexp.start_run(experiment="held") as active:
        holder = RunHolder(name="unused")
        assert holder.get() is active
        holder.end()
        assert not active.ended
    given = gitexp.start_run(experiment="held")
    holder = RunHolder(given)
    assert holder.get() is given
    holder.end()
    assert not given.ended
    given.end()


def test_a_holders_own_run_is_resumed_by_logging_after_it_ended(repo: Path) -> None:
    holder = RunHolder(name="own", experiment="held", params={"lr": 0.1})
    first = holder.get()
    first.log_metric("loss", 1.0, step=0)
    holder.end("FINISHED")
    assert first.ended
    again = holder.get()
    assert again.id == first.id and again is not first
    again.log_metric("eval_loss", 0.5, step=0)
    holder.end("FINISHED")
    record = gitexp.get_run(first.id)
    assert record.status == "FINISHED" and record.name == "own" and record.params == {"lr": 0.1}
    assert sorted(k for k in record.metrics if not k.startswith("system/")) == ["eval_loss", "loss"]
    assert len(gitexp.load_runs(experiment="held")) == 1


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_a_holder_ends_its_own_run_with_the_status_and_error_given(repo: Path, status: str) -> None:
    holder = RunHolder(experiment="held")
    run = holder.get()
    holder.end(status, RuntimeError("stopped"))
    record = gitexp.get_run(run.id)
    assert record.status == status and record.meta["error"]["message"] == "stopped"
