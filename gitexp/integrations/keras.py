"""Keras 3: a callback that records `model.fit` as a run.

    from gitexp.integrations.keras import GitexpCallback
    model.fit(x, y, epochs=3, callbacks=[GitexpCallback(experiment="mnist")])

Epoch metrics (`loss`, `val_loss`...) by epoch; with log_batches=True also every batch's as
`batch/<key>` by the batch's number counted over the whole fit. Params: the compiled optimizer's
config (`optimizer`), the model's parameter counts (`param_count`, `trainable_param_count`), the
epochs and steps per epoch. With best_model="val_loss" (a monitored metric), the model of the
best epoch is stored as the artifact `model/best.keras` when training ends.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import keras

from gitexp.integrations.guard import guarded
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import numbers_of, plain
from gitexp.tracking.liverun import Run


class GitexpCallback(keras.callbacks.Callback):
    """Logs into *run*, else the active run, else a run it starts (start_run's name, experiment,
    params, tags, per_rank) at the start of fit and ends when fit returns."""

    def __init__(self, run: Run | None = None, *, log_batches: bool = False, best_model: str | None = None,
                 mode: str = "auto", name: str | None = None, experiment: str | None = None,
                 params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
                 per_rank: bool | list[str] = False) -> None:
        super().__init__()
        self._holder = RunHolder(run, name=name, experiment=experiment, params=params, tags=tags, per_rank=per_rank)
        self._log_batches = log_batches
        self._monitor = best_model
        self._higher = mode == "max" or (mode == "auto" and best_model is not None and
                                         any(part in best_model for part in ("acc", "auc", "precision", "recall")))
        self._best = math.nan
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._batches = 0
        self._epoch = 0

    @property
    def run(self) -> Run | None:
        return self._holder.last

    @guarded
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        run = self._holder.get()
        self._batches = 0
        found: dict[str, Any] = {}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            found["optimizer"] = plain(optimizer.get_config())
        found["param_count"] = int(self.model.count_params())
        found["trainable_param_count"] = int(sum(math.prod(w.shape) for w in self.model.trainable_weights))
        for key in ("epochs", "steps"):
            if (self.params or {}).get(key) is not None:
                found[key] = plain(self.params[key])
        known = run.params
        run.log_params({key: value for key, value in found.items() if key not in known})

    @guarded
    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._log_batches:
            self._holder.get().log_metrics(numbers_of(logs, "batch/"), step=self._batches)
        self._batches += 1

    @guarded
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._holder.get().log_metrics(numbers_of(logs), step=epoch)
        if self._monitor is not None:
            value = numbers_of(logs).get(self._monitor)
            if value is not None and (math.isnan(self._best) or (value > self._best if self._higher
                                                                else value < self._best)):
                self._best = value
                if self._folder is None:
                    self._folder = tempfile.TemporaryDirectory(prefix="gitexp-keras-")
                self.model.save(Path(self._folder.name) / "best.keras")

    @guarded
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        try:
            if self._folder is not None:
                self._holder.get().log_artifact(Path(self._folder.name) / "best.keras", "model/best.keras")
                self._folder.cleanup()
                self._folder = None
        finally:
            self._holder.end("FINISHED")
