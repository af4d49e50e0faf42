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
    "Run": "tracking.liverun", "start_run": "tracking.run", "active_run": "tracking.run", "end_run": "tracking.run",
    "flush": "tracking.run", "log_metric": "tracking.run", "log_metrics": "tracking.run", "log_param": "tracking.run",
    "log_params": "tracking.run", "set_tag": "tracking.run", "set_tags": "tracking.run", "params": "tracking.run",
    "load_runs": "store.runs", "get_run": "store.runs", "RunRecord": "store.runs",
    "search_runs": "store.search", "plot": "views.plots",
}

__all__ = [
    "GitexpError", "Run", "RunRecord", "__version__", "active_run", "end_run", "flush", "get_run",
    "load_runs", "log_metric", "log_metrics", "log_param", "log_params", "params", "plot", "search_runs", "set_tag",
    "set_tags", "start_run",
]

if TYPE_CHECKING:
    from gitexp.store.runs import RunRecord, get_run, load_runs
    from gitexp.store.search import search_runs
    from gitexp.tracking.liverun import Run
    from gitexp.tracking.run import (
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
    from gitexp.views.plots import plot

# Artifacts and inputs (gitexp/store/artifacts.py, gitexp/tracking/inputs.py, gitexp/ops/restore.py).
_ARTIFACT_NAMES = ("log_artifact", "log_artifacts", "log_text", "log_dict", "log_figure", "log_model", "log_input")
_LAZY.update({name: "tracking.run" for name in _ARTIFACT_NAMES})
_LAZY["download_artifacts"] = "ops.restore"
__all__ += ["download_artifacts", "log_artifact", "log_artifacts", "log_dict", "log_figure", "log_input", "log_model",
            "log_text"]

if TYPE_CHECKING:
    from gitexp.ops.restore import download_artifacts
    from gitexp.tracking.run import (
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
