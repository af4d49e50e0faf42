"""gitexp.integrations.lightgbm against real LightGBM training on a small synthetic set."""

from __future__ import annotations

from pathlib import Path

import pytest

lightgbm = pytest.importorskip("lightgbm", reason="LightGBM is not installed (pip install -e '.[test-integrations]')")

import gitexp  # noqa: E402
from tests.integration_examples import run_example, steps_and_values  # noqa: E402


def test_the_documented_training_logs_every_round_the_params_and_the_best_iteration(repo: Path) -> None:
    history = run_example("LightGBM")["history"]["valid_0"]["l2"]
    (record,) = gitexp.load_runs(experiment="lightgbm-demo")
    assert record.status == "FINISHED"
    assert record.params["num_leaves"] == 4 and record.params["objective"] == "regression"
    assert steps_and_values(record, "valid_0/l2") == list(enumerate(history))
    best = min(range(8), key=history.__getitem__)
    assert record.metrics["best_iteration"]["last"] == best
    assert record.metrics["best_score"]["last"] == history[best]


def test_a_run_the_callback_started_ends_after_the_last_round(repo: Path) -> None:
    import numpy as np

    from gitexp.integrations.lightgbm import GitexpCallback

    x = np.random.default_rng(3).normal(size=(50, 2))
    callback = GitexpCallback(experiment="lgb-own", params={"dataset": "noise"})
    lightgbm.train({"verbose": -1, "metric": "l1"}, lightgbm.Dataset(x, x[:, 0]), 4,
                   valid_sets=[lightgbm.Dataset(x, x[:, 0])], callbacks=[callback])
    record = gitexp.get_run(callback.run.id)
    assert record.status == "FINISHED" and record.params["dataset"] == "noise" and record.params["metric"] == "l1"
    assert [s for s, _ in steps_and_values(record, "valid_0/l1")] == [0, 1, 2, 3]
