"""MLflow-style scripts for the drop-in and importer tests, and how to run and compare them.

Each script is ordinary MLflow code. It is run once with real MLflow (a subprocess, file store
or sqlite database in a temporary folder) and once with `import gitexp.mlflow as mlflow` swapped
in; the same DUMP code at its end reads back, through the MLflow API, what was recorded and
prints it as JSON, so both sides are read the same way.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

MLFLOW_ENV = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
              "PYTHONWARNINGS": "ignore"}

BASIC = '''
import os, tempfile
import mlflow

mlflow.set_experiment("basic")
files = tempfile.mkdtemp()
with open(os.path.join(files, "notes.txt"), "w") as f:
    f.write("some notes\\n")
os.makedirs(os.path.join(files, "outputs", "deep"))
for name, text in (("a.txt", "A"), ("deep/b.csv", "x,y\\n1,2\\n")):
    with open(os.path.join(files, "outputs", name), "w") as f:
        f.write(text)

try:
    mlflow.start_run(run_name="refused", tags={"mlflow.note.content": "a"}, description="b")
except mlflow.exceptions.MlflowException:
    CHECKS["two_descriptions"] = "refused"
with mlflow.start_run(run_name="parent", tags={"team": "vision"}, description="the parent run") as parent:
    assert mlflow.log_param("lr", 0.01) == 0.01
    mlflow.log_params({"batch_size": 32, "optimizer": "adam", "layers": [64, 64], "cfg": {"a": 1},
                       "flag": True, "nothing": None, "tiny": 1e-05})
    mlflow.log_param("lr", "0.01")  # the same value as a string: allowed
    try:
        mlflow.log_param("lr", 0.02)
        CHECKS["param_change"] = "accepted"
    except mlflow.exceptions.MlflowException:
        CHECKS["param_change"] = "refused"
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": step / 10, "val/acc": step / 20}, step=step)
    mlflow.log_metric("no_step", 3.5)
    mlflow.log_metric("no_step", 4.5)
    mlflow.log_metric("stamped", 7.0, step=2, timestamp=1700000000123)
    mlflow.log_metric("weird", float("nan"), step=1)
    mlflow.set_tag("stage", "dev")
    mlflow.set_tags({"dataset": "cifar10", "seed": 42})
    mlflow.log_text("hello\\n", "texts/hello.txt")
    mlflow.log_dict({"b": [1, 2], "a": {"c": "d"}}, "config.json")
    mlflow.log_dict({"b": [1, 2], "a": {"c": "d"}}, "config.yaml")
    mlflow.log_artifact(os.path.join(files, "notes.txt"))
    mlflow.log_artifact(os.path.join(files, "notes.txt"), artifact_path="copies")
    mlflow.log_artifacts(os.path.join(files, "outputs"), artifact_path="outputs")
    live = mlflow.get_run(parent.info.run_id)
    CHECKS["live_params"] = live.data.params["lr"]
    CHECKS["live_metric"] = live.data.metrics["loss"]
    CHECKS["active_status"] = mlflow.active_run().info.status
    with mlflow.start_run(run_name="child", nested=True):
        mlflow.log_metric("child_metric", 1.5, step=3)
        mlflow.log_param("depth", 2)
    try:
        mlflow.start_run(run_name="not-nested")
        CHECKS["second_run"] = "started"
    except Exception:
        CHECKS["second_run"] = "refused"

try:
    with mlflow.start_run(run_name="broken"):
        mlflow.log_metric("before_failure", 1.0)
        raise ValueError("boom")
except ValueError:
    pass

mlflow.start_run(run_name="stopped")
mlflow.log_param("reason", "manual")
mlflow.end_run(status="KILLED")
CHECKS["last_active"] = mlflow.last_active_run().info.run_name

mlflow.set_experiment("other")
run = mlflow.start_run(run_name="plain-call")
mlflow.log_metric("m", 2.0, step=0)
mlflow.end_run()
mlflow.set_experiment("basic")

QUERIES = {
    "metrics": "metrics.loss < 0.5",
    "params": "params.lr = '0.01' and params.optimizer = 'adam'",
    "tags": "tags.team = 'vision'",
    "status": "attributes.status = 'FAILED'",
    "status_in": f"attributes.run_id IN ('{parent.info.run_id}', '{run.info.run_id}')",
    "like": "attributes.run_name LIKE 'pa%'",
    "ilike": "attributes.run_name ILIKE '%ROKEN'",
    "backtick": "metrics.`val/acc` >= 0.2",
    "tag_not": "tags.stage != 'prod'",
    "name_tag": "tags.mlflow.runName = 'child'",
    "start": "attributes.start_time > 1000",
}
for label, text in QUERIES.items():
    CHECKS["query " + label] = sorted(r.info.run_name for r in mlflow.search_runs(
        filter_string=text, output_format="list"))
ordered = mlflow.search_runs(order_by=["metrics.before_failure DESC", "attributes.run_name ASC"],
                             output_format="list")
CHECKS["ordered"] = [r.info.run_name for r in ordered]
frame = mlflow.search_runs(filter_string="params.lr = '0.01'")
CHECKS["frame"] = [sorted(c for c in frame.columns if not c.startswith("tags.mlflow")), list(frame["params.lr"])]
'''

CLIENT_MODELS = '''
import os, tempfile
import numpy as np
import mlflow
import mlflow.sklearn
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from sklearn.linear_model import LogisticRegression

client = MlflowClient()
exp_id = client.create_experiment("client-exp")
CHECKS["exp_by_name"] = client.get_experiment_by_name("client-exp").name
run = client.create_run(exp_id, run_name="from-client", tags={"origin": "client"})
rid = run.info.run_id
client.log_param(rid, "alpha", 0.5)
client.log_metric(rid, "score", 0.25, timestamp=1700000000000, step=1)
client.log_metric(rid, "score", 0.75, timestamp=1700000001000, step=2)
client.log_batch(rid, metrics=[Metric("batched", 1.0, 1700000002000, 0), Metric("batched", 2.0, 1700000003000, 1)],
                 params=[Param("beta", "x")], tags=[RunTag("kind", "batch")])
client.set_tag(rid, "extra", "yes")
CHECKS["history"] = [(m.step, m.value, m.timestamp) for m in client.get_metric_history(rid, "score")]
client.set_terminated(rid, status="FINISHED")
CHECKS["client_status"] = client.get_run(rid).info.status

with mlflow.start_run(run_id=rid):  # reopen the client's run through the fluent API
    mlflow.log_metric("reopened", 1.0, step=0)

mlflow.set_experiment("models")
X = np.array([[0.0], [1.0], [2.0], [3.0]])
y = np.array([0, 0, 1, 1])

class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n

    def predict(self, context, model_input, params=None):
        return [x + self.n for x in model_input]

with mlflow.start_run(run_name="with-models") as run:
    model = LogisticRegression().fit(X, y)
    info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    loaded = mlflow.sklearn.load_model(info.model_uri)
    CHECKS["sklearn_predict"] = loaded.predict(X).tolist()
    CHECKS["pyfunc_of_sklearn"] = [int(v) for v in mlflow.pyfunc.load_model(info.model_uri).predict(X)]
    pinfo = mlflow.pyfunc.log_model(name="adder", python_model=AddN(5), pip_requirements=[])
    CHECKS["pyfunc_predict"] = mlflow.pyfunc.load_model(pinfo.model_uri).predict([1, 2])
    mlflow.log_image(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), "images/array.png")
    mlflow.log_image(np.linspace(0, 1, 16).reshape(4, 4), "images/gray.png")
    from PIL import Image
    mlflow.log_image(Image.new("RGB", (3, 2), (10, 20, 30)), "images/pil.png")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    mlflow.log_figure(fig, "figures/line.png")
    import pandas as pd
    dataset = mlflow.data.from_pandas(pd.DataFrame({"a": [1, 2]}), source="data.csv", name="train")
    mlflow.log_input(dataset, context="training")
    mlflow.log_metric("acc", float(model.score(X, y)))
'''

AUTOLOG = '''
import warnings
import numpy as np
import mlflow
import mlflow.sklearn
from sklearn.linear_model import LinearRegression, LogisticRegression

mlflow.set_experiment("autolog")
mlflow.sklearn.autolog(log_models=False, log_datasets=False)
X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 3.0]])
with mlflow.start_run(run_name="classifier"):
    LogisticRegression(C=0.5).fit(X, np.array([0, 0, 1, 1]))
with mlflow.start_run(run_name="regressor"):
    LinearRegression().fit(X, np.array([0.0, 1.0, 2.0, 3.5]))
'''

TORCH = '''
import mlflow
import mlflow.pytorch
import torch

mlflow.set_experiment("torch")
with mlflow.start_run(run_name="net"):
    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    info = mlflow.pytorch.log_model(net, name="net", serialization_format="pickle", pip_requirements=["torch"])
    loaded = mlflow.pytorch.load_model(info.model_uri)
    x = torch.tensor([[1.0, 2.0]])
    CHECKS["same_output"] = bool(torch.allclose(loaded(x), net(x)))
    mlflow.log_metric("weight_sum", float(net.weight.sum()))
'''

# Appended to every script: what was recorded, read back through the MLflow API.
DUMP = '''
import hashlib as _hashlib, json as _json, tempfile as _tempfile
from mlflow import MlflowClient as _Client
_client = _Client()
_runs = {}
for _run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
    _id = _run.info.run_id
    _arts = {}
    def _walk(path):
        for _f in _client.list_artifacts(_id, path):
            if _f.is_dir:
                _walk(_f.path)
            else:
                _local = mlflow.artifacts.download_artifacts(run_id=_id, artifact_path=_f.path,
                                                             dst_path=_tempfile.mkdtemp())
                _arts[_f.path] = _hashlib.sha256(open(_local, "rb").read()).hexdigest()
    _walk(None)
    _runs[_id] = {
        "name": _run.info.run_name, "status": _run.info.status, "params": _run.data.params,
        "tags": _run.data.tags, "metrics": _run.data.metrics, "start": _run.info.start_time,
        "end": _run.info.end_time, "experiment": _client.get_experiment(_run.info.experiment_id).name,
        "history": {k: [(m.step, m.value if m.value == m.value else "nan", m.timestamp)
                        for m in _client.get_metric_history(_id, k)] for k in _run.data.metrics},
        "artifacts": _arts,
    }
print("DUMP " + _json.dumps({"runs": _runs, "checks": CHECKS}, default=str))
'''

SCRIPTS = {"basic": BASIC, "client_models": CLIENT_MODELS, "autolog": AUTOLOG, "torch": TORCH}


def dropin(text: str) -> str:
    """The same script with gitexp's drop-in imported in place of MLflow (one changed import per line)."""
    text = re.sub(r"^import mlflow$", "import gitexp.mlflow as mlflow", text, flags=re.MULTILINE)
    text = re.sub(r"^import mlflow\.(\w+)$", r"import gitexp.mlflow.\1", text, flags=re.MULTILINE)
    return re.sub(r"^from mlflow(\.\w+)? import", r"from gitexp.mlflow\1 import", text, flags=re.MULTILINE)


