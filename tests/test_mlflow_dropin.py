"""The drop-in against real MLflow: the same scripts, one changed import line, the same record.

Each script of tests/mlflow_support.py runs once with MLflow (file store) and once with
`import gitexp.mlflow as mlflow` in a git repository; both read back what they recorded
through the MLflow API, and the two are compared: params, metrics with steps (and timestamps
where the script gave them), tags, statuses, nesting, artifacts by name and content.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow", reason="MLflow is not installed; it is a test extra: pip install -e '.[test]'")

from tests.conftest import git
from tests.mlflow_support import MLFLOW_ENV, by_name, real_mlflow, run_script, script_text

EXPLICIT_TIMESTAMPS = ("stamped", "score", "batched")


def run_dropin(name: str, repo: Path, env: dict[str, str]) -> dict[str, Any]:
    git(repo, "config", "exp.systemMetricsInterval", "0")  # MLflow records no system metrics by default
    script = repo / f"train_{name}.py"
    script.write_text(script_text(name, drop_in=True))
    # A file: URI to a folder inside the repository (it need not exist) selects that repository.
    env = {**env, **MLFLOW_ENV, "MLFLOW_TRACKING_URI": (repo / "mlruns").as_uri()}
    return run_script(script, repo, env)


def _plain(value: Any) -> Any:
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def compare(real: dict[str, Any], ours: dict[str, Any], skip_artifacts: tuple[str, ...] = ()) -> None:
    theirs, mine = by_name(real), by_name(ours)
    assert sorted(mine) == sorted(theirs)
    for name, expected in theirs.items():
        got = mine[name]
        for key in ("status", "params", "tags", "parent", "experiment"):
            assert got[key] == expected[key], f"run {name}: {key} differs"
        assert {k: _plain(v) for k, v in got["metrics"].items()} == \
               {k: _plain(v) for k, v in expected["metrics"].items()}, f"run {name}: metrics differ"
        for key, history in expected["history"].items():
            assert [h[:2] for h in got["history"][key]] == [h[:2] for h in history], f"run {name}: {key} steps"
            if key in EXPLICIT_TIMESTAMPS:
                assert [h[2] for h in got["history"][key]] == [h[2] for h in history]
            else:
                # +1: gitexp truncates times in meta.yaml to the millisecond and rounds metric times
                assert all(got["start"] <= h[2] <= (got["end"] or h[2]) + 1 for h in got["history"][key]), \
                    f"run {name}: {key} logged at {got['history'][key]}, outside {got['start']}..{got['end']}"
        arts = {p: h for p, h in got["artifacts"].items() if not p.startswith(skip_artifacts)}
        assert arts == expected["artifacts"], f"run {name}: artifacts differ"
        assert got["start"] and (got["end"] is None) == (expected["end"] is None)
    assert ours["checks"] == real["checks"]


def test_basic_script_records_what_mlflow_records(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    real, _ = real_mlflow("basic")
    ours = run_dropin("basic", repo, env_for_subprocess)
    compare(real, ours)
    runs = by_name(ours)
    assert runs["parent"]["params"]["layers"] == "[64, 64]" and runs["child"]["parent"] == "parent"
    assert {runs[n]["status"] for n in ("broken", "stopped", "child")} == {"FAILED", "KILLED", "FINISHED"}
    assert ours["checks"]["param_change"] == "refused" and ours["checks"]["second_run"] == "refused"
    # The runs are gitexp runs: plain git sees them, in the experiments the script named.
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()
    assert {r.split("/")[2] for r in refs} == {"basic", "other"} and len(refs) == 5


def test_client_and_models_script(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    real, _ = real_mlflow("client_models")
    ours = run_dropin("client_models", repo, env_for_subprocess)
    # MLflow 3 keeps logged models outside the run's artifacts; the drop-in stores them in the run.
    compare(real, ours, skip_artifacts=("model/", "adder/"))
    arts = by_name(ours)["with-models"]["artifacts"]
    assert {"model/MLmodel", "model/model.pkl", "adder/MLmodel", "adder/python_model.pkl"} <= set(arts)
    assert ours["checks"]["sklearn_predict"] == [0, 0, 1, 1] and ours["checks"]["pyfunc_predict"] == [6, 7]


def test_autolog_records_what_it_can(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    real, _ = real_mlflow("autolog")
    ours = run_dropin("autolog", repo, env_for_subprocess)
    theirs, mine = by_name(real), by_name(ours)
    assert sorted(mine) == sorted(theirs) == ["classifier", "regressor"]
    for name in theirs:
        assert mine[name]["params"] == theirs[name]["params"]
        assert mine[name]["tags"]["estimator_name"] == theirs[name]["tags"]["estimator_name"]
        assert mine[name]["metrics"], f"autolog recorded no metric for {name}"
        for key, value in mine[name]["metrics"].items():
            assert key in theirs[name]["metrics"] and math.isclose(value, theirs[name]["metrics"][key])


def test_pytorch_flavour(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    pytest.importorskip("torch", reason="torch is not installed")
    real, _ = real_mlflow("torch")
    ours = run_dropin("torch", repo, env_for_subprocess)
    compare(real, ours, skip_artifacts=("net/",))
    assert ours["checks"]["same_output"] is True
    assert {"net/MLmodel", "net/data/model.pth"} <= set(by_name(ours)["net"]["artifacts"])
