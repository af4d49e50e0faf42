#!/usr/bin/env python
"""What each framework integration adds to its framework's training loop.

    python benchmarks/bench_integrations.py            # 7 timed fits of each kind per framework
    python benchmarks/bench_integrations.py --quick    # 3, and a shorter loop
    python benchmarks/bench_integrations.py --only keras,xgboost

For each framework one process (so one framework's import or MLflow's patching never touches
another's) times the same training, at 1-30 ms a step, three ways: without logging, with
gitexp's callback logging into a run started before the timed part (the run's start and end,
paid once per run whatever its length, are timed apart), and with MLflow's autolog where MLflow
has one for the framework (the installed MLflow, sqlite store in a temporary folder; its times
include its run's start and end; it patches the framework, so its fits come last). Fits without
logging and with gitexp alternate, so both see the same machine load. The fastest fit of each kind
is reported (on a shared machine the slower ones measure the other processes), the medians in
brackets. The target: gitexp within 1 % of the loop without logging. Frameworks not installed are skipped
(pip install -e '.[test-integrations]').
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("keras", "lightning", "transformers", "xgboost", "lightgbm", "tensorboard")
MLFLOW_AUTOLOG = {"keras": "mlflow.keras", "lightning": "mlflow.pytorch", "transformers": "mlflow.transformers",
                  "xgboost": "mlflow.xgboost", "lightgbm": "mlflow.lightgbm"}


# -- the training of each framework: train(mode, steps) -> seconds; mode in none, gitexp, mlflow ---------

def keras_train(mode: str, steps: int, run: Any = None) -> float:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    import numpy as np

    from gitexp.integrations.keras import GitexpCallback

    x = np.random.default_rng(0).normal(size=(steps * 256, 64)).astype("float32")
    y = x.sum(axis=1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    callbacks = [GitexpCallback(run=run)] if mode == "gitexp" else []
    start = time.perf_counter()
    model.fit(x, y, epochs=2, batch_size=512, verbose=0, callbacks=callbacks)
    return time.perf_counter() - start


def lightning_train(mode: str, steps: int, run: Any = None) -> float:
    import lightning
    import torch

    from gitexp.integrations.lightning import GitexpLogger

    class Net(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))

        def training_step(self, batch: Any, index: int) -> Any:
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.parameters())

    torch.manual_seed(0)
    x = torch.randn(steps * 256, 64)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=256)
    # without a logger of ours (MLflow's autolog adds its own)
    logger: Any = GitexpLogger(run=run) if mode == "gitexp" else False
    trainer = lightning.Trainer(max_epochs=1, logger=logger, log_every_n_steps=1, enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False)
    start = time.perf_counter()
    trainer.fit(Net(), data)
    return time.perf_counter() - start


def transformers_train(mode: str, steps: int, run: Any = None) -> float:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from gitexp.integrations.transformers import GitexpCallback

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=64,
                                                     max_position_embeddings=32, num_labels=2))
    tokens = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(0, 64, (32,), generator=tokens), "labels": torch.tensor(i % 2)}
            for i in range(steps * 8)]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, num_train_epochs=1, per_device_train_batch_size=8, logging_steps=1,
                                 save_strategy="no", report_to="mlflow" if mode == "mlflow" else "none",
                                 use_cpu=True, disable_tqdm=True)
        callbacks = [GitexpCallback(run=run)] if mode == "gitexp" else []
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def _boosting_data() -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 20))
    return x, x[:, 0] * 2 + rng.normal(size=20000)


def xgboost_train(mode: str, steps: int, run: Any = None) -> float:
    import xgboost

    from gitexp.integrations.xgboost import GitexpCallback

    x, y = _boosting_data()
    train, valid = xgboost.DMatrix(x[:15000], y[:15000]), xgboost.DMatrix(x[15000:], y[15000:])
    callbacks = [GitexpCallback(run=run)] if mode == "gitexp" else []
    start = time.perf_counter()
    xgboost.train({"max_depth": 6, "nthread": 1}, train, steps, evals=[(valid, "valid")], verbose_eval=False,
                  callbacks=callbacks)
    return time.perf_counter() - start


def lightgbm_train(mode: str, steps: int, run: Any = None) -> float:
    import lightgbm

    from gitexp.integrations.lightgbm import GitexpCallback

    x, y = _boosting_data()
    train, valid = lightgbm.Dataset(x[:15000], y[:15000]), lightgbm.Dataset(x[15000:], y[15000:])
    callbacks = [GitexpCallback(run=run)] if mode == "gitexp" else []
    start = time.perf_counter()
    lightgbm.train({"verbose": -1, "num_threads": 1}, train, steps, valid_sets=[valid], callbacks=callbacks)
    return time.perf_counter() - start


def tensorboard_train(mode: str, steps: int, run: Any = None) -> float:
    import torch

    from gitexp.tensorboard import SummaryWriter

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
    optimizer = torch.optim.Adam(net.parameters())
    x = torch.randn(256, 64)
    y = x.sum(1, keepdim=True)
    writer = SummaryWriter(run=run) if mode == "gitexp" else None
    start = time.perf_counter()
    for step in range(steps):
        loss = torch.nn.functional.mse_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if writer is not None:
            writer.add_scalar("loss", loss.item(), step)
            writer.add_scalars("lr", {"group0": 1e-3}, step)
        else:
            loss.item()  # the same synchronisation as the logged loop
    elapsed = time.perf_counter() - start
    if writer is not None:
        writer.close()
    return elapsed


# -- one framework in this process --------------------------------------------------------------

def measure(framework: str, repeats: int, steps: int) -> dict[str, Any]:
    """In a fresh git repository: the fits, alternating none and gitexp, then MLflow's."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import gitexp

    def train(mode: str, steps: int) -> float:
        if mode != "gitexp":
            return float(globals()[f"{framework}_train"](mode, steps))
        start = time.perf_counter()
        run = gitexp.start_run(experiment=f"bench-{framework}")
        started = time.perf_counter()
        elapsed = float(globals()[f"{framework}_train"](mode, steps, run))
        ending = time.perf_counter()
        run.end()
        times["run"].append(started - start + time.perf_counter() - ending)
        return elapsed

    times: dict[str, list[float]] = {"none": [], "gitexp": [], "mlflow": [], "run": []}
    train("none", max(2, steps // 10))  # warm-up: imports, first-call compilation
    train("gitexp", max(2, steps // 10))
    for _ in range(repeats):
        for mode in ("none", "gitexp"):
            times[mode].append(train(mode, steps))
    note = ""
    module = MLFLOW_AUTOLOG.get(framework)
    if module is None:
        note = "MLflow has no autolog for it"
    else:
        try:
            import importlib

            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{Path(tempfile.mkdtemp()) / 'mlflow.db'}")
            mlflow.set_experiment(f"bench-{framework}")
            if framework != "transformers":  # its Trainer's own MLflowCallback is MLflow's integration
                importlib.import_module(module).autolog(log_models=False, silent=True)
            train("mlflow", max(2, steps // 10))
            for _ in range(repeats):
                times["mlflow"].append(train("mlflow", steps))
        except Exception as exc:  # reported in the table, not a reason to lose the other numbers
            note = f"MLflow autolog failed here: {type(exc).__name__}: {str(exc)[:80]}"
    return {"framework": framework, "steps": steps, "times": times, "note": note}


def child(framework: str, repeats: int, steps: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["git", "init", "-q", folder], check=True)
        subprocess.run(["git", "-C", folder, "commit", "-q", "--allow-empty", "-m", "bench"], check=True)
        os.chdir(folder)
        result = measure(framework, repeats, steps)
    print("RESULT " + json.dumps(result))


def available(framework: str) -> bool:
    import importlib.util

    name = {"tensorboard": "torch"}.get(framework, framework)
    return importlib.util.find_spec(name) is not None


STEPS = {"keras": 40, "lightning": 200, "transformers": 40, "xgboost": 100, "lightgbm": 200, "tensorboard": 300}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(FRAMEWORKS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    repeats = 3 if options.quick else 7
    if options.child:
        name, steps = options.child.split(":")
        child(name, repeats, int(steps))
        return
    rows = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@example.com", "OMP_NUM_THREADS": "1", "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "0"}
    for framework in options.only.split(","):
        if not available(framework):
            rows.append([framework, "-", "-", "-", "-", "-", "-", "not installed"])
            continue
        steps = STEPS[framework] // (2 if options.quick else 1)
        print(f"{framework}...", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", f"{framework}:{steps}",
                               *(["--quick"] if options.quick else [])],
                              env=env, capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            rows.append([framework, "-", "-", "-", "-", "-", "-", f"failed: {proc.stderr.strip()[-120:]}"])
            continue
        result = json.loads(lines[-1][len("RESULT "):])
        times = result["times"]
        none, ours = min(times["none"]), min(times["gitexp"])
        theirs = min(times["mlflow"]) if times["mlflow"] else None
        total_steps = result["steps"] * (2 if framework == "keras" else 1)
        overhead = 100 * (ours - none) / none

        def median(kind: str, times: dict[str, list[float]] = times) -> str:
            return f"[{statistics.median(times[kind]):.3f}]"

        rows.append([framework, f"{1000 * none / total_steps:.2f}", f"{none:.3f} {median('none')}",
                     f"{ours:.3f} {median('gitexp')} ({overhead:+.1f}%)",
                     f"{theirs:.3f} {median('mlflow')} ({100 * (theirs - none) / none:+.1f}%)"
                     if theirs is not None else "-",
                     "yes" if overhead <= 1.0 else "no", f"{1000 * statistics.median(times['run']):.0f}",
                     result["note"]])
    header = ["framework", "ms/step", "no logging (s)", "gitexp callback (s)", "MLflow autolog (s)", "≤ 1 %?",
              "gitexp run start+end (ms)", "note"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"\nfastest [median] of {repeats} fits each; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
