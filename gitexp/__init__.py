"""gitexp: experiment tracking with git as the database.

    import gitexp
    with gitexp.start_run(experiment="cnn", params={"lr": 0.01}) as run:
        run.log_metric("loss", 0.5, step=0)

Names are imported on first use so that `import gitexp` stays cheap in a training script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitexp.errors import GitexpError

__version__ = "0.1.0"

_LAZY = {
    "Run": "tracking", "start_run": "tracking", "active_run": "tracking", "end_run": "tracking",
    "flush": "tracking", "log_metric": "tracking", "log_metrics": "tracking", "log_param": "tracking",
    "log_params": "tracking", "set_tag": "tracking", "set_tags": "tracking", "params": "tracking",
    "load_runs": "runs", "get_run": "runs", "RunRecord": "runs",
    "search_runs": "search", "plot": "plots",
}

__all__ = [
    "GitexpError", "Run", "RunRecord", "__version__", "active_run", "end_run", "flush", "get_run",
    "load_runs", "log_metric", "log_metrics", "log_param", "log_params", "params", "plot", "search_runs", "set_tag",
    "set_tags", "start_run",
]

if TYPE_CHECKING:
    from gitexp.plots import plot
    from gitexp.runs import RunRecord, get_run, load_runs
    from gitexp.search import search_runs
    from gitexp.tracking import (
        Run,
        active_run,
        end_run,
        flush,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        params,
        set_tag,
        set_tags,
        start_run,
    )

# Artifacts and inputs (gitexp/artifacts.py, gitexp/inputs.py, gitexp/restore.py).
_ARTIFACT_NAMES = ("log_artifact", "log_artifacts", "log_text", "log_dict", "log_figure", "log_model", "log_input")
_LAZY.update({name: "tracking" for name in _ARTIFACT_NAMES})
_LAZY["download_artifacts"] = "restore"
__all__ += ["download_artifacts", "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_input", "log_model",
            "log_text"]

if TYPE_CHECKING:
    from gitexp.restore import download_artifacts
    from gitexp.tracking import (
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_input,
        log_model,
        log_text,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"gitexp.{module}"), name)
    globals()[name] = value
    return value
