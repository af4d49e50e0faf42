"""gitexp.integrations.xgboost against real XGBoost training on a small synthetic set."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

xgboost = pytest.importorskip("xgboost", reason="XGBoost is not installed (pip install -e '.[test-integrations]')")

import gitexp  # noqa: E402
from tests.integration_examples import run_example, steps_and_values  # noqa: E402


def test_the_documented_training_logs_every_round_the_booster_params_and_the_best_iteration(repo: Path) -> None:
    history = run_example("XGBoost")["history"]
    (record,) = gitexp.load_runs(experiment="xgboost-demo")
    assert record.status == "FINISHED"
    booster = record.params["booster"]
    assert float(booster["gradient_booster"]["tree_train_param"]["max_depth"]) == 2
    assert float(booster["gradient_booster"]["tree_train_param"]["eta"]) == pytest.approx(0.3)
    for data in ("train", "valid"):
        assert steps_and_values(record, f"{data}/rmse") == list(enumerate(history[data]["rmse"]))
    best = min(range(8), key=history["valid"]["rmse"].__getitem__)
    assert steps_and_values(record, "best_iteration") == [(best, best)]
    assert steps_and_values(record, "best_score") == [(best, history["valid"]["rmse"][best])]


def test_early_stopping_gives_the_best_iteration(repo: Path) -> None:
    import numpy as np

    from gitexp.integrations.xgboost import GitexpCallback

    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3))
    train, valid = xgboost.DMatrix(x[:40], x[:40, 0]), xgboost.DMatrix(x[40:], rng.normal(size=20))  # noise: stops
    callback = GitexpCallback(experiment="xgb-early")
    booster = xgboost.train({"eta": 0.5}, train, 50, evals=[(valid, "valid")], early_stopping_rounds=2,
                            verbose_eval=False, callbacks=[callback])
    record = gitexp.get_run(callback.run.id)
    assert record.metrics["best_iteration"]["last"] == booster.best_iteration < 49
    assert len(record.history("valid/rmse").steps) == booster.num_boosted_rounds()


def test_training_raising_ends_the_callbacks_own_run_failed_at_exit_with_the_error_shown_unchanged(
        repo: Path, env_for_subprocess: dict[str, str]) -> None:
    script = textwrap.dedent("""
        import numpy as np
        import xgboost
        from gitexp.integrations.xgboost import GitexpCallback

        class Broken(xgboost.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                if epoch == 2:
                    raise ValueError("round 2 went wrong")
                return False

        x = np.arange(40.0).reshape(20, 2)
        data = xgboost.DMatrix(x, x[:, 0])
        xgboost.train({}, data, 5, evals=[(data, "train")], verbose_eval=False,
                      callbacks=[GitexpCallback(experiment="xgb-fail"), Broken()])
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env_for_subprocess, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.rstrip().endswith("ValueError: round 2 went wrong")
    (record,) = gitexp.load_runs(experiment="xgb-fail")
    assert record.status == "FAILED" and record.meta["error"]["message"] == "round 2 went wrong"
    assert [s for s, _ in steps_and_values(record, "train/rmse")] == [0, 1, 2]
