"""gitexp.integrations.lightning against a real Lightning Trainer on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

lightning = pytest.importorskip("lightning",
                                reason="Lightning is not installed (pip install -e '.[test-integrations]')")

import torch  # noqa: E402

import gitexp  # noqa: E402
from gitexp.integrations.lightning import GitexpLogger  # noqa: E402
from tests.integration_examples import run_example, steps_and_values  # noqa: E402


def test_the_documented_trainer_logs_hyperparams_every_step_and_the_checkpoint(repo: Path) -> None:
    found = run_example("PyTorch Lightning")
    logger, trainer = found["logger"], found["trainer"]
    record = gitexp.get_run(logger.version)
    assert record.name == logger.name and record.experiment == "lightning-demo"
    assert record.status == "FINISHED" and record.params == {"lr": 0.1}
    assert [s for s, _ in steps_and_values(record, "train_loss")] == list(range(8))  # 4 batches, 2 epochs
    assert [s for s, _ in steps_and_values(record, "val_loss")] == [3, 7]
    # epoch is logged with the training values and again with validation's at the same step: kept
    assert [s for s, _ in steps_and_values(record, "epoch")] == [0, 1, 2, 3, 3, 4, 5, 6, 7, 7]
    assert steps_and_values(record, "val_loss")[-1][1] == pytest.approx(float(trainer.callback_metrics["val_loss"]))
    checkpoint = Path(trainer.checkpoint_callback.best_model_path)
    assert checkpoint.parts[-4:-1] == (logger.name, logger.version, "checkpoints")
    assert [a.path for a in record.artifacts] == [f"checkpoints/{checkpoint.name}"]


class Boom(Exception):
    pass


class Failing(lightning.LightningModule):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.error = error

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        if self.global_step == 2:
            raise self.error
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_trainer_raising_ends_the_run_failed_with_the_error_which_reaches_the_caller_unchanged(repo: Path) -> None:
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(16, 2)), batch_size=4)
    logger = GitexpLogger(experiment="lightning-fail", params={"seed": 1})
    trainer = lightning.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False)
    error = Boom("out of memory, pretend")
    with pytest.raises(Boom) as raised:
        trainer.fit(Failing(error), data)
    assert raised.value is error
    record = gitexp.get_run(logger.version)
    assert record.status == "FAILED" and record.params == {"seed": 1}
    assert record.meta["error"]["type"] == "Boom" and "out of memory, pretend" in record.meta["error"]["traceback"]
    assert [s for s, _ in steps_and_values(record, "loss")] == [0, 1]
