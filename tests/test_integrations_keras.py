"""gitexp.integrations.keras against Keras 3 (torch backend) fitting a tiny model on CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[test-integrations]')")

import numpy as np  # noqa: E402

import gitexp  # noqa: E402
from gitexp.integrations.keras import GitexpCallback  # noqa: E402
from tests.integration_examples import run_example, steps_and_values  # noqa: E402


def test_the_documented_fit_logs_every_epoch_the_optimizer_the_parameter_count_and_the_best_model(repo: Path) -> None:
    model = run_example("Keras 3")["model"]
    (record,) = gitexp.load_runs(experiment="keras-demo")
    assert record.status == "FINISHED"
    assert record.params["optimizer"]["name"] == "adam" and record.params["optimizer"]["learning_rate"] == \
        pytest.approx(0.01)
    assert record.params["param_count"] == record.params["trainable_param_count"] == model.count_params() == 49
    assert record.params["epochs"] == 3 and record.params["steps"] == 3
    history = model.history.history
    assert sorted(history) == sorted(k for k in record.metrics if not k.startswith("system/")) == \
        ["loss", "mae", "val_loss", "val_mae"]
    for key, values in history.items():
        assert steps_and_values(record, key) == list(enumerate(float(v) for v in values))
    assert [a.path for a in record.artifacts] == ["model/best.keras"]
    assert record.artifacts[0].size > 0


class Boom(Exception):
    pass


class FailAtEpoch(keras.callbacks.Callback):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 1:
            raise self.error


def test_fit_raising_ends_the_run_failed_with_the_error_which_reaches_the_caller_unchanged(repo: Path) -> None:
    x = np.random.default_rng(1).normal(size=(32, 2)).astype("float32")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    error = Boom("the data loader broke")
    with pytest.raises(Boom) as raised, gitexp.start_run(experiment="keras-fail") as run:
        model.fit(x, x[:, 0], epochs=3, batch_size=8, verbose=0,
                  callbacks=[GitexpCallback(log_batches=True), FailAtEpoch(error)])
    assert raised.value is error
    record = gitexp.get_run(run.id)
    assert record.status == "FAILED" and record.meta["error"]["type"] == "Boom"
    assert record.meta["error"]["message"] == "the data loader broke"
    assert [s for s, _ in steps_and_values(record, "loss")] == [0, 1]  # the epochs before the failure
    assert [s for s, _ in steps_and_values(record, "batch/loss")] == list(range(8))
