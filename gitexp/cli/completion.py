"""`git exp completion bash|zsh`: shell completion scripts, generated from the parsers by shtab.

The scripts complete `git-exp ...` and, through the hooks of git's own completion, `git exp ...`:
git-completion.bash calls a function named `_git_exp` for `git exp`, and zsh's _git calls `_git-exp`
(and, for a file named `_git-exp` in $fpath, lists `exp` among git's commands with its #description).
Run handles and names, experiments and remotes are completed from `git exp completion --list KIND`,
which the scripts call at each TAB.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

AddCommand = Callable[[str, str], argparse.ArgumentParser]
PROG = "git-exp"  # the console script; shtab names its functions after it (_shtab_git_exp)
SHELLS = ("bash", "zsh")
LISTS = ("runs", "experiments", "remotes")
DESCRIPTION = "Track machine-learning experiments as git commits"

# What completes each argument, by the dest the commands give it: the same name means the same thing
# in every command (tests/test_completion.py checks that every RUN argument has one).
RUN_DESTS = frozenset({"run", "run_a", "run_b", "runs", "run_ids", "run_texts", "items"})
COMPLETERS = {
    **dict.fromkeys(RUN_DESTS, "__gitexp_runs"),
    "experiment": "__gitexp_experiments",
    "remote": "__gitexp_remotes",
}
PUSH_TARGETS = "__gitexp_targets"  # `push [REMOTE] [RUN...]`: remotes and runs
FILES = {"output": "file", "source": "file", "worktree": "dir"}
HIDDEN = ("hook",)  # the entry point of git hooks, not typed by people

# The completers call `git exp completion --list KIND` and offer the lines that start with the word
# being completed. Run names come from runs, which may come from a remote: they are compared and
# printed, never expanded by the shell (compgen -W would expand them).
BASH_PREAMBLE = r"""
__gitexp_list() {  # KIND WORD: what `git exp completion --list KIND` prints that starts with WORD
  local line
  while IFS= read -r line; do
    [[ $line == "$2"* ]] && printf '%s\n' "$line"
  done < <(git exp completion --list "$1" 2>/dev/null)
}
__gitexp_runs() { __gitexp_list runs "$1"; }
__gitexp_experiments() { __gitexp_list experiments "$1"; }
__gitexp_remotes() { __gitexp_list remotes "$1"; }
__gitexp_targets() { __gitexp_list remotes "$1"; __gitexp_list runs "$1"; }
"""

BASH_GIT = r"""
# git's own completion (git-completion.bash) completes `git exp ...` with this function: the words
# from "exp" on are completed as those of `git-exp ...`.
_git_exp() {
  local i=${__git_cmd_idx-}
  local -a line=("${words[@]-${COMP_WORDS[@]}}")
  local at=${cword-$COMP_CWORD}
  if [[ -z $i ]]; then  # git before 2.31 does not say where the command is
    for ((i = 1; i < at; i++)); do [[ ${line[i]} == exp ]] && break; done
  fi
  local COMP_WORDS=(git-exp "${line[@]:i+1}") COMP_CWORD=$((at - i))
  compopt +o nospace 2>/dev/null  # git's own completers add the space after a word themselves
  _shtab_git_exp
}
"""

ZSH_PREAMBLE = r"""
__gitexp_list() {  # KIND: offer what `git exp completion --list KIND` prints
  local -a found
  found=(${(f)"$(git exp completion --list $1 2>/dev/null)"})
  compadd -a found
}
__gitexp_runs() { __gitexp_list runs }
__gitexp_experiments() { __gitexp_list experiments }
__gitexp_remotes() { __gitexp_list remotes }
__gitexp_targets() { __gitexp_list remotes; __gitexp_list runs }
"""

ZSH_GIT = r"""
# zsh's git completion (_git) completes `git exp ...` with a function named _git-exp. As a file
# _git-exp in $fpath this script is that function; sourced or eval'd, it defines it here.
(( $+functions[_git-exp] )) || _git-exp() { _shtab_git_exp "$@" }
"""


def script(shell: str) -> str:
    """The completion script for *shell* ("bash" or "zsh") of every command and option."""
    import shtab

    from gitexp.cli.main import build_parser

    parser = build_parser()
    parser.prog = PROG
    _attach_completers(parser)
    if shell == "bash":
        return shtab.complete(parser, shell="bash", preamble=BASH_PREAMBLE) + BASH_GIT
    text = shtab.complete(parser, shell="zsh", preamble=ZSH_PREAMBLE)
    # zsh's _git reads the second line of a _git-* file in $fpath as the command's description.
    first, _, rest = text.partition("\n")
    return f"{first}\n#description {DESCRIPTION}\n{rest}{ZSH_GIT}"


def _attach_completers(parser: argparse.ArgumentParser, command: str = "") -> None:
    """Set shtab's `complete` on the arguments that take runs, experiments, remotes or files."""
    import shtab

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _attach_completers(sub, name)
            action._choices_actions = [a for a in action._choices_actions if a.dest not in HIDDEN]
            continue
        kind = FILES.get(action.dest)
        if command == "push" and action.dest == "args":
            completer: object = {"bash": PUSH_TARGETS, "zsh": PUSH_TARGETS}
        elif kind == "file" or (kind == "dir" and command != "get"):
            completer = shtab.FILE if kind == "file" else shtab.DIRECTORY
        elif action.dest == "output" and command == "get":
            completer = shtab.DIRECTORY
        elif action.dest in COMPLETERS and action.choices is None:
            completer = {"bash": COMPLETERS[action.dest], "zsh": COMPLETERS[action.dest]}
        else:
            continue
        action.complete = completer  # type: ignore[attr-defined]  # shtab reads it


# Names with whitespace or shell metacharacters would need quoting that a completion cannot add
# portably; they are left out (their handle completes).
_PLAIN = re.compile(r"[\w.,:@%+=/-]+")


def names(kind: str) -> list[str]:
    """What `--list KIND` prints: run handles and names, experiment names or remote names, one each.

    Handles rather than full ids: what `git exp ls` shows and people type; a list of 20 runs
    offers 40 words, not 60, and a full id pasted needs no completion."""
    from gitexp.git.repo import Repo
    from gitexp.store import names as naming
    from gitexp.store import runs

    repo = Repo.discover()
    if kind == "remotes":
        return sorted(repo.remote_names())
    if kind == "experiments":
        return sorted({runs.split_ref(ref)[0] for ref in repo.refs(naming.REF_PREFIX)})
    records = runs.load_runs(repo, recover=False)
    handles = runs.run_handles(records)
    found = [handles[record.id] for record in records]
    found += [record.name for record in records if record.name and _PLAIN.fullmatch(record.name)]
    return list(dict.fromkeys(found))


def cmd_completion(shell: str | None, kind: str | None) -> int:
    from gitexp.errors import GitexpError
    from gitexp.text import printable

    if kind:
        for name in names(kind):
            print(printable(name))
        return 0
    if shell is None:
        raise GitexpError("name the shell: `git exp completion bash` or `git exp completion zsh` (docs/cli.md, "
                          "Shell completion, says where the script goes)")
    sys.stdout.write(script(shell))
    return 0


def register(add: AddCommand) -> None:
    p = add("completion", "Print the bash or zsh completion script of git exp (docs/cli.md says how to install it).")
    p.add_argument("shell", nargs="?", choices=SHELLS, metavar="SHELL", help="bash or zsh: the shell to complete in")
    p.add_argument("--list", dest="kind", choices=LISTS,
                   help="print the run handles and names, experiments or remotes to complete, one a line")
    p.set_defaults(func=lambda a: cmd_completion(a.shell, a.kind))