def script_text(name: str, drop_in: bool) -> str:
    text = "CHECKS = {}\n" + SCRIPTS[name] + DUMP
    return dropin(text) if drop_in else text


def run_script(path: Path, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(path)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("DUMP ")), None)
    if proc.returncode != 0 or line is None:
        raise AssertionError(f"{path.name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(line[5:])


def mlflow_env(home: Path, uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GITEXP_"))}
    env.update(MLFLOW_ENV)
    env.update({"HOME": str(home), "MLFLOW_TRACKING_URI": uri})
    return env


_WORK = Path(tempfile.mkdtemp(prefix="gitexp-mlflow-tests-"))


def real_mlflow(name: str, backend: str = "file") -> tuple[dict[str, Any], Path]:
    """Run script *name* with real MLflow once per test session: (its dump, the store it wrote)."""
    return _real_mlflow(name, backend)


@functools.cache
def _real_mlflow(name: str, backend: str) -> tuple[dict[str, Any], Path]:
    folder = _WORK / f"{name}-{backend}"
    shutil.rmtree(folder, ignore_errors=True)  # what a failed earlier attempt left
    folder.mkdir()
    store = folder / ("mlruns" if backend == "file" else "mlflow.db")
    uri = store.as_uri() if backend == "file" else f"sqlite:///{store}"
    script = folder / f"train_{name}.py"
    script.write_text(script_text(name, drop_in=False))
    return run_script(script, folder, mlflow_env(folder, uri)), store


def cleanup() -> None:
    shutil.rmtree(_WORK, ignore_errors=True)


def by_name(dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Runs keyed by run name, with ids replaced by names, so two stores compare."""
    names = {rid: run["name"] for rid, run in dump["runs"].items()}
    out = {}
    for run in dump["runs"].values():
        tags = {k: v for k, v in run["tags"].items() if not k.startswith("mlflow.")}
        parent = run["tags"].get("mlflow.parentRunId")
        out[run["name"]] = {**run, "tags": tags, "parent": names.get(parent, parent)}
    return out
