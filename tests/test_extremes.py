"""The minima and maxima a kept listing holds of each metric (gitexp/views/extremes.py): read one
metric at a time, checked when read, and a damaged one answered from the runs instead."""

from __future__ import annotations

import marshal
import subprocess
import sys
from pathlib import Path

import pytest

from gitexp.views import listing
from gitexp.views.extremes import MetricExtremes, kept_form
from tests.conftest import git
from tests.sample_runs import sample_runs


def test_a_metrics_pair_is_read_when_asked_for_and_kept_as_it_was_otherwise() -> None:
    loss, acc = ([0.1, None], [0.9, None]), ([0.5, 0.6], [0.7, 0.8])
    stored = {"loss": marshal.dumps(loss), "acc": marshal.dumps(acc)}
    extremes = MetricExtremes(stored, 2)
    assert set(extremes) == {"loss", "acc"} and len(extremes) == 2 and "loss" in extremes
    assert extremes["acc"] == acc
    again = extremes.stored()
    assert again["loss"] is stored["loss"], "a pair never read is written back as the bytes it was"
    assert marshal.loads(again["acc"]) == acc
    assert extremes.whole() == {"loss": loss, "acc": acc}
    assert MetricExtremes({"loss": loss}, 2)["loss"] == loss  # (pairs given as they are, by of_records)
    with pytest.raises(KeyError):
        extremes["nothing"]


@pytest.mark.parametrize("damaged", [b"\x00not marshal", marshal.dumps(([0.1], [0.9])), marshal.dumps([1, 2]),
                                     marshal.dumps(([0.1, 0.2], "ab"))])
def test_a_damaged_pair_is_refused_naming_its_metric(damaged: bytes) -> None:
    extremes = MetricExtremes({"val/loss": damaged, "acc": marshal.dumps(([1], [2]))}, 2)
    with pytest.raises(ValueError, match="metric 'val/loss'"):
        extremes["val/loss"]
    with pytest.raises(ValueError, match="val/loss"):
        extremes.whole()
    assert extremes.stored()["val/loss"] is not None  # (kept as it was: the listing is read again later)


def test_what_files_and_callers_give_becomes_one_form() -> None:
    assert kept_form(None, 3) is None and kept_form([1, 2], 3) is None and kept_form({1: b""}, 3) is None
    made = kept_form({"loss": ([1, 2, 3], [4, 5, 6])}, 3)
    assert made is not None and made["loss"] == ([1, 2, 3], [4, 5, 6])
    assert kept_form(made, 3) is made and kept_form(made, 4) is None


def ls(repo: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "gitexp", "ls", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout


def test_a_kept_listing_with_a_damaged_metric_still_answers_every_query_right(repo: Path) -> None:
    sample_runs(repo, git(repo, "rev-parse", "HEAD").strip(), "plain")
    queries = [[], ["--where", "metrics.loss.max > 2"], ["--sort", "-metrics.val/acc.min"],
               ["--where", "metrics.val/acc.max >= 0.9", "--sort", "metrics.loss.min"]]
    expected = [ls(repo, *query) for query in queries]
    path = repo / ".git" / listing.CACHE_FILE
    data = marshal.loads(path.read_bytes())
    assert set(data["extremes"]) >= {"loss", "val/acc"} and type(data["extremes"]["loss"]) is bytes
    data["extremes"]["loss"] = marshal.dumps(([0.0], [0.0]))  # one value where there is one per run
    path.write_bytes(marshal.dumps(data))
    assert [ls(repo, *query) for query in queries] == expected
    found = listing.current(repo)
    assert found is not None and found.extremes is not None and found.extremes["val/acc"] is not None
