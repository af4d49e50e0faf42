"""PyTorch Lightning: a Logger that records a Trainer's fit as a run.

    from gitexp.integrations.lightning import GitexpLogger
    trainer = lightning.Trainer(max_epochs=2, logger=GitexpLogger(experiment="mnist", log_model=True))

`log_hyperparams` logs params, `log_metrics` metrics at the trainer's global step, `finalize`
ends the run with the trainer's outcome: FINISHED, FAILED with the error that stopped training,
or KILLED for a KeyboardInterrupt or SIGTERM. A later `trainer.test()` resumes the run on its
ref. log_model=True stores the best and last checkpoints as artifacts `checkpoints/<file>` when
training ends, log_model="all" every checkpoint as it is saved. `logger.name` is the run's
name and `logger.version` its id. Under a strategy of several processes only global rank 0
records, unless per_rank chose metrics that the other ranks record into its run as
`rank<k>/<key>` (gitexp/tracking/ranks.py).
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from gitexp.integrations.guard import guarded
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import numbers_of, plain
from gitexp.tracking.liverun import Run


def _outcome(status: str) -> tuple[str, BaseException | None]:
    """Lightning's finalize status as a run's, with the exception it is handling if any."""
    error = sys.exc_info()[1]  # Lightning finalizes a failed fit inside its `except` block
    if status == "failed":
        if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "SIGTERMException":
            return "KILLED", error
        return "FAILED", error
    return "FINISHED", None


class GitexpLogger(Logger):
    def __init__(self, experiment: str | None = None, name: str | None = None, *, run: Run | None = None,
                 params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
                 log_model: bool | str = False, per_rank: bool | list[str] = False, prefix: str = "") -> None:
        super().__init__()
        self._holder = RunHolder(run, name=name, experiment=experiment, params=params, tags=tags, per_rank=per_rank)
        self._log_model = log_model
        self._prefix = prefix
        self._checkpoint_callback: Any = None
        self._logged: set[str] = set()

    @property
    def experiment(self) -> Run:
        """The gitexp Run (started on first use; resumed after finalize, for a trainer.test())."""
        return self._holder.get(rank=getattr(rank_zero_only, "rank", None))

    @property
    def name(self) -> str:
        return (self._holder.last if self._holder.last is not None else self.experiment).name

    @property
    def version(self) -> str:
        return (self._holder.last if self._holder.last is not None else self.experiment).id

    @property
    def save_dir(self) -> str | None:
        return None

    @guarded
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        values = plain(vars(params) if isinstance(params, Namespace) else dict(params))
        run = self.experiment
        known = run.params
        # Params never change: a key logged already (a second fit, a resumed run) keeps its value.
        run.log_params({key: value for key, value in values.items() if key not in known})

    @guarded
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.experiment.log_metrics(numbers_of(metrics, self._prefix), step=step)

    @guarded
    def save(self) -> None:
        # Lightning calls this after every logging step; the run journals every second on its own.
        pass

    @guarded
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._checkpoint_callback = checkpoint_callback
        if self._log_model == "all":
            self._log_checkpoints()

    def _log_checkpoints(self) -> None:
        callback = self._checkpoint_callback
        if callback is None:
            return
        for path in (getattr(callback, "best_model_path", ""), getattr(callback, "last_model_path", ""),
                     *(getattr(callback, "best_k_models", {}) or {})):
            if path and path not in self._logged and Path(path).is_file():
                self.experiment.log_artifact(path, f"checkpoints/{Path(path).name}")
                self._logged.add(path)

    @guarded
    def finalize(self, status: str) -> None:
        if not self._holder.started:
            return
        status_, error = _outcome(status)
        try:
            if self._log_model and status_ == "FINISHED":
                self._log_checkpoints()
        finally:
            self._holder.end(status_, error)
