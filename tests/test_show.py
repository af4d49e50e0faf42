"""`git exp show` text output: what a person reads about one run."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main

QUIET = {"system_metrics_interval": 0}


def show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["show", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def section(out: str, title: str) -> list[str]:
    """The indented lines under a section title of the text output."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [title])
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        body.append(line.split())
    return body


def test_show_text_for_a_finished_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = {"lr": 0.01, "model": {"layers": 4, "act": "relu"}}
    with gitexp.start_run(name="showme", experiment="cnn", params=params, tags={"team": "vision"},
                          description="first try", **QUIET) as run:
        for step, loss in enumerate([0.5, 0.25, 0.375]):
            run.log_metric("loss", loss, step=step)
        run.log_metric("val/acc", 0.875)
    capsys.readouterr()

    out = show(capsys, "showme")
    first = out.splitlines()[0]
    assert first.split() == ["run", run.id, "cnn/showme"]
    head = {line.split()[0]: line for line in out.splitlines()[1:9]}
    assert head["status"].split() == ["status", "FINISHED"]
    assert head["ref"].split() == ["ref", f"refs/experiments/cnn/{run.id}"]
    assert "on main" in head["code"]
    assert "first try" in out

    assert section(out, "params") == [["lr", "0.01"], ["model.act", "relu"], ["model.layers", "4"]]
    assert section(out, "tags") == [["team", "vision"]]
    # metrics: last step min max count
    assert section(out, "metrics") == [["loss", "0.375", "2", "0.25", "0.5", "3"],
                                       ["val/acc", "0.875", "0", "0.875", "0.875", "1"]]
    env = {row[0]: row[1:] for row in section(out, "environment")}
    assert env["python"][0] == platform.python_version()
    assert env["python"][1] == f"({platform.python_implementation()})"


def test_show_text_for_a_failed_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="learning rate too high"), \
            gitexp.start_run(name="broken", **QUIET) as run:
        run.log_metric("loss", 1.0)
        raise ValueError("learning rate too high")
    capsys.readouterr()

    out = show(capsys, run.id)
    lines = out.splitlines()
    assert lines[1].split() == ["status", "FAILED"]
    at = lines.index("error")
    assert lines[at + 1].strip() == "ValueError: learning rate too high"
    assert section(out, "metrics")[0][:2] == ["loss", "1"]


def test_show_text_without_params_or_metrics(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="bare-bones", **QUIET):
        pass
    capsys.readouterr()
    out = show(capsys, "bare-bones")
    titles = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert "params" not in titles
    assert not any(t.startswith("metrics") for t in titles)
    assert "error" not in titles


def test_show_lists_artifacts_and_inputs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "model.bin").write_bytes(b"w" * 3000)
    (repo / "data.csv").write_text("x,y\n1,2\n")
    with gitexp.start_run(name="with-files", system_metrics_interval=0, capture_env=False) as run:
        run.log_artifact(repo / "model.bin", "models/model.bin")
        run.log_text("hello", "notes.txt")
        run.log_input(repo / "data.csv", name="train", source="s3://bucket/data.csv")
        run.log_metric("loss", 0.5)
    out = show(capsys, "with-files")
    assert [line[:2] for line in section(out, "artifacts")] == [["models/model.bin", "2.9"], ["notes.txt", "5"]]
    (train,) = section(out, "inputs")
    assert train[:2] == ["train", "sha256"] and train[-2:] == ["from", "s3://bucket/data.csv"]
    assert out.index("\nmetrics") < out.index("\nartifacts") < out.index("\ninputs")  # after the numbers
