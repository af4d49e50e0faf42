"""LightGBM: a callback that records `lightgbm.train` (or a scikit-learn estimator's fit) as a run.

    from gitexp.integrations.lightgbm import GitexpCallback
    with gitexp.start_run(experiment="gbm"):
        booster = lightgbm.train(params, train, 100, valid_sets=[valid], callbacks=[GitexpCallback()])

Every boosting round's evaluation results as `<data>/<metric>` (`valid_0/l2`) at the round's
number; the params given to train (as LightGBM hands them to callbacks) as params; the best
iteration so far and its score as the metrics `best_iteration` and `best_score`, logged each time
they change, from the first metric of the last validation set (the one early stopping watches).
LightGBM tells a callback nothing when training stops early or fails, so a run this callback
starts itself ends after the last round it was asked for, or at exit: inside a `with
gitexp.start_run()` block the run ends as training does, FAILED with the error if it raised.
"""

from __future__ import annotations

import math
from typing import Any

from gitexp.integrations.guard import guarded
from gitexp.integrations.holder import RunHolder
from gitexp.integrations.values import plain
from gitexp.tracking.liverun import Run


class GitexpCallback:
    order = 25  # after LightGBM's own log_evaluation (10), before early_stopping (30), which may raise
    before_iteration = False

    def __init__(self, run: Run | None = None, *, name: str | None = None, experiment: str | None = None,
                 params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None) -> None:
        self._holder = RunHolder(run, name=name, experiment=experiment, params=params, tags=tags)
        self._best = math.nan
        self._best_iteration = -1

    @property
    def run(self) -> Run | None:
        return self._holder.last

    @guarded
    def __call__(self, env: Any) -> None:
        run = self._holder.get()
        if env.iteration == env.begin_iteration:
            self._best, self._best_iteration = math.nan, -1
            known = run.params
            run.log_params({key: value for key, value in plain(dict(env.params)).items() if key not in known})
        values = {}
        watched: tuple[float, bool] | None = None
        watched_data = None
        for item in env.evaluation_result_list or ():
            data, metric, score, higher_better = item[0], item[1], float(item[2]), bool(item[3])
            values[f"{data}/{metric}"] = score
            if data != "training" and data != watched_data:  # the first metric of the last validation set
                watched, watched_data = (score, higher_better), data
        run.log_metrics(values, step=env.iteration)
        if watched is not None:
            score, higher = watched
            if math.isnan(self._best) or (score > self._best if higher else score < self._best):
                self._best, self._best_iteration = score, env.iteration
                run.log_metrics({"best_iteration": env.iteration, "best_score": score}, step=env.iteration)
        if env.iteration + 1 >= env.end_iteration:
            self._holder.end("FINISHED")
