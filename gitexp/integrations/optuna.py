"""Optuna: each trial of a study a run, the study its experiment.

    from gitexp.integrations.optuna import track, best_run
    study = optuna.create_study(study_name="lr-search")
    study.optimize(track(objective), n_trials=20)
    print(best_run(study).id)

track(objective) runs each trial inside a run of its own (active while the objective runs, so
gitexp.log_metric and the other integrations' callbacks log into it), named `trial-<number>`
with the tags `optuna.study`, `optuna.trial` and `optuna.state`. When the trial ends it gets the
trial's params as params, the values it reported as the metric `intermediate` at their steps and
the objective's value as the metric `value` (`value_0`, `value_1`... for several objectives).
A pruned trial ends KILLED with `optuna.state: PRUNED`, a failed one FAILED with its error;
Optuna then handles the exception as it would without gitexp. The trial's run id is its user
attribute `gitexp.run`; best_run(study) reads the best trial's run.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from gitexp.errors import GitexpError
from gitexp.integrations.guard import report
from gitexp.integrations.values import number, plain
from gitexp.store.names import check_experiment
from gitexp.store.runs import RunRecord, get_run
from gitexp.tracking.liverun import Run
from gitexp.tracking.run import start_run

RUN_ATTRIBUTE = "gitexp.run"


def experiment_of(study: Any) -> str:
    """The study's name as an experiment name (characters a git ref cannot hold become '-')."""
    name = re.sub(r"[^A-Za-z0-9._/-]+", "-", str(study.study_name)).strip("-./") or "optuna"
    try:
        return check_experiment(name)
    except GitexpError:
        return "optuna"


def _finish(run: Run, trial: Any, value: Any) -> None:
    run.log_params({key: plain(v) for key, v in trial.params.items() if key not in run.params})
    frozen = [t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number]
    for step, reported in sorted(frozen[0].intermediate_values.items() if frozen else ()):
        run.log_metric("intermediate", float(reported), step=int(step))
    if value is None:
        return
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(values) == 1:
        run.log_metric("value", float(values[0]))
    else:
        run.log_metrics({f"value_{i}": float(v) for i, v in enumerate(values) if number(v) is not None})


def track(objective: Callable[[Any], Any], *, experiment: str | None = None,
          tags: dict[str, Any] | None = None) -> Callable[[Any], Any]:
    """*objective* with each call (a trial) inside a run of the study's experiment (or *experiment*)."""

    @functools.wraps(objective)
    def tracked(trial: Any) -> Any:
        run: Run | None = None
        try:
            run = start_run(name=f"trial-{trial.number}", experiment=experiment or experiment_of(trial.study),
                            tags={**(tags or {}), "optuna.study": trial.study.study_name, "optuna.trial": trial.number,
                                  "optuna.state": "RUNNING"})
            trial.set_user_attr(RUN_ATTRIBUTE, run.id)
        except Exception as exc:  # no run: the trial still runs
            report(tracked, "starting the trial's run", exc)
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            _end(run, trial, None, "PRUNED", "KILLED", None)
            raise
        except BaseException as exc:
            _end(run, trial, None, "FAIL", "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", exc)
            raise
        _end(run, trial, value, "COMPLETE", "FINISHED", None)
        return value

    return tracked


def _end(run: Run | None, trial: Any, value: Any, state: str, status: str, error: BaseException | None) -> None:
    if run is None:
        return
    try:
        try:
            _finish(run, trial, value)
            run.set_tag("optuna.state", state)
        finally:
            run.end(status, error)
    except Exception as exc:
        report(track, "ending the trial's run", exc)


def best_run(study: Any) -> RunRecord:
    """The run of the study's best trial (a study of one objective)."""
    trial = study.best_trial
    run_id = trial.user_attrs.get(RUN_ATTRIBUTE)
    if not run_id:
        raise GitexpError(f"the best trial of study {study.study_name!r} (number {trial.number}) has no gitexp run: "
                          "it did not run through gitexp.integrations.optuna.track(objective)")
    return get_run(run_id)
