"""The `git exp` command line: ls, show, run, help, and the repositories it must cope with."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import gitexp
from gitexp.cli.main import main
from gitexp.views.table import short_ids
from tests.conftest import git

QUIET = {"system_metrics_interval": 0}
RUN_ID_TOKEN = re.compile(r"\b[0-9]{8}-[0-9a-f]{15}\b")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_refs(repo: Path) -> dict[str, str]:
    """refs/experiments/* -> commit, as plain git lists them."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/experiments/")
    return dict(line.split() for line in out.splitlines())


def the_run(repo: Path) -> str:
    """The ref of the one run in *repo*; fails when there is not exactly one."""
    refs = run_refs(repo)
    assert len(refs) == 1, refs
    return next(iter(refs))


def read_yaml(repo: Path, ref: str, path: str) -> Any:
    return yaml.safe_load(git(repo, "show", f"{ref}:{path}"))


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("git exp: error: ")
    return lines[0]


@pytest.fixture
def three_runs(repo: Path, capsys: pytest.CaptureFixture[str]) -> list[gitexp.Run]:
    """alpha and beta in experiment cnn, gamma in rnn; created in this order (gamma is newest)."""
    made = []
    for name, experiment, lr, acc in [("alpha", "cnn", 0.1, 0.123456789), ("beta", "cnn", 0.01, 0.5),
                                      ("gamma", "rnn", 0.001, 0.75)]:
        with gitexp.start_run(name=name, experiment=experiment, params={"lr": lr, "opt": "sgd"},
                              **QUIET) as run:
            run.log_metric("acc", acc)
        made.append(run)
    capsys.readouterr()
    return made


# -- ls ---------------------------------------------------------------------------------------------


def test_ls_table(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls")
    assert (code, err) == (0, "")
    header, _, *lines = out.splitlines()
    # Only what differs: lr does, opt (sgd everywhere) does not.
    assert header.split() == ["id", "name", "status", "start", "duration", "commit", "params.lr", "metrics.acc"]
    assert [line.split()[1] for line in lines] == ["gamma", "beta", "alpha"]  # newest first
    assert all(line.split()[2] == "FINISHED" for line in lines)
    assert lines[2].split()[-2:] == ["0.1", "0.1235"]  # --precision 4 by default
    shown_ids = [line.split()[0] for line in lines]
    assert shown_ids == [short_ids(r.id for r in three_runs)[r.id] for r in reversed(three_runs)]


def test_ls_csv(repo: Path, three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["gamma", "beta", "alpha"]
    alpha = rows[2]
    assert alpha["params.lr"] == "0.1"
    assert alpha["metrics.acc"] == "0.123456789"  # csv keeps full precision
    assert alpha["status"] == "FINISHED"
    assert alpha["start"] == three_runs[0].state.meta["start"]  # ISO time, for machines
    assert float(alpha["duration"]) >= 0
    assert alpha["commit"] == git(repo, "rev-parse", "HEAD").strip()[:7]


def test_ls_json(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "-f", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["id"] for d in data] == [r.id for r in reversed(three_runs)]
    gamma = data[0]
    assert gamma["experiment"] == "rnn"
    assert gamma["params"] == {"lr": 0.001, "opt": "sgd"}
    assert gamma["metrics"]["acc"]["last"] == 0.75
    assert gamma["meta"]["name"] == "gamma"
    assert gamma["meta"]["status"] == "FINISHED"


def test_ls_md(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "--format", "md")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 + 3
    assert all(line.startswith("|") for line in lines)
    assert "params.lr" in lines[0]
    assert "gamma" in lines[2]


def test_ls_limit(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "-n", "1", "-f", "csv")
    assert code == 0
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["gamma"]


def test_ls_limit_reads_the_newest_runs_and_steps_past_a_damaged_one(
        three_runs: list[gitexp.Run], repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ls -n N` reads only the newest runs (no listing cache needed), yet lists what the first N
    rows of a whole listing are, its handles unique among every run, and a damaged run among the
    newest is left out with a warning and the next one shown instead."""
    whole = cli(capsys, "ls", "--format", "csv", "--columns", "id,name,params.lr,metrics.acc")[1].splitlines()
    cache = repo / ".git" / "gitexp" / "cache"
    for kept in cache.iterdir():
        kept.unlink()
    code, out, _ = cli(capsys, "ls", "-n", "2", "--format", "csv", "--columns", "id,name,params.lr,metrics.acc")
    assert code == 0 and out.splitlines() == whole[:3]
    blob = git(repo, "hash-object", "-w", "--stdin").strip()
    git(repo, "update-ref", "refs/experiments/rnn/29991231-0000000aaaaaaaa", blob)  # the newest id of all
    code, out, err = cli(capsys, "ls", "-n", "2", "--format", "csv", "--columns", "id,name")
    assert code == 0 and [line.split(",")[1] for line in out.splitlines()[1:]] == ["gamma", "beta"]
    assert "leaving out run 29991231-0000000aaaaaaaa" in err


def test_ls_experiment(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "--experiment", "cnn", "-f", "csv")
    assert code == 0
    assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["beta", "alpha"]
    code, out, err = cli(capsys, "ls", "-e", "nothing-here")
    assert (code, out) == (0, "")
    assert "no runs in experiment 'nothing-here'" in err


def test_ls_invalid_experiment_name(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls", "-e", "a..b")
    assert (code, out) == (1, "")
    assert "'a..b'" in one_line_error(err)


def test_ls_columns(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ls", "--columns", "params.lr,metrics.acc", "-f", "csv")
    assert code == 0
    reader = csv.DictReader(io.StringIO(out))
    rows = list(reader)
    assert reader.fieldnames == ["id", "name", "status", "start", "duration", "commit", "params.lr",
                                 "metrics.acc"]
    assert [(r["params.lr"], r["metrics.acc"]) for r in rows] == [("0.001", "0.75"), ("0.01", "0.5"),
                                                                   ("0.1", "0.123456789")]
    code, out, _ = cli(capsys, "ls", "-c", "params.opt")
    assert code == 0
    assert out.splitlines()[0].split()[-1] == "params.opt"
    assert [line.split()[-1] for line in out.splitlines()[2:]] == ["sgd"] * 3


def test_ls_unknown_column(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls", "--columns", "params.lr,bogus")
    assert (code, out) == (1, "")
    assert "unknown column 'bogus'" in one_line_error(err)


def test_ls_negative_limit_is_refused(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["ls", "-n", "-1"])
    except SystemExit as exc:  # an argparse usage error
        code = exc.code
    assert code != 0


def test_ls_short_ids_work_with_show(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Runs started within the same ~4 s share their first 13 characters; make sure the two newest do.
    made: list[gitexp.Run] = []
    while len(made) < 2 or made[-1].id[:13] != made[-2].id[:13]:
        assert len(made) < 5
        with gitexp.start_run(name=f"r{len(made)}", experiment="other", **QUIET) as run:
            pass
        made.append(run)
    with gitexp.start_run(name="solo", experiment="solo", **QUIET) as solo:
        pass
    if solo.id[:13] != made[-1].id[:13]:  # pragma: no cover - a 4 s boundary fell just here
        pytest.skip("the last two runs straddle a short-id boundary")
    capsys.readouterr()
    for args in (["-n", "1"], ["-e", "solo"]):
        code, out, _ = cli(capsys, "ls", *args, "-f", "csv")
        assert code == 0
        (row,) = csv.DictReader(io.StringIO(out))
        assert row["name"] == "solo"
        code, out, err = cli(capsys, "show", row["id"])
        assert (code, err) == (0, ""), args
        assert solo.id in out


def test_ls_without_runs(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ls")
    assert (code, out) == (0, "")
    assert "no runs" in err and "git exp run" in err


# -- show -------------------------------------------------------------------------------------------


def test_show_by_id_prefix_and_name(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    beta = three_runs[1]
    short = short_ids(r.id for r in three_runs)[beta.id]  # what `git exp ls` shows
    for text in (beta.id, short, "beta"):
        code, out, err = cli(capsys, "show", text)
        assert (code, err) == (0, ""), text
        assert out.splitlines()[0].split() == ["run", beta.id, "cnn/beta"]


def test_show_ambiguous_prefix(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    prefix = three_runs[0].id[:9]  # the date
    if not all(r.id.startswith(prefix) for r in three_runs):  # pragma: no cover - runs straddle midnight
        pytest.skip("the runs were not all started on the same UTC day")
    code, out, err = cli(capsys, "show", prefix)
    assert (code, out) == (1, "")
    assert f"'{prefix}' matches 3 runs" in err
    shown = short_ids(r.id for r in three_runs)
    listed = err.splitlines()[1:4]
    for run in three_runs:  # each candidate by its handle, experiment/name and id, newest first
        assert listed.pop().split() == [shown[run.id], f"{run.experiment}/{run.name}", run.id]
    assert err.splitlines()[-1] == "name one by its handle (the first column) or its full id"


def test_show_unknown_run_suggests_close_names(three_runs: list[gitexp.Run],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    beta = three_runs[1]
    code, out, err = cli(capsys, "show", "betta")
    assert (code, out) == (1, "")
    first, suggestion = err.splitlines()
    assert first.startswith("git exp: error: no run matches 'betta'") and "did you mean" in first
    assert suggestion.split() == [short_ids(r.id for r in three_runs)[beta.id], "cnn/beta", beta.id]


def test_a_handle_is_case_insensitive_and_4_characters_suffice(three_runs: list[gitexp.Run],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    shown = short_ids(r.id for r in three_runs)
    for run in three_runs:
        for text in (shown[run.id].upper(), shown[run.id][:4]):
            if sum(s.startswith(shown[run.id][:4]) for s in shown.values()) > 1 and len(text) == 4:
                continue  # pragma: no cover - two of the three share their first 4 random digits
            code, out, err = cli(capsys, "show", text)
            assert (code, err) == (0, ""), text
            assert out.split()[1] == run.id


def test_handles_shown_stay_valid_as_runs_are_added(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A prefix of the id (what ls showed before handles) would name every run of the same moment.
    for i in range(3):
        with gitexp.start_run(name=f"early{i}", **QUIET):
            pass
    capsys.readouterr()
    early = {line.split()[1]: line.split()[0] for line in cli(capsys, "ls")[1].splitlines()[2:]}
    for i in range(12):
        with gitexp.start_run(name=f"late{i}", **QUIET):
            pass
    capsys.readouterr()
    for name, handle in early.items():
        code, out, err = cli(capsys, "show", handle)
        assert (code, err) == (0, ""), handle
        assert out.split()[2] == f"default/{name}"


def _copy_run(repo: Path, source: gitexp.Run, run_id: str) -> str:
    """Another ref at *source*'s commit under the id *run_id*: a run as another machine could have made
    it, with a random part chosen to collide."""
    ref = f"refs/experiments/{source.experiment}/{run_id}"
    git(repo, "update-ref", ref, git(repo, "rev-parse", source.ref).strip())
    return run_id


def test_every_id_gitexp_prints_names_that_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made = []
    for i in range(8):  # the same second: every id starts with the same 13 or more characters
        with gitexp.start_run(name=f"r{i % 3}", experiment=("cnn", "rnn")[i % 2], **QUIET) as run:
            run.log_metric("acc", i / 10)
            run.log_text("w", "model.txt")
        made.append(run)
    capsys.readouterr()
    day, time = made[0].id[:8], made[0].id[9:16]
    crafted = [
        _copy_run(repo, made[0], f"{day}-{time}abcdef01"),  # shares 7 random digits with the next
        _copy_run(repo, made[1], f"{day}-{time}abcdef02"),
        _copy_run(repo, made[2], f"20250101-{time}abcdef02"),  # all 8 with the one before: full ids
        _copy_run(repo, made[3], f"{day}-{time}{day[:7]}f"),  # digits that start this day's ids
        _copy_run(repo, made[4], f"{day}-{time}{day}"),  # the whole date
    ]
    ids = [r.id for r in made] + crafted
    printed: list[tuple[str, str]] = []  # (token, the run it was printed for)

    out = cli(capsys, "ls")[1]
    newest_first = sorted(ids, reverse=True)
    printed += [(line.split()[0], run_id) for line, run_id in zip(out.splitlines()[2:], newest_first, strict=True)]
    rows = list(csv.DictReader(io.StringIO(cli(capsys, "ls", "-f", "csv")[1])))
    printed += [(row["id"], run_id) for row, run_id in zip(rows, newest_first, strict=True)]
    for run_id in ids:
        out = cli(capsys, "show", run_id)[1]
        printed += [(token, run_id) for token in RUN_ID_TOKEN.findall(out)]
        printed += [(line.split()[1], run_id) for line in out.splitlines() if line.startswith("handle")]
        printed += [(token, run_id) for token in re.findall(r"`git exp \w+ (?:-f )?(\S+?)[ `]", out)]
    for a, b in itertools.pairwise(ids):
        header = cli(capsys, "diff", a, b)[1].splitlines()[:2]
        printed += [(header[0].split()[2], a), (header[1].split()[2], b)]
    out = cli(capsys, "compare", *ids)[1]
    labels = out.splitlines()[0].split()[1:]
    id_row = next(line for line in out.splitlines() if line.startswith("id ")).split()[1:]
    printed += [(label.rpartition("@")[2], run_id) for label, run_id in zip(labels, ids, strict=True) if "@" in label]
    printed += list(zip(id_row, ids, strict=True))

    assert len({run_id for _, run_id in printed}) == len(ids)
    for token, run_id in printed:
        code, out, err = cli(capsys, "show", token)
        assert (code, err) == (0, ""), f"{token} printed for {run_id}: {err}"
        assert out.split()[1] == run_id, f"{token} printed for {run_id} names {out.split()[1]}"
    by_run: dict[str, set[str]] = {}
    for token, run_id in printed:
        by_run.setdefault(run_id, set()).add(token)
    assert by_run[crafted[0]] == {crafted[0], "abcdef01"}  # 8 digits where 7 are shared
    assert by_run[crafted[2]] == {crafted[2]}  # only its full id tells it apart
    assert by_run[crafted[3]] == {crafted[3], f"{day[:7]}f"}
    assert by_run[crafted[4]] == {crafted[4]}


def test_show_unknown_run(three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "show", "no-such-run")
    assert (code, out) == (1, "")
    assert "'no-such-run'" in one_line_error(err)


def test_show_yaml_and_json(repo: Path, three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str]) -> None:
    alpha = three_runs[0]
    code, out, _ = cli(capsys, "show", "alpha", "--format", "yaml")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["id"] == alpha.id
    assert data["experiment"] == "cnn"
    assert data["commit"] == run_refs(repo)[alpha.ref]
    assert data["params"] == {"lr": 0.1, "opt": "sgd"}
    assert data["metrics"]["acc"] == {"last": 0.123456789, "step": 0, "min": 0.123456789,
                                      "max": 0.123456789, "count": 1}
    assert data["meta"]["status"] == "FINISHED"
    assert data["env"]["python"]["version"] == ".".join(map(str, sys.version_info[:3]))

    code, out, _ = cli(capsys, "show", "alpha", "-f", "json")
    assert code == 0
    assert json.loads(out) == json.loads(json.dumps(data, default=str))


# -- run --------------------------------------------------------------------------------------------


def write_script(repo: Path, body: str) -> None:
    (repo / "script.py").write_text(textwrap.dedent(body))


def test_run_records_the_command(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_script(repo, """\
        import json
        import gitexp

        print("child params:", json.dumps(gitexp.params(), sort_keys=True))
        with gitexp.start_run() as run:
            for step, acc in enumerate([0.5, 0.75]):
                run.log_metric("acc", acc, step=step)
        print("child done")
        """)
    code, out, err = cli(capsys, "run", "--name", "x", "-p", "lr=0.1", "-p", "model.layers=3",
                         "--", sys.executable, "script.py")
    assert code == 0, err
    assert 'child params: {"lr": 0.1, "model": {"layers": 3}}' in out  # the terminal still sees it

    ref = the_run(repo)
    params = read_yaml(repo, ref, "params.yaml")
    assert params == {"lr": 0.1, "model": {"layers": 3}}
    assert type(params["lr"]) is float and type(params["model"]["layers"]) is int
    metrics = read_yaml(repo, ref, "metrics.yaml")
    assert metrics["acc"]["last"] == 0.75 and metrics["acc"]["count"] == 2
    meta = read_yaml(repo, ref, "meta.yaml")
    assert (meta["name"], meta["status"], meta["exit_code"]) == ("x", "FINISHED", 0)
    assert meta["command"] == [sys.executable, "script.py"]
    log = git(repo, "show", f"{ref}:output.log")
    assert 'child params: {"lr": 0.1, "model": {"layers": 3}}' in log
    assert "child done" in log
    # The run's code snapshot holds the script it ran.
    assert "print(\"child done\")" in git(repo, "show", f"{ref}:code/script.py")


def test_run_failing_command(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_script(repo, """\
        import sys
        print("giving up")
        sys.exit(3)
        """)
    code, _, _ = cli(capsys, "run", "--", sys.executable, "script.py")
    assert code == 3
    meta = read_yaml(repo, the_run(repo), "meta.yaml")
    assert (meta["status"], meta["exit_code"]) == ("FAILED", 3)
    assert meta["error"]["message"] == "command exited with code 3"


@pytest.mark.parametrize("inside_with", [True, False], ids=["with-block", "module-level-api"])
def test_run_script_that_raises(repo: Path, capsys: pytest.CaptureFixture[str], inside_with: bool) -> None:
    if inside_with:
        body = """\
            import gitexp
            with gitexp.start_run():
                raise KeyError("missing-column")
            """
    else:
        body = """\
            import gitexp
            gitexp.log_metric("loss", 1.0)
            raise KeyError("missing-column")
            """
    write_script(repo, body)
    code, _, err = cli(capsys, "run", "--", sys.executable, "script.py")
    assert code == 1
    assert "KeyError" in err  # the child's traceback reaches the terminal
    ref = the_run(repo)
    meta = read_yaml(repo, ref, "meta.yaml")
    assert (meta["status"], meta["exit_code"]) == ("FAILED", 1)
    assert meta["error"]["type"] == "KeyError"
    assert "missing-column" in meta["error"]["message"]
    assert "KeyError" in git(repo, "show", f"{ref}:output.log")


def test_run_masks_secrets_everywhere(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "SECRETVALUE123"
    # The script holds no secret itself: it gets it on its command line, as a user would pass it.
    write_script(repo, """\
        import sys
        import gitexp

        key = sys.argv[sys.argv.index("--api-key") + 1]
        print("token=" + key)
        print("connecting with --api-key", key)
        with gitexp.start_run() as run:
            run.log_metric("x", 1.0)
        """)
    code, _, err = cli(capsys, "run", "--name", "secretive", "--", sys.executable, "script.py",
                       "--api-key", secret)
    assert code == 0, err
    ref = the_run(repo)
    log = git(repo, "show", f"{ref}:output.log")
    assert "token=****" in log
    assert read_yaml(repo, ref, "meta.yaml")["command"][-2:] == ["--api-key", "****"]

    commits = git(repo, "rev-list", ref).split()
    assert len(commits) >= 2  # the base commit and the run's commits
    for commit in commits:
        assert secret not in git(repo, "cat-file", "-p", commit)  # the message and header
        for line in git(repo, "ls-tree", "-r", commit).splitlines():
            _mode, kind, oid = line.split("\t")[0].split()
            assert kind == "blob", line
            assert secret not in git(repo, "cat-file", "blob", oid), line.split("\t")[1]
    # And the same with git's own search, across every commit of the run.
    proc = subprocess.run(["git", "grep", "-a", "-F", secret, *commits], cwd=repo, capture_output=True)
    assert proc.returncode == 1, proc.stdout


def test_run_output_is_not_read_as_journal_records(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Output that looks like the journal's own records stays output.
    write_script(repo, """\
        print('P\\t{"injected": 1}')
        print('S\\t{"name": "hijacked", "status": "FINISHED"}')
        print('M\\t0\\t0.0\\t42.0\\tfake')
        """)
    code, _, _ = cli(capsys, "run", "--name", "honest", "--", sys.executable, "script.py")
    assert code == 0
    ref = the_run(repo)
    assert read_yaml(repo, ref, "params.yaml") == {}
    assert read_yaml(repo, ref, "meta.yaml")["name"] == "honest"
    assert read_yaml(repo, ref, "metrics.yaml") == {}


def test_run_unknown_command(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "run", "--name", "typo", "--", "does-not-exist-xyz", "--flag")
    assert (code, out) == (1, "")
    line = one_line_error(err)
    assert "'does-not-exist-xyz'" in line and "FAILED" in line
    meta = read_yaml(repo, the_run(repo), "meta.yaml")
    assert (meta["name"], meta["status"], meta["exit_code"]) == ("typo", "FAILED", 127)
    assert meta["error"]["type"] == "FileNotFoundError"


def test_run_params_in_exponent_notation_are_numbers(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "-p", "lr=1e-3", "-p", "wd=5E-4", "--", sys.executable, "-c", "pass")
    assert code == 0, err
    assert read_yaml(repo, the_run(repo), "params.yaml") == {"lr": 0.001, "wd": 0.0005}


def test_run_conflicting_params_are_a_clear_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "-p", "model=3", "-p", "model.layers=4", "--", sys.executable, "-c",
                       "pass")
    assert code == 1
    assert "model" in one_line_error(err)
    assert run_refs(repo) == {}


def test_run_invalid_param_syntax(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "-p", "lr", "--", sys.executable, "-c", "pass")
    assert code == 1
    assert "invalid param 'lr'" in one_line_error(err)
    assert run_refs(repo) == {}


def test_run_without_command(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "--name", "nothing")
    assert code == 1
    assert "no command to run" in one_line_error(err)
    assert run_refs(repo) == {}


# -- help -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], *([c, "--help"] for c in ("run", "ls", "show", "rm",
                                                                          "recover", "gc"))])
def test_help_exits_0(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: git exp{' ' + args[0] if len(args) > 1 else ''}")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ls", "--no-such-option"])
    assert info.value.code == 2
    assert "--no-such-option" in capsys.readouterr().err


# -- repositories of every kind ---------------------------------------------------------------------


def test_repository_without_commits(empty_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (empty_repo / "train.py").write_text("print('hi')\n")
    with gitexp.start_run(name="first", params={"lr": 0.5}, **QUIET) as run:
        run.log_metric("loss", 0.25)
    capsys.readouterr()

    ref = the_run(empty_repo)
    # The run is its final commit alone (it ended before its first flush), and a root commit:
    # there is no code commit to hang it on.
    history = git(empty_repo, "rev-list", "--parents", ref).splitlines()
    assert history == [run_refs(empty_repo)[ref]]
    assert read_yaml(empty_repo, ref, "meta.yaml")["id"] == run.id

    meta = read_yaml(empty_repo, ref, "meta.yaml")
    assert meta["git"]["commit"] is None
    assert meta["git"]["branch"] == "main"
    assert "print('hi')" in git(empty_repo, "show", f"{ref}:code/train.py")  # the snapshot has the code

    code, out, _ = cli(capsys, "ls")
    assert code == 0 and "first" in out
    code, out, _ = cli(capsys, "show", "first")
    assert code == 0 and "no commit" in out
    assert git(empty_repo, "branch", "--list") == ""  # no branch was created behind the user's back


def test_bare_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    monkeypatch.chdir(bare)
    code, out, err = cli(capsys, "ls")
    assert (code, out) == (0, "")
    assert "no runs" in err

    monkeypatch.chdir(tmp_path)
    with gitexp.start_run(name="in-bare", repo=bare, params={"lr": 1}, **QUIET) as run:
        run.log_metric("acc", 1.0)
    ref = the_run(bare)
    assert ref == run.ref
    entries = git(bare, "ls-tree", "--name-only", ref).split()
    assert "code" not in entries and "code.patch" not in entries
    assert {"meta.yaml", "params.yaml", "metrics.yaml"} <= set(entries)
    meta = read_yaml(bare, ref, "meta.yaml")
    assert meta["code"] == {}
    assert meta["git"]["commit"] is None

    monkeypatch.chdir(bare)
    capsys.readouterr()
    code, out, _ = cli(capsys, "ls")
    assert code == 0 and "in-bare" in out
    code, out, _ = cli(capsys, "show", "in-bare")
    assert code == 0 and run.id in out


def test_detached_head(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    git(repo, "checkout", "-q", "--detach", "HEAD")
    head = git(repo, "rev-parse", "HEAD").strip()
    with gitexp.start_run(name="detached", **QUIET):
        pass
    ref = the_run(repo)
    git_state = read_yaml(repo, ref, "meta.yaml")["git"]
    assert git_state["branch"] is None
    assert git_state["commit"] == head
    assert git_state["dirty"] is False
    # The run's first commit hangs on the code commit it ran.
    assert git(repo, "rev-list", "--max-parents=0", ref).strip() == git(repo, "rev-list", "--max-parents=0",
                                                                         "HEAD").strip()
    assert head in git(repo, "rev-list", ref).split()
    capsys.readouterr()
    code, out, _ = cli(capsys, "show", "detached")
    assert code == 0
    code_line = next(line for line in out.splitlines() if line.startswith("code"))
    assert code_line.split() == ["code", head[:12]]


# -- the installed command --------------------------------------------------------------------------


def test_console_script_and_module(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    with gitexp.start_run(name="from-subprocess", **QUIET):
        pass
    env = dict(env_for_subprocess)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for command in (["git", "exp", "ls"], [sys.executable, "-m", "gitexp", "ls"]):
        proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (command, proc.stderr)
        assert "from-subprocess" in proc.stdout, command
    proc = subprocess.run(["git", "exp", "show", "nope"], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("git exp: error: no run matches 'nope'")


def test_each_command_is_registered_by_the_module_commands_names() -> None:
    import argparse
    import importlib

    from gitexp.cli.main import COMMAND_MODULES, COMMANDS, build_parser

    registered: dict[str, str] = {}
    for module in COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(f"gitexp.cli.{module}").register(lambda name, text, sub=sub: sub.add_parser(name))
        registered.update(dict.fromkeys(sub.choices, module))
    assert registered == COMMANDS
    for command in COMMANDS:  # the parser of one module knows the command as the whole parser does
        one = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
        assert command in one.choices


def test_ls_as_a_process_prints_what_it_prints_in_process(three_runs: list[gitexp.Run], repo: Path,
                                                          env_for_subprocess: dict[str, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # The process ends without the interpreter's teardown once its output is out (cli.exit_now).
    for args in (["ls"], ["ls", "-f", "md"], ["ls", "-f", "csv"], ["ls", "--where", "params.lr < 0.1", "-s", "name"]):
        _, expected, _ = cli(capsys, *args)
        proc = subprocess.run([sys.executable, "-m", "gitexp", *args], cwd=repo, env=env_for_subprocess,
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, ""), args
    head = subprocess.run(f"{sys.executable} -m gitexp ls | head -1", shell=True, cwd=repo, env=env_for_subprocess,
                          capture_output=True, text=True, timeout=60)
    assert head.stdout.split()[:2] == ["id", "name"] and head.stderr == ""


def test_a_process_runs_every_exit_callback_and_then_ends_without_teardown(
        three_runs: list[gitexp.Run], repo: Path, env_for_subprocess: dict[str, str], tmp_path: Path) -> None:
    """Another's exit callback (a sitecustomize's, coverage's) runs as at any exit, and no longer
    keeps `git exp` from ending without the interpreter's teardown, which frees every object one by
    one (0.5 s of a first listing of 100,000 runs)."""
    marks = tmp_path / "marks"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"""
import atexit


def _mark(text, opened=open):
    with opened({str(marks)!r}, "a") as handle:
        handle.write(text + "\\n")


class _Torn:
    def __del__(self, mark=_mark):  # called only when the interpreter tears its modules down
        mark("teardown")


kept = _Torn()
atexit.register(_mark, "callback")
""")
    env = {**env_for_subprocess, "PYTHONPATH": os.pathsep.join([str(site), env_for_subprocess["PYTHONPATH"]])}
    for args in (["ls"], ["ls", "--where", "params.lr < 1", "--sort", "name"], ["ls", "-f", "csv"]):
        marks.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "gitexp", *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and "alpha" in proc.stdout, proc.stderr
        assert marks.read_text().split() == ["callback"], args
    marks.unlink()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, timeout=60)
    assert sorted(marks.read_text().split()) == ["callback", "teardown"], "a plain exit tears down"


# -- options and positionals in any order, as in git --------------------------------------------------


def test_options_and_run_names_mix_freely(three_runs: list[gitexp.Run], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta, gamma = three_runs
    # The command: metrics, an option, then runs.
    mixed, apart = tmp_path / "mixed.png", tmp_path / "apart.png"
    code, out, err = cli(capsys, "plot", "acc", "-o", str(mixed), "alpha", "beta")
    assert (code, out, err) == (0, f"{mixed}\n", "")
    assert cli(capsys, "plot", "acc", "alpha", "beta", "-o", str(apart))[0] == 0
    assert mixed.read_bytes() == apart.read_bytes()  # the same runs and metric, whatever the order
    code, _, err = cli(capsys, "plot", "acc", "-o", str(mixed), "alpha", "nosuchrun")
    assert code == 1 and "nosuchrun" in err  # the word after the option is read as a run, not refused

    code, out, _ = cli(capsys, "show", "alpha", "--format", "json")
    assert code == 0 and json.loads(out)["id"] == alpha.id
    code, out, _ = cli(capsys, "diff", "alpha", "--format", "json", "beta")
    assert code == 0 and (json.loads(out)["a"]["id"], json.loads(out)["b"]["id"]) == (alpha.id, beta.id)
    code, out, _ = cli(capsys, "compare", "alpha", "-f", "json", "gamma", "--precision", "3")
    assert code == 0 and set(json.loads(out)[0]) == {"field", "alpha", "gamma"}  # a column per run
    code, out, _ = cli(capsys, "ls", "--format", "csv", "-e", "cnn", "-n", "1")
    assert code == 0 and len(list(csv.reader(io.StringIO(out)))) == 2
    code, out, _ = cli(capsys, "rm", "alpha", "--experiment", "cnn", "beta")
    assert code == 0 and out.count("removed ") == 2
    assert set(run_refs(Path.cwd())) == {gamma.ref}
    code, out, _ = cli(capsys, "rm", "alpha", "--undo", "beta")
    assert code == 0 and out.count("restored ") == 2


def test_run_passes_every_word_after_the_command_to_it(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    show_argv = "import sys; print('argv:', sys.argv[1:])"
    code, _, err = cli(capsys, "run", "-e", "mixing", "--", sys.executable, "-c", show_argv, "-e", "y", "--name", "z")
    assert code == 0, err
    ref = the_run(repo)
    assert ref.startswith("refs/experiments/mixing/")  # -e before the command is gitexp's
    assert "argv: ['-e', 'y', '--name', 'z']" in git(repo, "show", f"{ref}:output.log")  # after it, the command's
    assert read_yaml(repo, ref, "meta.yaml")["command"] == [sys.executable, "-c", show_argv, "-e", "y", "--name", "z"]


def test_outside_a_repository_the_cli_says_what_to_do_in_a_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    monkeypatch.chdir(outside)
    code, out, err = cli(capsys, "ls")
    assert (code, out) == (1, "")
    assert one_line_error(err) == (f"git exp: error: not a git repository: {outside}; gitexp stores runs in git: cd "
                                   "into a repository, `git init` one here, or name one with `git -C PATH exp ...`")
    # Python keeps its own advice: repo=PATH is an argument there.
    with pytest.raises(gitexp.GitexpError, match=r"or pass repo=PATH\)$"):
        gitexp.start_run(**QUIET)


# -- typos are not silent -----------------------------------------------------------------------------


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("git exp: warning: ")]


@pytest.mark.parametrize(("args", "expected"), [
    (["ls", "--where", "metrics.accuracy > 0.1"],
     "no run has metrics.accuracy, which --where reads; did you mean metrics.acc?"),
    (["ls", "-e", "cnn", "--where", "params.learning_rate < 1"],
     "no run of experiment 'cnn' has params.learning_rate, which --where reads; their params: lr, opt"),
    (["ls", "--sort", "-metrics.acuracy"], "no listed run has metrics.acuracy, so --sort cannot order by it; "
                                           "did you mean metrics.acc?"),
    (["ls", "--sort", "metrics.acc.mx"], "no listed run has metrics.acc.mx, so --sort cannot order by it; "
                                         "did you mean metrics.acc.max or metrics.acc?"),
    (["ls", "-c", "params.lrr,params.acc"], "no listed run has params.lrr, so its column (--columns) is empty; "
                                            "did you mean params.lr?"),
    (["ls", "-c", "params.acc"], "no listed run has params.acc, so its column (--columns) is empty; "
                                 "did you mean metrics.acc?"),
    (["compare", "--sort", "metrics.ac"], "no listed run has metrics.ac, so --sort cannot order by it; "
                                          "did you mean metrics.acc?"),
    (["compare", "alpha", "beta", "--where", "params.lrr < 1"],
     "none of the runs has params.lrr, which --where reads; did you mean params.lr?"),
    (["best", "acc", "--where", "tags.dataset = 'x'"],
     "no run has tags.dataset, which --where reads; they have no tags"),
    (["report", "--where", "params.op = 'sgd'", "-o", "report.html"],
     "no run has params.op, which --where reads; did you mean params.opt?"),
    (["plot", "acc", "-o", "acc.png", "--where", "metrics.acc.mx > 0"],  # every run searched, as report does
     "no run has metrics.acc.mx, which --where reads; did you mean metrics.acc.max or metrics.acc?"),
    (["plot", "acc", "alpha", "beta", "-o", "acc.png", "--where", "metrics.acc.mx > 0"],
     "none of the runs has metrics.acc.mx, which --where reads; did you mean metrics.acc.max or metrics.acc?"),
])
def test_a_field_no_run_has_is_warned_of_with_the_closest_names(
        three_runs: list[gitexp.Run], capsys: pytest.CaptureFixture[str], args: list[str], expected: str) -> None:
    _, _, err = cli(capsys, *args)
    assert f"git exp: warning: {expected}" in warnings_of(err), err


def test_fields_some_run_has_are_not_warned_of(three_runs: list[gitexp.Run],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["ls", "--where", "metrics.acc > 0.9 and params.opt = 'sgd'", "--sort", "-metrics.acc.max,name"],
                 ["ls", "-e", "rnn", "-c", "params.lr,metrics.acc.count,description,host"],
                 ["ls", "--where", "params.lr < 0.05 or metrics.acc is null", "--sort", "params.lr"],
                 ["compare", "alpha", "gamma", "--sort", "-params.lr"]):
        code, _, err = cli(capsys, *args)
        assert (code, warnings_of(err)) == (0, []), (args, err)


def test_search_runs_warns_as_python_warnings(three_runs: list[gitexp.Run]) -> None:
    with pytest.warns(RuntimeWarning, match=r"gitexp: no run has params\.LR, which --where reads; did you mean "
                                            r"params\.lr\?"):
        assert gitexp.search_runs("params.LR < 1") == []


# -- -n is a count in every command ----------------------------------------------------------------------


def test_every_dash_n_is_a_count_and_run_dash_n_still_names_with_a_warning(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from gitexp.cli.main import build_parser

    def parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
        found = [(parser.prog, parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += [p for sub in action.choices.values() for p in parsers(sub)]
        return found

    old_spellings = []
    for prog, parser in parsers(build_parser()):
        for action in parser._actions:
            if "-n" in action.option_strings:
                if action.type is int:
                    continue
                assert action.help and action.help.startswith("deprecated spelling of --name"), prog
                old_spellings.append(prog)
    assert sorted(old_spellings) == ["git exp rerun", "git exp run"]
    code, _, err = cli(capsys, "run", "-n", "old-habit", "--", sys.executable, "-c", "pass")
    assert code == 0
    assert warnings_of(err) == ["git exp: warning: `git exp run -n NAME` is deprecated: -n is to mean a count in "
                                "every command, as in `git log -n`; use --name NAME"]
    code, out, err = cli(capsys, "ls", "--max-count", "1", "-c", "name", "-f", "csv")
    assert (code, err) == (0, "") and out.splitlines()[1].split(",")[1] == "old-habit"
    code, _, err = cli(capsys, "run", "--name", "new-habit", "--", sys.executable, "-c", "pass")
    assert code == 0 and warnings_of(err) == []


# -- ls at a terminal: fits its width, pages like git; pipes stay complete -----------------------------


@pytest.fixture
def two_experiments(repo: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Runs of two experiments whose params and metrics differ (most columns empty for the other's runs)."""
    for i, lr in enumerate([0.01, 0.03, 0.1, 0.3, 1.0]):
        params = {"lr": lr, "batch_size": 32 * (1 + i % 2), "model": {"hidden": 64 * (1 + i % 3), "layers": i},
                  "optimizer": "sgd" if i % 2 else "adam"}
        with gitexp.start_run(name=f"mlp-sweep-lr{lr}", experiment="mlp", params=params, **QUIET) as run:
            run.log_metrics({"acc": 0.5 + i / 10, "loss": 1 / (i + 1), "val/acc": 0.4 + i / 10})
    for i, dropout in enumerate([0.0, 0.25, 0.5]):
        params = {"dropout": dropout, "kernel_size": 3 + 2 * i, "channels": 16 * (i + 1), "augment": i % 2 == 1}
        with gitexp.start_run(name=f"cnn-dropout{dropout}", experiment="cnn", params=params, **QUIET) as run:
            run.log_metrics({"top1": 0.6 + i / 10, "top5": 0.9, "loss": 0.5 - i / 10})
    capsys.readouterr()
    return repo


def in_terminal(repo: Path, env: dict[str, str], *args: str, columns: int = 100, lines: int = 50,
                **extra_env: str) -> tuple[int, str, str]:
    """`git exp ARGS` with stdin and stdout on a pseudo-terminal of *columns* x *lines*: its exit code,
    what the terminal showed and what it wrote to stderr (a pipe, so the two stay apart)."""
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES", "GIT_PAGER_IN_USE", "PAGER", "GIT_PAGER")}
    return on_a_terminal([sys.executable, "-m", "gitexp", *args], repo, {**env, **extra_env}, columns, lines)


def on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str], columns: int = 80,
                  lines: int = 24) -> tuple[int, str, str]:
    """Run *argv* with stdin and stdout on a pseudo-terminal of *columns* x *lines*; see in_terminal."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    shown = []
    try:
        while True:
            if not select.select([master], [], [], 60)[0]:
                proc.kill()  # waiting for input (a pager that should not have started): fail, not hang
                raise AssertionError(f"{argv} showed {b''.join(shown)!r} and then waited for a minute")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process that had the terminal open is gone
                break
            if not chunk:
                break
            shown.append(chunk)
    finally:
        os.close(master)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), b"".join(shown).decode().replace("\r\n", "\n"), err


def test_ls_on_a_terminal_fits_its_width(two_experiments: Path, env_for_subprocess: dict[str, str]) -> None:
    code, shown, err = in_terminal(two_experiments, env_for_subprocess, "ls", GIT_PAGER="cat")
    assert code == 0, err
    lines = shown.splitlines()
    assert max(map(len, lines)) <= 100, shown
    assert lines[0].split() == ["params", "metrics"]
    header = lines[1].split()
    assert header[:4] == ["id", "experiment", "name", "status"]
    rows = lines[3:]
    assert len(rows) == 8 and {row.split()[1] for row in rows} == {"mlp", "cnn"}
    # What was hidden is said, with how to see it; every hidden column is a column of the complete listing.
    (note,) = err.splitlines()
    assert note.startswith("git exp: ") and "hidden to fit 100 columns (" in note and note.endswith("--wide shows all")
    assert len(note) <= 100 and "start, duration, commit" in note
    # Piped, the listing is what it always was: every column, no experiment, nothing said.
    piped = subprocess.run([sys.executable, "-m", "gitexp", "ls"], cwd=two_experiments, env=env_for_subprocess,
                           capture_output=True, text=True, timeout=60)
    assert piped.stderr == ""
    full = piped.stdout.splitlines()[0].split()
    assert "experiment" not in full and {"params.lr", "params.dropout", "metrics.top1", "commit"} <= set(full)
    assert max(map(len, piped.stdout.splitlines())) > 100
    # --wide shows every column on the terminal too, with the experiment.
    code, shown, err = in_terminal(two_experiments, env_for_subprocess, "ls", "--wide", GIT_PAGER="cat")
    assert (code, err) == (0, "")
    assert shown.splitlines()[0].split() == [*full[:1], "experiment", *full[1:]]


def test_ls_as_git_pages_it_fits_the_width_git_gives(two_experiments: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # `git -p exp ls` and pager.exp: git runs the pager, and tells its commands so, and the width.
    monkeypatch.setenv("GIT_PAGER_IN_USE", "true")
    monkeypatch.setenv("COLUMNS", "72")
    code, out, err = cli(capsys, "ls")
    assert code == 0 and "hidden to fit 72 columns" in err
    assert max(map(len, out.splitlines())) <= 72 and "experiment" in out.splitlines()[1]
    # Other formats keep every column.
    code, out, _ = cli(capsys, "ls", "-f", "csv")
    assert code == 0 and "params.lr" in out.splitlines()[0] and "experiment" not in out.splitlines()[0]


def test_ls_pages_long_output_through_the_pager_git_would_use(two_experiments: Path, tmp_path: Path,
                                                              env_for_subprocess: dict[str, str]) -> None:
    paged = tmp_path / "paged.txt"
    pager = f"printf '%s|%s\\n' \"$LESS\" \"$LV\" > {paged}; cat >> {paged}"
    # 8 runs do not fit on a terminal of 6 lines: $GIT_PAGER gets them, with git's LESS and LV.
    code, shown, err = in_terminal(two_experiments, env_for_subprocess, "ls", lines=6, GIT_PAGER=pager)
    assert code == 0, err
    options, *table = paged.read_text().splitlines()
    assert options == "FRX|-c"
    assert len(table) == 11 and "mlp-sweep-lr0.01" in table[-1]
    assert "mlp-sweep" not in shown  # the pager wrote it elsewhere: nothing went around it
    # A LESS of the user's own stays; core.pager (git config, `git -c` too) when GIT_PAGER is not set.
    git(two_experiments, "config", "core.pager", pager)
    code, _, _ = in_terminal(two_experiments, env_for_subprocess, "ls", lines=6, LESS="-S")
    assert code == 0 and paged.read_text().splitlines()[0] == "-S|-c"
    env = dict(env_for_subprocess, GIT_CONFIG_PARAMETERS="'core.pager'='cat'")  # what `git -c core.pager=cat` sets
    paged.unlink()
    code, shown, _ = in_terminal(two_experiments, env, "ls", lines=6)
    assert code == 0 and "mlp-sweep-lr0.01" in shown and not paged.exists()
    # GIT_PAGER=cat (`git --no-pager exp`): no pager; a short listing: no pager either.
    for args, extra in ((["ls"], {"GIT_PAGER": "cat"}), (["ls", "-n", "2"], {})):
        code, shown, _ = in_terminal(two_experiments, env_for_subprocess, *args, lines=6, **extra)
        assert code == 0 and "cnn-dropout" in shown and not paged.exists(), args


def test_a_pager_quit_early_is_no_error(repo: Path, env_for_subprocess: dict[str, str]) -> None:
    # More than a pipe holds, to a pager that reads none of it (as when a person quits less at once).
    script = "from gitexp.cli.pager import page; page('x' * 70 + '\\n' * 100_000); print('after')"
    code, shown, err = on_a_terminal([sys.executable, "-c", script], repo, {**env_for_subprocess, "GIT_PAGER": "true"})
    assert (code, err) == (0, "")
    assert shown == "after\n"
