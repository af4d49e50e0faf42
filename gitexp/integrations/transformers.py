"""Hugging Face Transformers: a TrainerCallback that records a Trainer's training as a run.

    from gitexp.integrations.transformers import GitexpCallback
    trainer = Trainer(model, args, train_dataset=..., callbacks=[GitexpCallback(experiment="bert")])

Params: the TrainingArguments (each field, as `TrainingArguments.to_dict()` gives it) and the
model's config as `model_config`. Metrics: what the Trainer logs (loss, learning_rate,
grad_norm, epoch, eval_*...) at its global step. log_model=True stores the final model (and
tokenizer or processor) under `model/` when training ends. Set `report_to="none"` to keep the
Trainer from adding the trackers it finds installed. Only the world's process 0 records, unless
per_rank chose metrics the other processes record into its run as `rank<k>/<key>`.
"""

from __future__ import annotations

import tempfile
from typing import Any

from transformers import TrainerCallback

from gitexp.integrations.guard import guarded
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import numbers_of, plain
from gitexp.tracking.liverun import Run


class GitexpCallback(TrainerCallback):
    def __init__(self, run: Run | None = None, *, log_model: bool = False, name: str | None = None,
                 experiment: str | None = None, params: dict[str, Any] | None = None,
                 tags: dict[str, Any] | None = None, per_rank: bool | list[str] = False) -> None:
        self._holder = RunHolder(run, name=name, experiment=experiment, params=params, tags=tags, per_rank=per_rank)
        self._log_model = log_model
        self._training = False

    @property
    def run(self) -> Run | None:
        return self._holder.last

    def _run(self, args: Any) -> Run:
        return self._holder.get(rank=getattr(args, "process_index", None))

    @guarded
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._training = True
        run = self._run(args)
        found = plain(args.to_dict())
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            found["model_config"] = plain(config.to_dict())
        known = run.params
        run.log_params({key: value for key, value in found.items() if key not in known})

    @guarded
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._run(args).log_metrics(numbers_of(logs), step=int(state.global_step))
        if not self._training:
            # trainer.evaluate() after train(): the run was resumed for this, and ends again at once
            self._holder.end("FINISHED")

    @guarded
    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        try:
            if self._log_model and model is not None and state.is_world_process_zero:
                with tempfile.TemporaryDirectory(prefix="gitexp-transformers-") as folder:
                    model.save_pretrained(folder)
                    processor = kwargs.get("processing_class") or kwargs.get("tokenizer")
                    if processor is not None and hasattr(processor, "save_pretrained"):
                        processor.save_pretrained(folder)
                    self._run(args).log_artifacts(folder, "model")
        finally:
            self._training = False
            self._holder.end("FINISHED")
