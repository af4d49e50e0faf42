"""`git exp show` text output: what a person reads about one run."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.git.repo import Repo
from gitexp.ops import link
from tests.conftest import git

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
    assert next(line for line in lines if line.startswith("status")).split() == ["status", "FAILED"]
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


def test_show_names_the_commit_the_post_commit_hook_linked_the_run_to(repo: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "train.py").write_text("print('a wider model')\n")
    with gitexp.start_run(name="dirty", **QUIET):
        pass
    capsys.readouterr()
    before = show(capsys, "dirty")
    assert "with uncommitted changes" in before and "linked to commit" not in before
    git(repo, "commit", "-q", "-am", "Widen the model")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert link.link_runs(Repo.discover(), head)  # what the post-commit hook does in the background

    lines = show(capsys, "dirty").splitlines()
    code = next(i for i, line in enumerate(lines) if line.startswith("code"))
    assert lines[code].endswith("with uncommitted changes")
    assert lines[code + 1].split(maxsplit=5)[:5] == ["linked", "to", "commit", head[:12], '"Widen']
    assert "(by the post-commit hook" in lines[code + 1]


def test_show_gives_a_get_command_that_names_the_run(repo: Path, capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    # Runs of the same moment: their ids start alike, so a prefix of the id would name them all.
    made = []
    for i in range(6):
        with gitexp.start_run(name=f"r{i}", **QUIET) as run:
            run.log_text(f"weights {i}", "model.txt")
        made.append(run)
    capsys.readouterr()
    for i, run in enumerate(made):
        out = show(capsys, f"r{i}")
        (command,) = [line for line in out.splitlines() if "git exp get" in line]
        handle = command.split("git exp get ", 1)[1].split()[0]
        assert main(["get", handle, "model.txt", "-o", str(tmp_path / run.id)]) == 0, capsys.readouterr().err
        assert (tmp_path / run.id / "model.txt").read_text() == f"weights {i}"


def test_show_says_where_the_output_is(repo: Path, env_for_subprocess: dict[str, str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "gitexp", "run", "--name", "talky", "--", sys.executable, "-c",
                           "print('epoch 1'); print('epoch 2')"], cwd=repo, env=env_for_subprocess,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = show(capsys, "talky")
    handle = next(line.split()[1] for line in out.splitlines() if line.startswith("handle"))
    (output,) = [line for line in out.splitlines() if line.startswith("output")]
    assert output.split() == ["output", "output.log", "16", "B", "(`git", "exp", "logs", f"{handle}`", "prints",
                              "it)"]
    assert main(["logs", handle]) == 0
    assert capsys.readouterr().out == "epoch 1\nepoch 2\n"
    with gitexp.start_run(name="quiet", **QUIET):
        pass
    assert not any(line.startswith("output") for line in show(capsys, "quiet").splitlines())


def test_show_names_the_run_a_run_was_forked_from(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with gitexp.start_run(name="source", **QUIET) as source:
        pass
    with gitexp.start_run(name="fork", fork=source.id, **QUIET):
        pass
    capsys.readouterr()
    handle = next(line.split()[1] for line in show(capsys, "source").splitlines() if line.startswith("handle"))
    (forked,) = [line for line in show(capsys, "fork").splitlines() if line.startswith("forked from")]
    assert forked.split() == ["forked", "from", handle]
