"""Experiments through the drop-in: MLflow's experiment calls on gitexp's experiments.

An experiment id is the experiment's (gitexp) name; an experiment exists through its runs, or
for the rest of the process once set_experiment/create_experiment named it.
"""

from __future__ import annotations

from typing import Any

from gitexp.mlflow import entities, session
from gitexp.mlflow.exceptions import MlflowException


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None,
                   **_: Any) -> entities.Experiment:
    if experiment_id is not None and experiment_name is None:
        name = session.experiment_for(experiment_id)
    elif experiment_name is not None and experiment_id is None:
        name = session.experiment_name(experiment_name)
    else:
        raise MlflowException("set_experiment needs exactly one of experiment_name or experiment_id")
    session.create(name)
    session.set_current(name)
    return session.experiment(name)


def create_experiment(name: str, artifact_location: str | None = None,
                      tags: dict[str, Any] | None = None) -> str:
    gitexp_name = session.experiment_name(name)
    if session.exists(gitexp_name):
        raise MlflowException(f"Experiment {name!r} already exists.", "RESOURCE_ALREADY_EXISTS")
    return session.create(gitexp_name, tags)


def get_experiment_by_name(name: str) -> entities.Experiment | None:
    gitexp_name = session.experiment_name(name)
    return session.experiment(gitexp_name) if session.exists(gitexp_name) else None


def get_experiment(experiment_id: str) -> entities.Experiment:
    name = session.experiment_for_id(experiment_id) or session.current_resolved()
    if not session.exists(name):
        raise MlflowException(f"No Experiment with id={experiment_id} exists", "RESOURCE_DOES_NOT_EXIST")
    return session.experiment(name)


def set_experiment_tag(key: str, value: Any) -> None:
    session.create(session.current_resolved(), {key: value})
