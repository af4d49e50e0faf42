"""`git exp diff`, `git exp compare` and `git exp best` on real runs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import gitexp
from gitexp.cli.main import main
from gitexp.errors import GitexpError
from gitexp.store.names import handles
from gitexp.views.compare import best_run, compare_rows, guess_minimize, run_labels
from gitexp.views.diff import diff_runs, env_summary, metric_change, render_diff
from tests.conftest import git
from tests.sample_runs import QUIET, Sample, sample_runs, sha


@pytest.fixture
def sample(repo: Path) -> Sample:
    return sample_runs(repo, git(repo, "rev-parse", "HEAD").strip())


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- diff -------------------------------------------------------------------------------------


def test_diff_data(sample: Sample) -> None:
    d = diff_runs(gitexp.get_run("baseline"), gitexp.get_run("wide"))
    assert d["a"]["name"] == "baseline" and d["b"]["id"] == sample.ids["wide"]
    assert d["params"] == {"added": {}, "removed": {}, "changed": {"lr": [0.01, 0.1], "model.layers": [4, 8]}}
    loss = d["metrics"]["loss"]
    assert (loss["a"], loss["b"]) == (pytest.approx(0.2), pytest.approx(0.1))
    assert loss["abs"] == pytest.approx(-0.1) and loss["rel"] == pytest.approx(-0.5)
    assert d["inputs"]["changed"] == {"train": [sha("train v1"), sha("train v2")]}
    assert d["inputs"]["added"] == {"extra": sha("extra")}
    assert d["env"]["python"][0] == d["env"]["python"][1]
    assert d["env"]["packages"] == {"added": {}, "removed": {}, "changed": {}}
    code = d["code"]
    assert code["base"] == [sample.base, sample.base]
    assert code["tree"][0] != code["tree"][1]
    assert sorted((f[0], f[1]) for f in code["files"]) == [("A", "notes.txt"), ("M", "train.py")]
    assert "patch" not in code


def test_diff_added_and_removed_params_and_metrics(sample: Sample) -> None:
    d = diff_runs(gitexp.get_run("baseline"), gitexp.get_run("rnn"))
    assert d["params"]["added"] == {"hidden": 128}
    assert d["params"]["removed"] == {"batch": 32, "model.act": "relu", "model.layers": 4}
    assert d["metrics"]["val/acc"]["b"] is None and d["metrics"]["val/acc"]["abs"] is None
    assert d["metrics"]["acc.max"]["a"] is None and d["metrics"]["acc.max"]["b"] == 0.3
    assert d["inputs"]["removed"] == {"train": sha("train v1")}


def test_metric_change_edge_cases() -> None:
    assert metric_change(2, 3) == {"a": 2, "b": 3, "abs": 1.0, "rel": 0.5}
    assert metric_change(0.0, 1.0)["rel"] is None  # relative to zero means nothing
    assert metric_change(float("nan"), 1.0)["abs"] is None
    assert metric_change(-2.0, -1.0)["rel"] == pytest.approx(0.5)  # an improvement on a negative value is +
    assert metric_change(None, 1.0)["abs"] is None
    assert metric_change(True, 1.0)["abs"] is None


def test_env_summary_and_package_changes(repo: Path) -> None:
    env_a = {"python": {"version": "3.11.7", "implementation": "CPython"}, "host": "a", "packages": {"x": "1"},
             "gpu": {"count": 2, "devices": [{"name": "H100", "driver_version": "550", "cuda_version": "12.4"}] * 2}}
    summary = env_summary(env_a)
    assert summary["python"] == "3.11.7 (CPython)"
    assert summary["gpus"] == "2x H100 (driver 550, CUDA 12.4)"
    assert env_summary({}) == {}
    assert env_summary({"gpu": {"count": 0, "devices": []}})["gpus"] == "none"


def test_diff_text_and_code_patch(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "diff", "baseline", "wide")
    assert (code, err) == (0, "")
    shown = handles(sample.ids.values())
    assert out.startswith(f"diff A {shown[sample.ids['baseline']]} cnn/baseline (FINISHED)\n"
                          f"  -> B {shown[sample.ids['wide']]} cnn/wide (FINISHED)\n")
    assert "changed  lr            0.01 -> 0.1" in out
    assert "-50.0%" in out  # loss 0.2 -> 0.1
    assert "inputs (sha256)" in out and "added    extra" in out
    assert f"base commit  same ({sample.base[:12]})" in out
    assert "2 file(s) changed" in out and "M train.py  +1 -1" in out
    assert "print('training a wider model')" not in out  # the patch only with --code
    code, out, _ = cli(capsys, "diff", "baseline", "wide", "--code")
    assert "+print('training a wider model')" in out and "-print('training')" in out


def test_diff_json(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "diff", sample.ids["baseline"], "rnn", "--format", "json", "--code")
    assert code == 0
    data = json.loads(out)
    assert data["params"]["added"] == {"hidden": 128}
    assert data["code"]["patch"].startswith("diff --git")
    assert set(data) == {"a", "b", "params", "metrics", "env", "inputs", "code"}


def test_diff_of_a_run_with_itself_is_all_the_same(sample: Sample) -> None:
    rnn = gitexp.get_run("rnn")
    text = render_diff(diff_runs(rnn, rnn))
    assert "params: the same" in text and "inputs (sha256): the same" in text
    assert "snapshot     identical" in text and "packages         same" in text


def test_diff_without_environment_or_code(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("bare-a", "bare-b"):
        with gitexp.start_run(name=name, capture_env=False, capture_code=False, **QUIET) as run:
            run.log_metric("m", 1.0)
    code, out, _ = cli(capsys, "diff", "bare-a", "bare-b")
    assert code == 0
    assert "snapshot     not recorded in either run" in out
    # capture_env=False is not always honoured within one process (the flusher attaches an
    # environment captured for an earlier run), so the no-environment text is checked directly.
    data = diff_runs(gitexp.get_run("bare-a"), gitexp.get_run("bare-b"))
    data["env"] = {"recorded": [False, False], "packages": {"added": {}, "removed": {}, "changed": {}}}
    assert "environment: not recorded in either run" in render_diff(data)


def test_diff_unknown_run(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "diff", "baseline", "nope")
    assert (code, out) == (1, "")
    assert "no run matches 'nope'" in err


# -- compare ------------------------------------------------------------------------------------


def test_compare_rows_one_column_per_run(sample: Sample) -> None:
    records = [gitexp.get_run(n) for n in ("baseline", "wide", "rnn")]
    columns, rows = compare_rows(records)
    assert columns == ["field", "baseline", "wide", "rnn"]
    fields = [row["field"] for row in rows]
    assert fields[:6] == ["id", "experiment", "status", "start", "duration", "commit"]
    assert fields.index("params.lr") < fields.index("metrics.loss") < fields.index("env.python")
    lr = next(row for row in rows if row["field"] == "params.lr")
    assert (lr["baseline"], lr["wide"], lr["rnn"]) == (0.01, 0.1, 0.001)
    hidden = next(row for row in rows if row["field"] == "params.hidden")
    assert hidden["baseline"] is None and hidden["rnn"] == 128
    _, changed = compare_rows(records[:2], only_changed=True)
    assert {row["field"] for row in changed} >= {"id", "params.lr", "params.model.layers", "metrics.loss"}
    assert "params.batch" not in {row["field"] for row in changed}


def test_run_labels_disambiguate_equal_names(repo: Path) -> None:
    for _ in range(2):
        with gitexp.start_run(name="same", capture_env=False, **QUIET):
            pass
    with gitexp.start_run(name="start", capture_env=False, **QUIET):
        pass
    records = gitexp.load_runs()
    labels = run_labels(records)
    assert len(set(labels.values())) == 3
    assert all(label.startswith(("same@", "start@")) for label in labels.values())


def test_compare_cli_formats(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "compare", "baseline", "wide")
    header = out.splitlines()[0].split()
    assert header == ["field", "baseline", "wide"]
    assert any(line.split()[:3] == ["params.lr", "0.01", "0.1"] for line in out.splitlines())
    code, out, _ = cli(capsys, "compare", "--where", "experiment = cnn", "--sort", "-params.lr", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[1:] == ["broken", "wide", "baseline"]
    assert next(r for r in rows if r["field"] == "start")["broken"].endswith("Z")  # csv keeps ISO times
    code, out, _ = cli(capsys, "compare", "baseline", "wide", "-f", "json", "--only-changed")
    data = json.loads(out)
    assert {d["field"] for d in data} >= {"params.lr", "metrics.val/acc"}
    code, out, _ = cli(capsys, "compare", "baseline", "wide", "-f", "md", "--precision", "2")
    assert code == 0 and out.splitlines()[0].startswith("| field")


# -- best ---------------------------------------------------------------------------------------


def test_best_run_by_direction(sample: Sample) -> None:
    records = gitexp.load_runs()
    assert best_run(records, "loss", minimize=True)[0].name == "wide"
    assert best_run(records, "loss", minimize=False)[0].name == "broken"
    winner, value = best_run(records, "metrics.val/acc.max", minimize=False)
    assert (winner.name, value) == ("wide", pytest.approx(0.9))
    assert best_run(records, "val/acc.min", minimize=True)[0].name == "baseline"
    with pytest.raises(GitexpError, match="has a value for metric 'nothing'"):
        best_run(records, "nothing", minimize=True)


def test_guess_minimize() -> None:
    assert all(guess_minimize(m) for m in ("loss", "val/loss", "train_loss", "error_rate", "wer", "val/mse"))
    assert not any(guess_minimize(m) for m in ("acc", "val/acc", "f1", "bleu", "reward"))


def test_best_cli(sample: Sample, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "best", "loss")
    assert code == 0
    assert "lowest loss (guessed from the name; --max" in err
    assert out.startswith(f"run {sample.ids['wide']}  cnn/wide")
    code, out, err = cli(capsys, "best", "loss", "--max", "--where", "status = FINISHED", "-f", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["meta"]["name"] == "rnn"
    code, out, err = cli(capsys, "best", "val/acc", "--min", "-f", "yaml")
    assert "name: baseline" in out
    code, out, err = cli(capsys, "best", "loss", "--where", "params.lr > 5")
    assert (code, out) == (1, "")
    assert "no runs match" in err
