"""autolog for the drop-in: what it can record it records; the rest is a warning, never an error.

scikit-learn is supported: every estimator's fit logs its params (get_params), training metrics
and, with log_models, the fitted model, in the active run (or a run of its own, as MLflow does).
Other libraries MLflow autologs (Keras, XGBoost, LightGBM, Lightning...) get one warning saying
to log explicitly. Patching happens when scikit-learn is imported, so calling autolog first is cheap.

mlflow.sklearn.autolog (gitexp/mlflow/sklearn.py) turns scikit-learn on, handing in how its models
are logged; mlflow.autolog (gitexp/mlflow/__init__.py) calls it, then warn_unsupported.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

# log_model(model, name=...): how a flavour logs a fitted model (mlflow.sklearn.log_model).
ModelLogger = Callable[..., Any]

SUPPORTED = ("sklearn",)
UNSUPPORTED = ("tensorflow", "keras", "xgboost", "lightgbm", "pytorch_lightning", "lightning", "torch",
               "transformers", "statsmodels", "spark", "pyspark", "fastai", "paddle", "openai", "langchain")
_config: dict[str, dict[str, Any]] = {}
_patched: set[str] = set()
_warned: set[str] = set()
_state = threading.local()


def _warn(message: str, silent: bool = False) -> None:
    if not silent and message not in _warned:
        _warned.add(message)
        warnings.warn(f"gitexp.mlflow: {message}", UserWarning, stacklevel=4)


def _unsupported(library: str) -> str:
    return (f"autolog for {library} is not supported; its params and metrics are not recorded automatically: "
            "log them with mlflow.log_param/log_metric")


def enable(library: str, disable: bool = False, log_models: bool = True, silent: bool = False,
           log_model: ModelLogger | None = None) -> None:
    """Turn autologging of *library* on (or off with disable=True); never raises. *log_model* logs
    a fitted model when log_models is true (none: models are not logged)."""
    try:
        if library not in SUPPORTED:
            if not disable:
                _warn(_unsupported(library), silent)
            return
        _config[library] = {"disable": disable, "log_models": log_models, "silent": silent, "log_model": log_model}
        if disable:  # patched estimators pass through; a pending import hook is no longer needed
            sys.meta_path[:] = [f for f in sys.meta_path if not (isinstance(f, _Hook) and f.name == library)]
        else:
            _when_imported(library, _patch_sklearn)
    except Exception as exc:  # autolog must never fail the script
        _warn(f"autolog for {library} could not be set up ({exc}); nothing is logged automatically", silent)


def warn_unsupported(silent: bool = False) -> None:
    """mlflow.autolog()'s warning for each library it cannot autolog that is present."""
    for name in UNSUPPORTED:
        try:
            present = name in sys.modules or importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            present = False
        if present:
            _warn(_unsupported(name), silent)


class _Hook(importlib.abc.MetaPathFinder):
    """Runs a callback right after a module is first imported (it leaves sys.meta_path then)."""

    def __init__(self, name: str, callback: Any) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, callback = spec.loader, self.callback
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            callback()
        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _when_imported(name: str, callback: Any) -> None:
    if name in sys.modules:
        callback()
    elif not any(isinstance(f, _Hook) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook(name, callback))


def _patch_sklearn() -> None:
    if "sklearn" in _patched:
        return
    _patched.add("sklearn")
    try:
        from sklearn.utils import all_estimators

        for _, cls in all_estimators():
            fit = cls.__dict__.get("fit")
            if fit is not None and not getattr(fit, "_gitexp_autolog", False):
                cls.fit = _wrap_fit(fit)
    except Exception as exc:
        _warn(f"autolog for sklearn could not patch the estimators ({exc}); nothing is logged automatically")


def _wrap_fit(original: Any) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        conf = _config.get("sklearn", {})
        if conf.get("disable", True) or getattr(_state, "depth", 0):
            return original(self, *args, **kwargs)  # a meta-estimator's inner fits are part of the outer one
        _state.depth = 1
        try:
            return _logged_fit(original, self, args, kwargs, conf)
        finally:
            _state.depth = 0
    fit._gitexp_autolog = True  # type: ignore[attr-defined]
    return fit


def _logged_fit(original: Any, estimator: Any, args: tuple, kwargs: dict, conf: dict[str, Any]) -> Any:
    from gitexp.mlflow import fluent

    own = None
    try:
        if fluent.active_run() is None:
            own = fluent.start_run()
        fluent.log_params(estimator.get_params(deep=True))
        fluent.set_tags({"estimator_name": type(estimator).__name__,
                         "estimator_class": f"{type(estimator).__module__}.{type(estimator).__qualname__}"})
    except Exception as exc:
        _warn(f"autolog could not record the params of {type(estimator).__name__} ({exc})", conf.get("silent", False))
    try:
        result = original(estimator, *args, **kwargs)
    except BaseException:
        if own is not None:
            fluent.end_run("FAILED")
        raise
    try:
        _training_metrics(estimator, args, kwargs)
        log_model = conf.get("log_model")
        if conf.get("log_models", True) and log_model is not None:
            log_model(estimator, name="model")
    except Exception as exc:
        _warn(f"autolog could not record the metrics or model of {type(estimator).__name__} ({exc})",
              conf.get("silent", False))
    if own is not None:
        fluent.end_run()
    return result


def _training_metrics(estimator: Any, args: tuple, kwargs: dict) -> None:
    """MLflow's training_* metrics: the estimator's score, and the usual metrics of its kind."""
    from sklearn import base, metrics

    from gitexp.mlflow import fluent

    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    if X is None or y is None or not hasattr(estimator, "predict"):
        return
    found = {"training_score": estimator.score(X, y)} if hasattr(estimator, "score") else {}
    predicted = estimator.predict(X)
    if base.is_classifier(estimator):
        found.update({"training_accuracy_score": metrics.accuracy_score(y, predicted),
                      "training_precision_score": metrics.precision_score(y, predicted, average="weighted",
                                                                          zero_division=0),
                      "training_recall_score": metrics.recall_score(y, predicted, average="weighted", zero_division=0),
                      "training_f1_score": metrics.f1_score(y, predicted, average="weighted", zero_division=0)})
    elif base.is_regressor(estimator):
        mse = metrics.mean_squared_error(y, predicted)
        found.update({"training_mean_squared_error": mse, "training_root_mean_squared_error": mse ** 0.5,
                      "training_mean_absolute_error": metrics.mean_absolute_error(y, predicted),
                      "training_r2_score": metrics.r2_score(y, predicted)})
    fluent.log_metrics({k: float(v) for k, v in found.items()})
