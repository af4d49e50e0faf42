"""A small, varied set of real runs shared by the search, diff, plot and report tests."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

import gitexp

QUIET = {"system_metrics_interval": 0}


@dataclass
class Sample:
    """The runs made by make_sample_runs, by name, plus the code commit they ran on."""

    repo: Path
    base: str
    ids: dict[str, str]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Text that would break out of an HTML page, a CSV cell or an SVG comment if it were not escaped.
EVIL = "</td><script>window.pwned=1</script><!-- --> & \"quotes\" 'single'"
_templates: dict[str, Sample] = {}


def sample_runs(repo: Path, base: str, variant: str = "plain") -> Sample:
    """The runs of *variant* ("plain": make_sample_runs; "user-text": those plus make_user_text_run's),
    in *repo* (the `repo` fixture, whose commit is *base*).

    The runs are made once per test session, in a template beside the first test's repository,
    and the template (.git included) is copied over each test's repository: a copy takes
    milliseconds, making the runs a second or more. The copy keeps the template's base commit.
    """
    template = _templates.get(variant)
    if template is None or not template.repo.exists():
        path = repo.parent / f"sample-runs-{variant}"
        shutil.copytree(repo, path, symlinks=True)
        template = _templates[variant] = make_sample_runs(path, base)
        if variant == "user-text":
            template.ids["evil"] = make_user_text_run(path)
    for child in repo.iterdir():  # empty the folder, not remove it: it is the current directory
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    shutil.copytree(template.repo, repo, symlinks=True, dirs_exist_ok=True)
    return replace(template, repo=repo, ids=dict(template.ids))


def age_kept_listing(repo: Path) -> None:
    """Make the listing `git exp ls` keeps an hour old (as after a pause), so the next listing that
    brings it up to date keeps its own: one kept moments ago is not written again for a few runs."""
    from gitexp.views.listing import CACHE_FILE

    kept = repo / ".git" / CACHE_FILE
    if kept.exists():
        then = kept.stat().st_mtime - 3600
        os.utime(kept, (then, then))


def make_mixed_run(repo: Path) -> str:
    """A run of experiment "mix" whose params hold values of every kind a column can hold (int, bool,
    list, None, a nested float), with keys the other sample runs lack; its id."""
    with gitexp.start_run(name="mixed", experiment="mix", repo=repo, params={
            "lr": 1, "flag": True, "layers": [1, 2], "opt": None, "model": {"layers": 4.0}}, **QUIET) as run:
        run.log_metric("loss", 3)
        run.log_metric("val/acc", 0.25)
        run.log_metric("val/acc", 0.75)
    return run.id


def make_user_text_run(repo: Path) -> str:
    """A run whose name, description, tag, param and metric key are all EVIL-like user text."""
    with gitexp.start_run(name=EVIL, experiment="cnn", description=EVIL, tags={"note": EVIL}, repo=repo,
                          params={"evil": EVIL, EVIL[:20]: 1}, **QUIET) as run:
        run.log_metric("--><script>alert(1)</script>", 1.0, step=0)
        run.log_metric("--><script>alert(1)</script>", 2.0, step=1)
        run.log_metric("loss", 0.5, step=0)
    return run.id


def make_sample_runs(repo: Path, base: str) -> Sample:
    """Four runs, oldest first:

    baseline  cnn  lr 0.01, model.layers 4, loss 1.0 -> 0.2, val/acc 0.5 -> 0.8, input train v1
    wide      cnn  lr 0.1, model.layers 8, loss 1.0 -> 0.1, val/acc 0.6 -> 0.9, input train v2, edited code
    rnn       rnn  lr 0.001, hidden 128, loss only (3 values, one NaN), metric "acc.max" 0.3
    broken    cnn  FAILED: an exception after logging loss 5.0
    """
    ids = {}
    with gitexp.start_run(name="baseline", experiment="cnn", repo=repo, tags={"dataset": "cifar10"},
                          params={"lr": 0.01, "model": {"layers": 4, "act": "relu"}, "batch": 32}, **QUIET) as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 - 0.2 * step, "val/acc": 0.5 + 0.075 * step}, step=step)
        run.state.inputs["train"] = {"kind": "file", "sha256": sha("train v1"), "size": 8}
    ids["baseline"] = run.id
    (repo / "train.py").write_text("print('training a wider model')\n")
    (repo / "notes.txt").write_text("wider\n")
    with gitexp.start_run(name="wide", experiment="cnn", repo=repo, tags={"dataset": "cifar100"},
                          params={"lr": 0.1, "model": {"layers": 8, "act": "relu"}, "batch": 32}, **QUIET) as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 - 0.225 * step, "val/acc": 0.6 + 0.075 * step}, step=step)
        run.state.inputs["train"] = {"kind": "file", "sha256": sha("train v2"), "size": 8}
        run.state.inputs["extra"] = {"kind": "file", "sha256": sha("extra"), "size": 5}
    ids["wide"] = run.id
    with gitexp.start_run(name="rnn", experiment="rnn", repo=repo, params={"lr": 0.001, "hidden": 128}, **QUIET) as run:
        for step, value in enumerate([2.0, float("nan"), 1.5]):
            run.log_metric("loss", value, step=step)
        run.log_metric("acc.max", 0.3)
    ids["rnn"] = run.id
    with pytest.raises(RuntimeError), gitexp.start_run(name="broken", experiment="cnn", params={"lr": 1.0}, repo=repo,
                                                       **QUIET) as run:
        run.log_metric("loss", 5.0, step=0)
        raise RuntimeError("diverged")
    ids["broken"] = run.id
    return Sample(repo, base, ids)


def get_run_outcome(text: str, experiment: str | None, every: bool) -> tuple[str, str]:
    """What naming a run by *text* gives: ("run", its id), or the error's type and message; through
    get_run (*every* False), or resolve() over every run of *experiment* (True), to compare the two."""
    from gitexp.store import runs

    try:
        found = runs.resolve(runs.load_runs(experiment=experiment), text) if every else \
            gitexp.get_run(text, experiment=experiment)
        return "run", found.id
    except gitexp.GitexpError as exc:
        return type(exc).__name__, str(exc)
