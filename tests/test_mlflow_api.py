"""The drop-in's own behaviour, in process (MLflow itself is not needed): URIs, experiments,
filter translation, params as MLflow has them, nesting, the client, models and images."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import gitexp.mlflow as mlflow
from gitexp.errors import NotARepositoryError
from gitexp.mlflow import filters, images, session
from gitexp.store import query
from gitexp.tracking import run as tracking
from tests.conftest import git


@pytest.fixture(autouse=True)
def fresh(repo: Path) -> Iterator[Path]:
    git(repo, "config", "exp.systemMetricsInterval", "0")
    session.reset()
    yield repo
    while tracking.stack:
        tracking.stack[-1].end()
    session.reset()


def show(repo: Path, run_id: str, path: str) -> object:
    ref = next(r for r in git(repo, "for-each-ref", "--format=%(refname)").split() if r.endswith(run_id))
    return yaml.safe_load(git(repo, "show", f"{ref}:{path}"))


@pytest.mark.parametrize("mlflow_filter, gitexp_query", [
    ("metrics.acc > 0.9 and params.lr = '0.1'", "metrics.acc > 0.9 and params.lr = '0.1'"),
    ("metrics.`val/acc` >= 1 AND tags.`my tag` != \"x\"", "metrics.`val/acc` >= 1 and tags.`my tag` != 'x'"),
    ("attributes.status = 'FINISHED'", "status = 'FINISHED'"),
    ("attribute.status = 'FAILED'", "status in ('FAILED', 'CRASHED')"),
    ("run.run_name LIKE 'a%'", "name like 'a%'"),
    ("tags.mlflow.runName ILIKE 'ab_'", "name glob '[aA][bB]?'"),
    ("tags.mlflow.parentRunId = 'x'", "meta.parent_run = 'x'"),
    ("params.opt IN ('adam', 'sgd')", "params.opt in ('adam', 'sgd')"),
    ("params.opt NOT IN ('sgd')", "params.opt not in ('sgd')"),
    ("tags.x IS NULL or tags.y IS NOT NULL", "tags.x is null or tags.y is not null"),
    ("attributes.start_time > 1700000000000", "start > 2023-11-14T22:13:20+00:00"),
])
def test_filter_translation(mlflow_filter: str, gitexp_query: str) -> None:
    assert filters.translate(mlflow_filter) == query.parse(gitexp_query)


@pytest.mark.parametrize("bad, says", [
    ("metrics.acc >", "expected a value"),
    ("acc > 1", "is not a key"),
    ("attributes.colour = 'red'", "unknown attribute 'colour'"),
    ("metrics.acc ~ 1", "cannot read"),
    ("params.a = 'x' params.b = 'y'", "join clauses with AND"),
])
def test_bad_filters_say_what_is_wrong(bad: str, says: str) -> None:
    with pytest.raises(mlflow.MlflowException, match="invalid MLflow filter") as caught:
        filters.translate(bad)
    assert says in str(caught.value) and repr(bad) in str(caught.value)


def test_order_by_translation() -> None:
    assert filters.translate_order(["metrics.acc DESC", "attributes.start_time", "params.`a b` ASC", "run_name"]) \
        == ["-metrics.acc", "start", "params.`a b`", "name"]


def test_tracking_uris(repo: Path, tmp_path: Path) -> None:
    for uri in ("http://localhost:5000", "sqlite:///mlflow.db", "databricks://profile"):
        with pytest.raises(mlflow.MlflowException, match=r"not supported by gitexp\.mlflow") as caught:
            mlflow.set_tracking_uri(uri)
        assert repr(uri) in str(caught.value) and "git exp import mlflow" in str(caught.value)
    with pytest.raises(mlflow.MlflowException, match="names host"):
        mlflow.set_tracking_uri("file://server/share/mlruns")
    mlflow.set_tracking_uri((repo / "mlruns" / "deeper").as_uri())  # need not exist
    assert mlflow.get_tracking_uri() == (repo / "mlruns" / "deeper").as_uri()
    assert session.repo().workdir.resolve() == repo.resolve()
    session.reset()
    assert mlflow.get_tracking_uri() == repo.resolve().as_uri()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    mlflow.set_tracking_uri(str(outside))
    with pytest.raises(NotARepositoryError, match="not a git repository"):
        mlflow.start_run()


def test_experiment_names_git_refuses_are_mapped(repo: Path) -> None:
    with pytest.warns(UserWarning, match="'My Exp: v1' is stored as 'My-Exp-v1'"):
        experiment = mlflow.set_experiment("My Exp: v1")
    assert experiment.experiment_id == experiment.name == "My-Exp-v1"
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == "My-Exp-v1"
    assert mlflow.get_experiment_by_name("My Exp: v1").name == "My-Exp-v1"
    assert mlflow.set_experiment("Default").name == "default"


def test_params_metrics_and_nesting_as_mlflow_has_them(repo: Path) -> None:
    with mlflow.start_run(run_name="outer") as outer:
        mlflow.log_params({"lr": 0.1, "layers": (64, 64), "opt": "adam"})
        mlflow.log_metric("loss", 0.5)  # no step: MLflow's step 0
        mlflow.log_metric("loss", 0.25, timestamp=1700000000500)
        with mlflow.start_run(run_name="inner", nested=True) as inner:
            mlflow.set_tag("mlflow.runName", "renamed")
    assert show(repo, outer.info.run_id, "params.yaml") == {"lr": 0.1, "layers": "(64, 64)", "opt": "adam"}
    assert mlflow.get_run(outer.info.run_id).data.params == {"lr": "0.1", "layers": "(64, 64)", "opt": "adam"}
    history = mlflow.MlflowClient().get_metric_history(outer.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (0, 0.25)] and history[1].timestamp == 1700000000500
    meta = show(repo, inner.info.run_id, "meta.yaml")
    assert meta["parent_run"] == outer.info.run_id and meta["name"] == "renamed"
    child = mlflow.get_run(inner.info.run_id)
    assert child.data.tags["mlflow.parentRunId"] == outer.info.run_id and child.info.run_name == "renamed"


def test_client_runs_are_not_active_until_asked(repo: Path) -> None:
    client = mlflow.MlflowClient()
    run = client.create_run("0", run_name="by-id", start_time=1700000000000)
    assert mlflow.active_run() is None and run.info.start_time == 1700000000000
    client.log_metric(run.info.run_id, "m", 1.0, step=4)
    client.set_terminated(run.info.run_id, "KILLED")
    found = client.search_runs(["0"], "metrics.m = 1", order_by=["metrics.m DESC"])
    assert [r.info.status for r in found] == ["KILLED"] and found.token is None
    with mlflow.start_run(run_id=run.info.run_id):  # reopens it: new commits on the same ref
        mlflow.log_metric("m", 2.0, step=5)
    again = client.get_run(run.info.run_id)
    assert again.info.status == "FINISHED" and again.data.metrics == {"m": 2.0}
    with pytest.raises(mlflow.MlflowException, match="not found"):
        client.get_run("20200101-000000000000000")


def test_search_runs_sees_live_runs_and_returns_frames(repo: Path) -> None:
    pd = pytest.importorskip("pandas")
    with mlflow.start_run(run_name="live"):
        mlflow.log_metric("acc", 0.75)
        found = mlflow.search_runs(filter_string="metrics.acc > 0.5")
        assert isinstance(found, pd.DataFrame) and list(found["metrics.acc"]) == [0.75]
        assert list(found.columns[:6]) == ["run_id", "experiment_id", "status", "artifact_uri", "start_time",
                                           "end_time"]
    assert mlflow.search_runs(filter_string="metrics.acc > 0.9", output_format="list") == []


def test_models_load_back_from_their_uri(repo: Path) -> None:
    with mlflow.start_run():
        info = mlflow.sklearn.log_model({"weights": [1, 2]}, name="model")
        assert mlflow.sklearn.load_model(info.model_uri) == {"weights": [1, 2]}
    assert info.model_uri.startswith("runs:/") and mlflow.sklearn.load_model(info.model_uri) == {"weights": [1, 2]}
    with pytest.raises(mlflow.MlflowException, match="model registry"):
        mlflow.sklearn.load_model("models:/my-model/1")
    with pytest.raises(mlflow.MlflowException, match="no 'pytorch' flavour"):
        mlflow.pytorch.load_model(info.model_uri)


def test_log_image_without_pillow_is_a_valid_png(repo: Path) -> None:
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("PIL.Image")
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    import io

    decoded = np.asarray(image.open(io.BytesIO(images.png_bytes(pixels))))
    assert (decoded == pixels).all()
    with pytest.raises(mlflow.MlflowException, match=r"\[0, 255\]"):
        images.to_uint8(np.array([[300]]))


def test_autolog_never_fails_the_script(repo: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlflow.autolog(log_models=False)
        from gitexp.mlflow import autologging

        autologging.enable("tensorflow")
    mlflow.autolog(disable=True)  # leave this test process's estimators as they were
    assert any("autolog for tensorflow is not supported" in str(w.message) for w in caught)
