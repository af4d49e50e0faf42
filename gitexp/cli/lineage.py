"""Commands of the git integration: log, notes, hooks, hook, checkout, rerun, verify."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from gitexp.cli.options import add_deprecated, deprecated
from gitexp.errors import GitexpError

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def _print(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def cmd_log(run: str | None, limit: int, runs_only: bool, start: str, form: str) -> int:
    from gitexp.git.repo import Repo
    from gitexp.store import runs
    from gitexp.views import lineage

    if limit < 1:
        raise GitexpError(f"-n {limit}: show at least 1 commit")
    if run is None:
        _print(lineage.commit_log(Repo.discover(), start, limit, runs_only))
        return 0
    record = runs.get_run(run)
    records = runs.lineage_records(record)
    if form == "json":
        print(json.dumps(lineage.lineage_dict(records, record), indent=2))
    else:
        _print(lineage.graph(records, record))
    return 0


def cmd_notes(action: str, other: str | None) -> int:
    from gitexp.git.repo import Repo
    from gitexp.store import notes, runs

    repo = Repo.discover()
    if action == "rebuild":
        tip, count = notes.rebuild(repo, runs.load_runs(repo))
        print(f"wrote {count} run line(s) to {notes.NOTES_REF}" + (f" ({tip[:12]})" if tip else ""))
        return 0
    assert other is not None
    before = repo.ref(notes.NOTES_REF)
    after = notes.merge_notes(repo, other)
    print("notes already up to date" if after == before else f"merged {other} into {notes.NOTES_REF} ({after[:12]})"
          if after else "no notes on either side")
    return 0


def cmd_hooks(action: str, auto_run: str | None, show_in_log: bool, auto_run_max: int | None = None,
              auto_run_rewrites: bool = False) -> int:
    from gitexp.ops import hooks

    cwd = Path.cwd()
    if action == "install":
        _print(hooks.install(cwd, auto_run, show_in_log, auto_run_max, auto_run_rewrites))
    elif action == "uninstall":
        _print(hooks.uninstall(cwd))
    else:
        _print(hooks.status(cwd))
    return 0


def cmd_hook(name: str, args: list[str]) -> int:
    from gitexp.ops import hookentry

    return hookentry.run_hook(name, args)


def cmd_checkout(run: str, branch: str | None, worktree: str | None, artifacts: bool) -> int:
    from gitexp.ops import checkout
    from gitexp.store import runs

    _print(checkout.checkout(runs.get_run(run), branch, worktree, artifacts))
    return 0


def cmd_rerun(run: str, params: list[str], name: str | None, experiment: str | None) -> int:
    from gitexp.cli.core import _parse_assignments
    from gitexp.ops import checkout
    from gitexp.store import runs

    record = runs.get_run(run)
    code, new = checkout.rerun(record, _parse_assignments(params, "param"), name, experiment)
    if new is not None:
        print(f"git exp: rerun of {record.id} recorded as run {new.id} ({new.experiment}/{new.name}, {new.status})",
              file=sys.stderr)
    return code


def _verified_ref(text: str, experiment: str | None) -> tuple[str, str]:
    """(ref, commit) of the run *text* names, damaged or not: verify is the command that says what is wrong."""
    from gitexp.errors import DamagedRunError
    from gitexp.store import runs

    try:
        record = runs.get_run(text, experiment=experiment)  # (the refs read from git's files, not through libgit2)
    except DamagedRunError as exc:
        return exc.ref, exc.commit
    return record.ref, record.commit


def cmd_verify(run_texts: list[str], experiment: str | None) -> int:
    import warnings

    from gitexp.git import transport
    from gitexp.git.repo import Repo
    from gitexp.ops import verify
    from gitexp.store import names
    from gitexp.text import printable

    repo = Repo.discover()
    damaged = verify.check_shelf(repo)
    if run_texts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the damaged runs the listing leaves out are verify's to report
            refs = list(dict.fromkeys(_verified_ref(text, experiment) for text in run_texts))
    else:
        prefix = names.REF_PREFIX + (f"{names.check_experiment(experiment)}/" if experiment else "")
        # A damaged shelf names no runs: those with refs are checked still.
        refs = sorted((transport.local_refs(repo, (prefix,), shelved=False) if damaged else repo.refs(prefix)).items())
    problems = damaged + verify.verify_runs(repo, refs)
    for label, problem in problems:
        print(printable(f"{label}: {problem}"))  # both quote run data
    bad = len({label for label, _ in problems})
    print(f"verified {len(refs)} run(s): " + (f"{len(problems)} problem(s) in {bad} run(s)" if problems
                                               else "no problems"), file=sys.stderr)
    return 1 if problems else 0


def register(add: AddCommand) -> None:
    p = add("log", "Show a run's lineage (forks, reruns, resumes), or commits with the runs made on them.")
    p.add_argument("run", nargs="?", metavar="RUN", help="draw this run's lineage; without it, list commits")
    p.add_argument("-n", "--max-count", dest="limit", type=int, default=20, help="commits to show (default 20)")
    p.add_argument("--runs-only", action="store_true", help="only commits that have runs")
    p.add_argument("--start", default="HEAD", help="list commits from this revision (default HEAD)")
    p.add_argument("--format", "-f", dest="form", default="text", choices=("text", "json"),
                   help="json: the lineage tree as data (with RUN)")
    p.set_defaults(func=lambda a: cmd_log(a.run, a.limit, a.runs_only, a.start, a.form))

    p = add("notes", "Maintain refs/notes/experiments: the runs of each code commit.")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("rebuild", help="write every run's note again from the runs")
    merge = sub.add_parser("merge", help="merge another notes commit (e.g. a fetched one) into the notes")
    merge.add_argument("other", metavar="NOTES_COMMIT", help="a ref or commit id of the other notes")
    p.set_defaults(func=lambda a: cmd_notes(a.action, getattr(a, "other", None)))

    p = add("hooks", "Install, remove or inspect gitexp's git hooks (post-commit).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    install = sub.add_parser("install", help="install the hooks, keeping and chaining any existing ones")
    install.add_argument("--auto-run", metavar="CMD", help="start a tracked run of CMD on every commit")
    install.add_argument("--auto-run-max", metavar="N", type=int,
                         help="at most N auto-runs at once, the others waiting their turn (default 1)")
    install.add_argument("--auto-run-rewrites", action="store_true",
                         help="also start an auto-run for each commit a rebase, amend, cherry-pick or merge makes")
    install.add_argument("--show-in-log", action="store_true",
                         help="make `git log` show the runs of each commit (sets notes.displayRef)")
    sub.add_parser("uninstall", help="remove the hooks and restore exactly what was there before")
    sub.add_parser("status", help="say what is installed where")
    p.set_defaults(func=lambda a: cmd_hooks(a.action, getattr(a, "auto_run", None), getattr(a, "show_in_log", False),
                                            getattr(a, "auto_run_max", None), getattr(a, "auto_run_rewrites", False)))

    p = add("hook", "The entry point git hooks call (git exp hook post-commit); never fails the git command.")
    p.add_argument("name", metavar="HOOK", help="the hook git ran: post-commit")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the hook's arguments, as git passed them")
    p.set_defaults(func=lambda a: cmd_hook(a.name, a.args))

    p = add("checkout", "Recreate a run's exact code (uncommitted files included) on a new branch or worktree.")
    p.add_argument("run", metavar="RUN", help="run id, unique id prefix, or unique run name")
    p.add_argument("-b", "--branch", help="create this branch with the run's code and switch to it")
    p.add_argument("--worktree", metavar="DIR", help="check the run's code out in a new worktree at DIR")
    p.add_argument("--artifacts", action="store_true", help="also restore the run's artifacts (into artifacts/)")
    p.set_defaults(func=lambda a: cmd_checkout(a.run, a.branch, a.worktree, a.artifacts))

    p = add("rerun", "Run a run's command again on its exact code, as a new run recording rerun_of.")
    p.add_argument("run", metavar="RUN", help="the run to run again: id, unique id prefix, or unique run name")
    p.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param of the original run; repeatable")
    p.add_argument("--name", help="name of the new run (default: a random readable name)")
    add_deprecated(p, "-n", "--name", "name", "NAME", "-n is to mean a count in every command, as in `git log -n`")
    p.add_argument("--experiment", "-e", help="experiment of the new run (default: the original's)")
    p.set_defaults(func=deprecated(lambda a: cmd_rerun(a.run, a.params, a.name, a.experiment)))

    p = add("verify", "Check runs: required files, artifact content, signatures, and no rewrite since they ended.")
    p.add_argument("run_texts", nargs="*", metavar="RUN", help="runs to check (default: all)")
    p.add_argument("--experiment", "-e", help="only this experiment")
    p.set_defaults(func=lambda a: cmd_verify(a.run_texts, a.experiment))
