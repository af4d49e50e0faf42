"""Shell completion: the bash script in a real bash (with git's own completion where installed), the
zsh script checked by zsh where installed, and the names the scripts complete from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import gitexp
from gitexp.cli import completion
from gitexp.cli.main import build_parser, main
from gitexp.store.runs import run_handles

# Where distributions install git's bash completion (git-completion.bash).
GIT_BASH_COMPLETION = [Path(p) for p in ("/usr/share/bash-completion/completions/git",
                                         "/usr/local/share/bash-completion/completions/git",
                                         "/etc/bash_completion.d/git", "/usr/share/git/completion/git-completion.bash",
                                         "/opt/homebrew/etc/bash_completion.d/git-completion.bash")]
GIT_COMPLETION = next((p for p in GIT_BASH_COMPLETION if p.is_file()), None)

# Completes each line as bash does at a TAB at its end, printing COMPREPLY as one line of
# "|"-separated words; `git ...` through git's own completion, `git-exp ...` through ours.
DRIVER = r"""
complete_line() {
  COMP_LINE=$1; COMP_POINT=${#1}
  read -ra COMP_WORDS <<<"$1"; [[ $1 == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
  if [[ ${COMP_WORDS[0]} == git ]]; then __git_wrap__git_main; else _shtab_git_exp; fi
  local IFS='|'; echo "${COMPREPLY[*]}"
}
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def complete(script: Path, lines: list[str], env: dict[str, str], cwd: Path, git_completion: bool) -> list[list[str]]:
    """What bash offers at a TAB after each of *lines*, as `bash` itself computes it."""
    source = f"source {GIT_COMPLETION}\n" if git_completion else ""
    body = source + f"source {script}\n" + DRIVER + "".join(f"complete_line {_quote(line)}\n" for line in lines)
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", body], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [line.split("|") if line else [] for line in proc.stdout.splitlines()]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture
def sweep(repo: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    for name, experiment in (("lr-0.1", "cnn"), ("lr-1.0", "cnn"), ("baseline", "mlp")):
        with gitexp.start_run(name=name, experiment=experiment, system_metrics_interval=0, capture_env=False):
            pass
    capsys.readouterr()
    return repo


@pytest.fixture
def bash_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, err = cli(capsys, "completion", "bash")
    assert (code, err) == (0, "")
    path = tmp_path / "git-exp.bash"
    path.write_text(out)
    return path


def test_bash_completes_commands_options_and_values_of_git_exp(
        sweep: Path, bash_script: Path, gitexp_env: dict[str, str]) -> None:
    lines = ["git-exp l", "git-exp ls --wh", "git-exp ls --format ", "git-exp hooks i", "git-exp plot --x r"]
    commands, where, formats, install, x = complete(bash_script, lines, gitexp_env, sweep, git_completion=False)
    assert {"ls", "log"} <= set(commands) and all(c.startswith("l") for c in commands)
    assert (where, formats, install, x) == (["--where"], ["table", "csv", "json", "md"], ["install"], ["relative"])


def test_bash_completes_run_names_experiments_and_remotes(
        sweep: Path, bash_script: Path, gitexp_env: dict[str, str]) -> None:
    handles = sorted(run_handles(gitexp.load_runs()).values())
    lines = ["git-exp show lr-", "git-exp diff lr-0.1 b", "git-exp ls -e ", "git-exp rm --force ", "git-exp push o"]
    subprocess.run(["git", "remote", "add", "origin", "../elsewhere.git"], cwd=sweep, check=True)
    show, diff, experiments, every, push = complete(bash_script, lines, gitexp_env, sweep, git_completion=False)
    assert sorted(show) == ["lr-0.1", "lr-1.0"]
    # Handles are hex: about one sweep in four has a run whose handle starts with b, and it is offered too.
    assert sorted(diff) == sorted(["baseline", *(h for h in handles if h.startswith("b"))])
    assert sorted(experiments) == ["cnn", "mlp"]
    assert sorted(every) == sorted([*handles, "lr-0.1", "lr-1.0", "baseline"])  # handles and names
    assert push == ["origin"]  # push's first word: a remote (or a run)


@pytest.mark.skipif(GIT_COMPLETION is None, reason="git's bash completion (git-completion.bash) is not installed")
def test_git_exp_completes_through_gits_own_bash_completion(
        sweep: Path, bash_script: Path, gitexp_env: dict[str, str]) -> None:
    lines = ["git exp l", "git exp ls --wh", "git -C . exp ls --wh", "git exp show lr-1", "git exp hooks install --au"]
    commands, where, where_c, show, auto = complete(bash_script, lines, gitexp_env, sweep, git_completion=True)
    assert {"ls", "log"} <= set(commands) and all(c.startswith("l") for c in commands)
    assert where == where_c == ["--where"]
    assert show == ["lr-1.0"]
    assert sorted(auto) == ["--auto-run", "--auto-run-max", "--auto-run-rewrites"]


def test_the_zsh_script_is_valid_zsh_and_hooks_into_gits_completion(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    code, out, err = cli(capsys, "completion", "zsh")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    # As a file _git-exp in $fpath: a completion for git-exp, listed by `git <TAB>` with this description.
    assert lines[:2] == ["#compdef git-exp", f"#description {completion.DESCRIPTION}"]
    assert "_git-exp() { _shtab_git_exp" in out and "compdef _shtab_git_exp -N git-exp" in out
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed: its syntax check did not run (the script was only generated)")
    script = tmp_path / "_git-exp"
    script.write_text(out)
    proc = subprocess.run([zsh, "-n", str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_lists_the_scripts_complete_from(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A run name from a remote is text anyone wrote: one the shell would read as code is left out.
    with gitexp.start_run(name="x$(touch pwned)", experiment="cnn", system_metrics_interval=0, capture_env=False):
        pass
    subprocess.run(["git", "remote", "add", "upstream", "../up.git"], cwd=sweep, check=True)
    records = gitexp.load_runs()
    code, out, err = cli(capsys, "completion", "--list", "runs")
    assert (code, err) == (0, "")
    assert sorted(out.splitlines()) == sorted([*run_handles(records).values(), "lr-0.1", "lr-1.0", "baseline"])
    assert cli(capsys, "completion", "--list", "experiments")[1] == "cnn\nmlp\n"
    assert cli(capsys, "completion", "--list", "remotes")[1] == "upstream\n"
    code, _, err = cli(capsys, "completion")
    assert code == 1 and "`git exp completion bash`" in err


def test_every_argument_that_takes_a_run_completes_runs() -> None:
    """A new command's RUN arguments complete like the others (their dest is one completion knows)."""
    completion._attach_completers(parser := build_parser())
    missing = []
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        for action in sub._actions:
            metavar = str(action.metavar or action.dest).upper()
            if not action.option_strings and "RUN" in metavar and not hasattr(action, "complete"):
                missing.append(f"git exp {name} {metavar} (dest {action.dest!r})")
    assert not missing, f"add these dests to gitexp/cli/completion.py's RUN_DESTS: {missing}"
