"""gitexp.integrations.transformers against a real Trainer on a tiny BERT made from a config."""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers",
                                   reason="Transformers is not installed (pip install -e '.[test-integrations]')")

import gitexp  # noqa: E402
from tests.integration_examples import run_example, steps_and_values  # noqa: E402


def test_the_documented_trainer_logs_its_arguments_every_logged_step_the_model_and_a_later_evaluation(
        repo: Path) -> None:
    trainer = run_example("Hugging Face Transformers")["trainer"]
    (record,) = gitexp.load_runs(experiment="transformers-demo")
    assert record.status == "FINISHED"
    assert record.params["learning_rate"] == 1e-3 and record.params["num_train_epochs"] == 2
    assert record.params["output_dir"] == "hf-out" and record.params["model_config"]["hidden_size"] == 16
    logged: dict[str, list[tuple[int, float]]] = {}
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if key != "step" and isinstance(value, (int, float)):
                logged.setdefault(key, []).append((entry["step"], float(value)))
    assert [s for s, _ in logged["loss"]] == list(range(1, 9))  # 16 examples, batches of 4, 2 epochs
    assert [s for s, _ in logged["eval_loss"]] == [4, 8]
    for key, expected in logged.items():
        assert steps_and_values(record, key) == expected, key
    paths = {a.path for a in record.artifacts}
    assert {"model/config.json", "model/model.safetensors"} <= paths

    # an evaluation after training goes into the same run, resumed and ended again
    trainer.evaluate()
    (record,) = gitexp.load_runs(experiment="transformers-demo")
    assert record.status == "FINISHED"
    assert [s for s, _ in steps_and_values(record, "eval_loss")] == [4, 8, 8]
