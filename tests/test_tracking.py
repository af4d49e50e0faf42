"""The logging API, checked the way a user would: through plain git and yaml.safe_load."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import gitexp
from gitexp.errors import InvalidNameError, InvalidValueError, ParamConflictError
from tests.conftest import git

QUIET = {"system_metrics_interval": 0}


def show_yaml(repo: Path, ref: str, path: str) -> object:
    return yaml.safe_load(git(repo, "show", f"{ref}:{path}"))


def test_run_is_a_commit_readable_with_plain_git(repo: Path) -> None:
    params = {"lr": 0.01, "model": {"layers": 4, "act": "relu"}, "sizes": [1, 2], "flag": True}
    with gitexp.start_run(experiment="cnn", name="baseline", params=params, **QUIET) as run:
        for step in range(10):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_metrics({"acc": step / 10, "val/acc": step / 20}, step=step)
        run.set_tag("dataset", "cifar10")
    assert run.ref == f"refs/experiments/cnn/{run.id}"
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/").split() == [run.ref]

    assert show_yaml(repo, run.ref, "params.yaml") == params
    meta = show_yaml(repo, run.ref, "meta.yaml")
    assert meta["id"] == run.id and meta["name"] == "baseline" and meta["experiment"] == "cnn"
    assert meta["status"] == "FINISHED" and meta["tags"] == {"dataset": "cifar10"}
    assert meta["start"].endswith("Z") and meta["end"] >= meta["start"] and meta["duration"] >= 0
    assert meta["git"]["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert meta["git"]["branch"] == "main" and meta["git"]["dirty"] is False
    summary = show_yaml(repo, run.ref, "metrics.yaml")
    assert summary["loss"] == {"last": 0.1, "step": 9, "min": 0.1, "max": 1.0, "count": 10}
    assert summary["val/acc"]["count"] == 10

    history = git(repo, "show", f"{run.ref}:metrics/val/acc.tsv").splitlines()
    assert history[0] == "step\ttime\tvalue"
    assert [line.split("\t")[0] for line in history[1:]] == [str(i) for i in range(10)]
    assert float(history[-1].split("\t")[2]) == 0.45

    env = show_yaml(repo, run.ref, "env.yaml")
    assert env["python"]["version"].count(".") == 2 and "gpu" in env


def test_commits_form_the_run_history(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    with gitexp.start_run(name="hist", **QUIET) as run:
        run.log_metric("x", 1)
    # A run this short ends before the background thread puts its RUNNING commit on the ref:
    # nobody saw it running, so its final commit takes that commit's place, with one ref update.
    commits = git(repo, "rev-list", "--parents", run.ref, "^HEAD").splitlines()
    assert [c.split()[1:] for c in commits] == [[head]], "one commit, on the code commit"
    message = git(repo, "log", "-1", "--format=%B", run.ref)
    assert f"Run-Id: {run.id}" in message and "Status: FINISHED" in message
    assert message.splitlines()[0].startswith("default/hist: FINISHED")
    reflog = git(repo, "reflog", "show", "--format=%gs", run.ref).splitlines()
    assert reflog == [f"gitexp: finished {run.id}"]
    # The code snapshot of a clean tree is the base commit's tree: stored for free.
    assert git(repo, "rev-parse", f"{run.ref}:code").strip() == git(repo, "rev-parse", "HEAD^{tree}").strip()
    assert git(repo, "cat-file", "-e", f"{run.ref}:code.patch", check=False) == ""

    # A run seen running (its RUNNING commit on the ref) ends on top of that commit.
    with gitexp.start_run(name="seen", **QUIET) as seen:
        seen.log_metric("x", 1)
        gitexp.flush()
        running = git(repo, "rev-parse", seen.ref).strip()
    commits = git(repo, "rev-list", "--parents", seen.ref, "^HEAD").splitlines()
    assert commits[0].split()[1:] == [running] and commits[-1].split()[1:] == [head]
    assert git(repo, "log", "-1", "--format=%s", commits[-1].split()[0]).startswith("default/seen: RUNNING")


def test_dirty_tree_snapshot_holds_edits_and_untracked_files_only(repo: Path) -> None:
    (repo / "train.py").write_text("print('edited')\n")
    (repo / "new.py").write_text("x = 1\n")
    (repo / "model.ckpt").write_bytes(b"ignored by .gitignore")
    (repo / "big.bin").write_bytes(b"0" * 2048)
    git(repo, "config", "exp.snapshotMaxSize", "1k")
    with pytest.warns(RuntimeWarning, match="big.bin"), gitexp.start_run(**QUIET) as run:
        pass
    files = git(repo, "ls-tree", "-r", "--name-only", f"{run.ref}:code").split()
    assert sorted(files) == [".gitignore", "new.py", "train.py"]
    assert git(repo, "show", f"{run.ref}:code/train.py") == "print('edited')\n"
    patch = git(repo, "show", f"{run.ref}:code.patch")
    assert "+print('edited')" in patch and "new.py" in patch
    meta = show_yaml(repo, run.ref, "meta.yaml")
    assert meta["git"]["dirty"] is True and meta["code"]["skipped"] == ["big.bin"]


def test_a_sweep_reuses_the_snapshot_but_never_misses_an_edit(repo: Path) -> None:
    script = repo / "train.py"
    script.write_text("print('one')\n")
    past = time.time_ns() - 10**10  # settled ten seconds ago: the snapshot of it can be reused
    os.utime(script, ns=(past, past))

    def code_of_new_run() -> tuple[str, str]:
        with gitexp.start_run(**QUIET) as run:
            pass
        return git(repo, "rev-parse", f"{run.ref}:code").strip(), git(repo, "show", f"{run.ref}:code/train.py")

    first, again = code_of_new_run(), code_of_new_run()
    assert first == again and first[1] == "print('one')\n"
    script.write_text("print('two')\n")  # same size, and the same mtime put back: only ctime tells
    os.utime(script, ns=(past, past))
    tree, text = code_of_new_run()
    assert text == "print('two')\n" and tree != first[0]


def test_a_repository_made_again_at_the_same_path_is_not_mistaken_for_the_old_one(repo: Path) -> None:
    with gitexp.start_run(name="old", **QUIET):
        pass
    shutil.rmtree(repo / ".git")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "again")
    with gitexp.start_run(name="new", **QUIET):
        pass
    assert [r.name for r in gitexp.load_runs()] == ["new"]
    gitexp.flush()  # the run's note written before fsck reads objects, then reflogs: not in between
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_a_changed_global_config_reaches_the_next_run_of_the_process(repo: Path, isolated_git: Path) -> None:
    # Runs of a process share one Repo and what it read of the config while no config file
    # changes. These edits keep the file's size and put its mtime back, as `git config` would
    # within a second: only the inode tells (libgit2 itself looks at no more).
    config, past = isolated_git / ".gitconfig", time.time_ns() - 3600 * 10**9
    os.utime(repo / ".git" / "config", ns=(past, past))  # a config file changed in the last 2 s is always re-read
    experiments = []
    for name in ("first", "first", "other", "again"):
        (isolated_git / "new").write_text(f"[exp]\n\texperiment = {name}\n")
        os.utime(isolated_git / "new", ns=(past, past))
        os.replace(isolated_git / "new", config)
        with gitexp.start_run(**QUIET) as run:
            pass
        experiments.append(run.experiment)
    assert experiments == ["first", "first", "other", "again"]


def test_params_are_immutable_but_repeating_a_value_is_fine(repo: Path) -> None:
    with gitexp.start_run(params={"lr": 0.1, "opt": {"name": "sgd"}}, **QUIET) as run:
        run.log_param("lr", 0.1)
        run.log_params({"opt": {"momentum": 0.9}})
        with pytest.raises(ParamConflictError, match=r"'lr'.*0\.1.*0\.2"):
            run.log_param("lr", 0.2)
        with pytest.raises(ParamConflictError, match=r"opt\.name"):
            run.log_params({"opt": {"name": "adam"}})
    assert show_yaml(repo, run.ref, "params.yaml") == {"lr": 0.1, "opt": {"name": "sgd", "momentum": 0.9}}


def test_metric_values_are_stored_faithfully(repo: Path) -> None:
    with gitexp.start_run(**QUIET) as run:
        run.log_metric("np", np.float32(0.5))
        run.log_metric("np", np.int64(3))
        run.log_metric("special", math.nan)
        run.log_metric("special", math.inf)
        run.log_metric("special", -math.inf)
        run.log_metric("tiny", 1e-300)
    record = gitexp.get_run(run.id)
    assert record.history("np").values == [0.5, 3.0]
    special = record.history("special").values
    assert math.isnan(special[0]) and special[1:] == [math.inf, -math.inf]
    assert record.history("tiny").values == [1e-300]
    assert record.metrics["special"]["count"] == 3


def test_steps_auto_increment_per_key(repo: Path) -> None:
    with gitexp.start_run(**QUIET) as run:
        for _ in range(3):
            run.log_metric("a", 1.0)
        run.log_metric("b", 1.0)
        run.log_metric("a", 1.0, step=10)
        run.log_metric("a", 1.0)
    record = gitexp.get_run(run.id)
    assert record.history("a").steps == [0, 1, 2, 10, 11]
    assert record.history("b").steps == [0]


@pytest.mark.parametrize("value", ["0.5", b"1", None, [1, 2], object()])
def test_non_numeric_metric_raises_naming_the_key(repo: Path, value: object) -> None:
    with gitexp.start_run(**QUIET) as run, pytest.raises(InvalidValueError, match="'acc'"):
        run.log_metric("acc", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["", "a\tb", "line\nbreak", "/lead", "trail/", "a//b", 3])
def test_invalid_metric_keys_raise(repo: Path, key: object) -> None:
    with gitexp.start_run(**QUIET) as run, pytest.raises(InvalidNameError):
        run.log_metric(key, 1.0)  # type: ignore[arg-type]


def test_unusual_keys_are_encoded_reversibly_and_never_merged(repo: Path) -> None:
    keys = ["a:b", "a%3Ab", "..", ".hidden", "über/ratio*", "trailing."]
    with gitexp.start_run(**QUIET) as run:
        for i, key in enumerate(keys):
            run.log_metric(key, float(i))
    record = gitexp.get_run(run.id)
    assert sorted(record.metrics) == sorted(keys)
    for i, key in enumerate(keys):
        assert record.history(key).values == [float(i)]


def test_exception_marks_run_failed_and_propagates(repo: Path) -> None:
    with pytest.raises(ZeroDivisionError), gitexp.start_run(**QUIET) as run:
        run.log_metric("x", 1)
        _ = 1 / 0
    meta = show_yaml(repo, run.ref, "meta.yaml")
    assert meta["status"] == "FAILED"
    assert meta["error"]["type"] == "ZeroDivisionError" and "division" in meta["error"]["message"]


def test_keyboard_interrupt_marks_run_killed(repo: Path) -> None:
    with pytest.raises(KeyboardInterrupt), gitexp.start_run(**QUIET) as run:
        raise KeyboardInterrupt
    assert show_yaml(repo, run.ref, "meta.yaml")["status"] == "KILLED"


def test_the_running_commit_reaches_the_ref_while_the_run_lives(repo: Path) -> None:
    run = gitexp.start_run(name="slow", flush_interval=0.01, **QUIET)
    try:
        deadline = time.monotonic() + 10
        while git(repo, "rev-parse", "-q", "--verify", run.ref, check=False) == "":  # another process's view
            assert time.monotonic() < deadline, "the background thread never wrote the RUNNING commit"
            time.sleep(0.01)
        assert "Status: RUNNING" in git(repo, "log", "-1", "--format=%B", run.ref)
    finally:
        run.end()
    reflog = git(repo, "reflog", "show", "--format=%gs", run.ref).splitlines()
    assert reflog == [f"gitexp: finished {run.id}", f"gitexp: running {run.id}"]


def test_a_process_sees_its_own_live_runs_at_once(repo: Path, gitexp_env: dict[str, str]) -> None:
    run = gitexp.start_run(name="fresh", **QUIET)  # flush interval 1 s: not on the ref yet
    try:
        assert gitexp.get_run("fresh").status == "RUNNING"  # this process reads it: written first
        run.log_metric("loss", 0.5)
        gitexp.flush()  # and another process sees everything logged so far
        shown = subprocess.run([sys.executable, "-m", "gitexp", "show", "fresh"], cwd=repo, env=gitexp_env,
                               capture_output=True, text=True, check=True).stdout
        assert "RUNNING" in shown and "loss" in shown
    finally:
        run.end()


def test_module_level_verbs_act_on_the_active_run(repo: Path) -> None:
    assert gitexp.active_run() is None
    run = gitexp.start_run(name="module", **QUIET)
    assert gitexp.active_run() is run
    gitexp.log_param("seed", 7)
    gitexp.log_metric("loss", 0.5)
    gitexp.log_metrics({"acc": 0.9})
    gitexp.set_tag("note", "x")
    assert gitexp.params() == {"seed": 7}
    gitexp.end_run()
    assert gitexp.active_run() is None
    record = gitexp.get_run("module")
    assert record.params == {"seed": 7} and set(record.metrics) == {"loss", "acc"}
    assert record.tags == {"note": "x"} and record.status == "FINISHED"


def test_logging_after_end_is_refused(repo: Path) -> None:
    with gitexp.start_run(**QUIET) as run:
        pass
    with pytest.raises(gitexp.GitexpError, match="has ended"):
        run.log_metric("late", 1.0)


def test_experiment_defaults_env_and_config(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with gitexp.start_run(**QUIET) as run:
        pass
    assert run.experiment == "default"
    git(repo, "config", "exp.experiment", "from-config")
    with gitexp.start_run(**QUIET) as run:
        pass
    assert run.experiment == "from-config"
    monkeypatch.setenv("GITEXP_EXPERIMENT", "from-env")
    with gitexp.start_run(**QUIET) as run:
        pass
    assert run.experiment == "from-env"
    with gitexp.start_run(experiment="explicit", **QUIET) as run:
        pass
    assert run.experiment == "explicit"


@pytest.mark.parametrize("name", ["bad name", "a..b", "x.lock", "-", "a:b"])
def test_invalid_experiment_is_refused_by_name(repo: Path, name: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid experiment name") as info:
        gitexp.start_run(experiment=name, **QUIET)
    assert repr(name) in str(info.value)
    assert git(repo, "for-each-ref", "refs/experiments/") == ""


def test_live_run_shows_progress_to_other_readers(repo: Path) -> None:
    run = gitexp.start_run(name="live", checkpoint_interval=0.01, flush_interval=0.01, **QUIET)
    try:
        assert gitexp.get_run("live").status == "RUNNING"
        run.log_metric("loss", 0.25)
        # Wait for the flusher to commit a checkpoint, with a deadline rather than a fixed sleep.
        deadline = time.monotonic() + 10
        while "loss" not in gitexp.get_run("live").metrics:
            assert time.monotonic() < deadline, "no checkpoint commit within 10 s"
            time.sleep(0.01)
        assert gitexp.get_run("live").metrics["loss"]["last"] == 0.25
    finally:
        run.end()
    assert gitexp.get_run("live").status == "FINISHED"


def test_repository_without_commits(empty_repo: Path) -> None:
    (empty_repo / "train.py").write_text("print(1)\n")
    with gitexp.start_run(**QUIET) as run:
        run.log_metric("x", 1)
    parents = git(empty_repo, "rev-list", "--parents", run.ref).splitlines()
    assert parents[-1].split()[1:] == [], "the first commit of a run in an empty repository has no parent"
    meta = show_yaml(empty_repo, run.ref, "meta.yaml")
    assert meta["git"]["commit"] is None and meta["git"]["branch"] == "main"
    assert git(empty_repo, "show", f"{run.ref}:code/train.py") == "print(1)\n"


def test_outside_a_repository_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(gitexp.GitexpError, match="not a git repository"):
        gitexp.start_run(**QUIET)


def test_cache_is_never_stale(repo: Path) -> None:
    run = gitexp.start_run(name="cached", checkpoint_interval=3600, **QUIET)
    assert gitexp.get_run("cached").status == "RUNNING"
    assert (repo / ".git/gitexp/cache").is_dir()
    run.log_metric("loss", 1.0)
    run.end()
    record = gitexp.get_run("cached")
    assert record.status == "FINISHED" and record.metrics["loss"]["count"] == 1


def test_unwritable_git_directory_is_a_clear_error_at_start(repo: Path) -> None:
    # Root ignores file modes, so block the journal folder with a file instead.
    (repo / ".git" / "gitexp").mkdir(exist_ok=True)
    (repo / ".git" / "gitexp" / "journal").write_text("not a folder")
    with pytest.raises(gitexp.GitexpError, match=r"cannot start a run.*journal"):
        gitexp.start_run(**QUIET)
    assert git(repo, "for-each-ref", "refs/experiments/") == ""


def test_settings_come_from_git_config_unless_start_run_names_them(repo: Path) -> None:
    from gitexp.git.repo import Repo
    from gitexp.tracking.settings import read_settings

    git(repo, "config", "exp.flushInterval", "5")
    git(repo, "config", "exp.systemMetricsInterval", "0")
    git(repo, "config", "exp.captureEnv", "false")
    git(repo, "config", "exp.envVariables", "CUDA_VISIBLE_DEVICES, SEED")
    chosen = read_settings(Repo.discover(repo), {"flush_interval": 2.0, "capture_env": None, "capture_code": False})
    assert chosen == {"flush_interval": 2.0, "checkpoint_interval": 30.0, "system_interval": 0.0,
                      "max_snapshot": 10 * 2**20, "capture_env": False, "capture_code": False,
                      "env_variables": ["CUDA_VISIBLE_DEVICES", "SEED"]}
    with gitexp.start_run(name="configured") as run:  # the flusher runs at the configured interval
        assert run.flush_interval == 5.0 and not run.wants_system_metrics


def test_system_metrics_are_sampled_only_for_runs_that_want_them(repo: Path, gitexp_env: dict[str, str]) -> None:
    # In a process of its own: the sampler is shared by the process's runs, made by the first that wants one.
    script = ("import time, gitexp\n"
              "quiet = gitexp.start_run(name='quiet', system_metrics_interval=0, capture_env=False)\n"
              "with gitexp.start_run(name='sampled', system_metrics_interval=0.05, capture_env=False):\n"
              "    time.sleep(0.5)\n"
              "quiet.end()\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo, env=gitexp_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "system/cpu_percent" in gitexp.get_run("sampled").metrics
    assert not any(key.startswith("system/") for key in gitexp.get_run("quiet").metrics)


# -- start_run inside `git exp run`: the script's choices are taken or warned of ----------------


def git_exp_run(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitexp", "run", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)


ATTACHING = """
import gitexp
with gitexp.start_run(experiment="mlp", name="small", tags={"size": "s"}, checkpoint_interval=5) as run:
    run.log_metric("loss", 0.5)
