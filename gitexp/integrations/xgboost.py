"""XGBoost: a TrainingCallback that records `xgboost.train` (or a scikit-learn estimator's fit) as
a run.

    from gitexp.integrations.xgboost import GitexpCallback
    booster = xgboost.train(params, dtrain, 50, evals=[(dvalid, "valid")], callbacks=[GitexpCallback()])

Every boosting round's evaluation results as `<data>/<metric>` (`valid/rmse`) at the round's
number; the booster's params (its learner configuration, as `Booster.save_config` gives it) as
the param `booster`; at the end the best iteration and score as the metrics `best_iteration`
and `best_score`, from early stopping where it ran, else from the last evaluation set's first
metric.
"""

from __future__ import annotations

import json
from typing import Any

import xgboost

from gitexp.integrations.guard import guarded
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import plain
from gitexp.tracking.liverun import Run

_HIGHER_IS_BETTER = ("auc", "aucpr", "map", "ndcg", "pre")


def _best(evals_log: dict[str, dict[str, list[Any]]]) -> tuple[int, float] | None:
    """(round, score) of the best value of the last evaluation set's first metric, as early stopping picks."""
    if not evals_log:
        return None
    metrics = evals_log[next(reversed(evals_log))]
    if not metrics:
        return None
    metric = next(iter(metrics))
    scores = [float(v[0] if isinstance(v, tuple) else v) for v in metrics[metric]]
    if not scores:
        return None
    pick = max if metric.split("@")[0] in _HIGHER_IS_BETTER else min
    best = pick(range(len(scores)), key=scores.__getitem__)
    return best, scores[best]


class GitexpCallback(xgboost.callback.TrainingCallback):
    def __init__(self, run: Run | None = None, *, name: str | None = None, experiment: str | None = None,
                 params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._holder = RunHolder(run, name=name, experiment=experiment, params=params, tags=tags)
        self._evals_log: dict[str, dict[str, list[Any]]] = {}

    @property
    def run(self) -> Run | None:
        return self._holder.last

    @guarded
    def before_training(self, model: Any) -> Any:
        run = self._holder.get()
        if "booster" not in run.params and hasattr(model, "save_config"):
            run.log_params({"booster": plain(json.loads(model.save_config()).get("learner", {}))})
        return model

    @guarded
    def _log_round(self, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> None:
        values = {}
        for data, metrics in evals_log.items():
            for metric, history in metrics.items():
                if history:
                    last = history[-1]
                    values[f"{data}/{metric}"] = float(last[0] if isinstance(last, tuple) else last)
        self._holder.get().log_metrics(values, step=epoch)

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
        self._evals_log = evals_log
        self._log_round(epoch, evals_log)
        return False  # never stops training

    @guarded
    def _log_best(self, model: Any) -> None:
        run = self._holder.get()
        attributes = model.attributes() if hasattr(model, "attributes") else {}
        if "best_iteration" in attributes:
            best: tuple[int, float] | None = (int(attributes["best_iteration"]), float(attributes["best_score"]))
        else:
            best = _best(self._evals_log)
        if best is not None:
            run.log_metrics({"best_iteration": best[0], "best_score": best[1]}, step=best[0])

    @guarded
    def _end(self) -> None:
        self._holder.end("FINISHED")

    def after_training(self, model: Any) -> Any:
        self._log_best(model)
        self._end()
        return model
