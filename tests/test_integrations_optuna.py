"""gitexp.integrations.optuna against a real Optuna study."""

from __future__ import annotations

from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="Optuna is not installed (pip install -e '.[test-integrations]')")

import gitexp  # noqa: E402
from gitexp.integrations.optuna import best_run, track  # noqa: E402
from tests.integration_examples import run_example, steps_and_values  # noqa: E402


def test_the_documented_study_is_an_experiment_with_a_run_per_trial_one_pruned(repo: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = run_example("Optuna")["study"]
    runs = {r.name: r for r in gitexp.load_runs(experiment="optuna-demo")}
    assert sorted(runs) == [f"trial-{n}" for n in range(5)]
    states = {trial.number: trial.state.name for trial in study.trials}
    assert sorted(states.values()) == ["COMPLETE"] * 4 + ["PRUNED"]
    for trial in study.trials:
        record = runs[f"trial-{trial.number}"]
        assert record.params == trial.params and record.tags["optuna.trial"] == str(trial.number)
        assert record.tags["optuna.study"] == "optuna-demo" and record.tags["optuna.state"] == states[trial.number]
        assert trial.user_attrs["gitexp.run"] == record.id
        assert steps_and_values(record, "intermediate") == sorted(trial.intermediate_values.items())
        if trial.state.name == "PRUNED":
            assert record.status == "KILLED" and "value" not in record.metrics and "error" not in record.meta
        else:
            assert record.status == "FINISHED" and steps_and_values(record, "value") == [(0, trial.value)]
    assert best_run(study).name == f"trial-{study.best_trial.number}"


def test_an_objective_raising_ends_its_run_failed_and_the_error_reaches_the_caller_unchanged(repo: Path) -> None:
    error = RuntimeError("diverged")

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("layers", 1, 3)
        gitexp.log_metric("loss", 2.5)  # the trial's run is the active run
        raise error

    study = optuna.create_study(study_name="failing study!")
    with pytest.raises(RuntimeError) as raised:
        study.optimize(track(objective), n_trials=1)
    assert raised.value is error
    (record,) = gitexp.load_runs(experiment="failing-study")
    assert record.status == "FAILED" and record.meta["error"]["message"] == "diverged"
    assert record.tags["optuna.state"] == "FAIL" and "layers" in record.params
    assert steps_and_values(record, "loss") == [(0, 2.5)]