"""


def test_start_run_inside_git_exp_run_names_each_choice_the_run_cannot_take(repo: Path,
                                                                          env_for_subprocess: dict) -> None:
    (repo / "train.py").write_text(ATTACHING)
    proc = git_exp_run(repo, env_for_subprocess, "--", sys.executable, "train.py")
    assert proc.returncode == 0, proc.stderr
    (record,) = gitexp.load_runs()
    # Taken: the name, tags and values; kept from `git exp run`: the experiment, with a warning saying how.
    assert (record.name, record.experiment, record.tags, record.metrics["loss"]["last"]) == (
        "small", "default", {"size": "s"}, 0.5)
    assert (f"start_run(experiment='mlp') inside `git exp run`: this run is {record.id} in experiment 'default', "
            "started by `git exp run`; pass -e mlp to `git exp run` to choose the experiment") in proc.stderr
    assert "start_run(checkpoint_interval=5)" in proc.stderr and "git config exp.checkpointInterval 5" in proc.stderr
    assert "renames" not in proc.stderr, "a random name is no choice of the user's"
    assert "experiment='mlp'" in (record.read("output.log") or b"").decode(), "the warning is in the run's log"

    proc = git_exp_run(repo, env_for_subprocess, "-e", "mlp", "--name", "big", "--", sys.executable, "train.py")
    assert proc.returncode == 0, proc.stderr
    (record,) = gitexp.load_runs(experiment="mlp")
    assert (record.name, record.experiment) == ("small", "mlp")
    assert "start_run(experiment='mlp')" not in proc.stderr
    assert f"start_run(name='small') inside `git exp run` renames run {record.id} from 'big'" in proc.stderr


def test_start_run_inside_git_exp_run_with_a_param_that_contradicts_p(repo: Path, env_for_subprocess: dict) -> None:
    (repo / "train.py").write_text("import gitexp\ngitexp.start_run(params={'lr': 0.01, 'epochs': 3})\n")
    proc = git_exp_run(repo, env_for_subprocess, "-p", "lr=0.1", "--", sys.executable, "train.py")
    assert proc.returncode == 1
    assert "start_run(params=...) inside `git exp run`" in proc.stderr
    assert "param 'lr' was already logged as 0.1; it cannot change to 0.01" in proc.stderr
    assert "read them with gitexp.params()" in proc.stderr
    (record,) = gitexp.load_runs()
    assert record.status == "FAILED" and record.params == {"lr": 0.1}
    (repo / "train.py").write_text("import gitexp\ngitexp.start_run(params={'lr': 0.1, 'epochs': 3})\n")
    proc = git_exp_run(repo, env_for_subprocess, "-p", "lr=0.1", "--", sys.executable, "train.py")
    assert proc.returncode == 0 and not proc.stderr
    assert gitexp.load_runs()[0].params == {"lr": 0.1, "epochs": 3}
