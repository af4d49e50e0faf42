"""gitexp.tensorboard.SummaryWriter: a TensorBoard script switched by its import line."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import gitexp
from gitexp.integrations.tensorboard import SummaryWriter, image_array
from gitexp.ops.restore import download_artifacts
from tests.integration_examples import example, run, steps_and_values

TORCH_IMPORT = "from torch.utils.tensorboard import SummaryWriter"
GITEXP_IMPORT = "from gitexp.tensorboard import SummaryWriter"


def test_a_tensorboard_script_records_a_run_once_its_import_line_is_switched(repo: Path, tmp_path: Path) -> None:
    original = example("TensorBoard").replace(GITEXP_IMPORT, TORCH_IMPORT)
    switched = original.replace(TORCH_IMPORT, GITEXP_IMPORT)
    assert original != switched and sum(a != b for a, b in zip(original.splitlines(), switched.splitlines(),
                                                               strict=True)) == 1
    run(switched, "TensorBoard")
    (record,) = gitexp.load_runs()
    assert record.name == "tensorboard-demo" and record.status == "FINISHED"
    assert record.params == {"lr": 0.01, "optimizer": "sgd"}
    assert steps_and_values(record, "loss") == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert steps_and_values(record, "acc/train") == [(s, 0.5 + s / 10) for s in range(5)]
    assert steps_and_values(record, "acc/val") == [(s, 0.4 + s / 10) for s in range(5)]
    assert steps_and_values(record, "hparam/best_loss") == [(0, 0.2)]
    assert sorted(a.path for a in record.artifacts) == ["figures/curve/4.png", "images/noise/4.png",
                                                        "text/notes/4.txt"]
    restored = Path(download_artifacts(record, dst=tmp_path / "out"))
    assert (restored / "text/notes/4.txt").read_text() == "a first try"
    assert matplotlib.image.imread(restored / "images/noise/4.png").shape[:2] == (8, 8)


def test_images_in_each_layout_and_dtype_become_height_by_width_pictures() -> None:
    chw = np.zeros((3, 4, 5), dtype=np.float32)
    assert image_array(chw).shape == (4, 5, 3)
    assert image_array(np.full((4, 5, 3), 300), "HWC").dtype == np.uint8
    assert image_array(np.ones((1, 4, 5))).shape == (4, 5)
    assert image_array(np.ones((4, 5)) * 2.0, "HW").max() == 1.0
    with pytest.raises(ValueError, match="CHW layout has 3 dimensions; this one has shape"):
        image_array(np.ones((4, 5)))
    torch = pytest.importorskip("torch")
    assert image_array(torch.zeros(3, 2, 6)).shape == (2, 6, 3)


def test_an_error_in_a_call_is_one_warning_and_logging_goes_on(repo: Path) -> None:
    with pytest.warns(RuntimeWarning) as caught, SummaryWriter("runs/careless") as writer:
        for step in range(3):
            writer.add_scalar("loss", "high", step)  # not a number: warned of once
            writer.add_scalar("acc", 0.5 + step, step)
            writer.add_histogram("weights", np.ones(3), step)  # not drawn by gitexp: warned of once, ignored
    messages = [str(w.message) for w in caught]
    assert sum("add_scalar failed (ValueError: add_scalar('loss'): 'high' is not a number)" in m
               for m in messages) == 1
    assert sum("add_histogram failed" in m for m in messages) == 1
    record = gitexp.get_run(writer.run.id)
    assert record.status == "FINISHED" and [s for s, _ in steps_and_values(record, "acc")] == [0, 1, 2]


def test_an_exception_inside_the_writers_block_ends_the_run_failed(repo: Path) -> None:
    with warnings.catch_warnings(), pytest.raises(KeyError), SummaryWriter(comment="-fail") as writer:
        writer.add_scalar("loss", 1.0)
        raise KeyError("batch")
    record = gitexp.get_run(writer.run.id)
    assert record.name == "-fail" and record.status == "FAILED" and record.meta["error"]["type"] == "KeyError"
