"""A run's settings: git config exp.* read once when the run starts, overridden by start_run's keywords."""

from __future__ import annotations

from typing import TypedDict

from gitexp.git.repo import Repo
from gitexp.tracking import env as env_mod


class RunSettings(TypedDict):
    """What a live run is configured with (gitexp/tracking/liverun.py keeps it)."""

    flush_interval: float  # exp.flushInterval: seconds between the background thread's flushes
    checkpoint_interval: float  # exp.checkpointInterval: seconds between checkpoint commits (at least)
    system_interval: float  # exp.systemMetricsInterval: seconds between system metrics; 0: none
    max_snapshot: float  # exp.snapshotMaxSize: bytes over which a file is left out of the code snapshot
    capture_env: bool  # exp.captureEnv: record the environment (env.yaml)
    capture_code: bool  # exp.captureCode: snapshot the working tree (code/)
    env_variables: list[str]  # exp.envVariables: environment variables recorded by name


class Overrides(TypedDict, total=False):
    """start_run's keywords for the settings; None (or no key) leaves the git config value."""

    flush_interval: float | None
    checkpoint_interval: float | None
    system_interval: float | None
    capture_env: bool | None
    capture_code: bool | None


def read_settings(repo: Repo, overrides: Overrides) -> RunSettings:
    """The settings of a run in *repo*: each override that is not None, else the git config value."""
    flush, checkpoint, system = (overrides.get("flush_interval"), overrides.get("checkpoint_interval"),
                                 overrides.get("system_interval"))
    capture_env, capture_code = overrides.get("capture_env"), overrides.get("capture_code")
    return {
        "flush_interval": repo.config_number("exp.flushInterval", 1.0) if flush is None else flush,
        "checkpoint_interval": repo.config_number("exp.checkpointInterval", 30.0) if checkpoint is None else checkpoint,
        "system_interval": repo.config_number("exp.systemMetricsInterval", 10.0) if system is None else system,
        "max_snapshot": repo.config_number("exp.snapshotMaxSize", 10 * 2**20),
        "capture_env": repo.config_bool("exp.captureEnv", True) if capture_env is None else capture_env,
        "capture_code": repo.config_bool("exp.captureCode", True) if capture_code is None else capture_code,
        "env_variables": env_mod.parse_variable_list(repo.config("exp.envVariables")),
    }
