"""Commands of the core: run, ls, show, rm, recover, gc."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from gitexp.cli.options import add_deprecated, add_sort, deprecated
from gitexp.errors import GitexpError

if TYPE_CHECKING:
    from gitexp.store.runs import RunRecord

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def _parse_assignments(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """`-p model.layers=4` -> {"model": {"layers": 4}}, values typed as YAML reads them."""
    from gitexp.store.codec import load_yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise GitexpError(f"invalid {what} {pair!r}: expected KEY=VALUE, for example lr=0.01")
        try:
            value = load_yaml(text.encode(), f"value of {what} {key}") if text else ""
        except GitexpError:
            value = text  # not YAML: keep the text as given
        if isinstance(value, str) and value == text:
            try:  # YAML 1.1 reads 1e-3 as a string; a user typing it means a number
                value = float(text)
            except ValueError:
                pass
        node = out
        *parents, leaf = key.split(".") if what == "param" else [key]
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                prefix = ".".join(parents[: depth + 1])
                raise GitexpError(f"{what} {key!r} conflicts with {prefix}={node!r}: a {what} cannot be both a "
                                  f"value and a group; rename one of them")
        if isinstance(node.get(leaf), dict):
            raise GitexpError(f"{what} {key!r} conflicts with the group {key}.*: rename one of them")
        node[leaf] = value
    return out


def cmd_run(command: list[str], name: str | None, experiment: str | None, params: list[str],
            tags: list[str], description: str | None, metrics_from_output: bool = False,
            metric_patterns: list[str] | None = None) -> int:
    from gitexp.tracking.runner import run_command

    if command and command[0] == "--":
        command = command[1:]
    return run_command(command, name=name, experiment=experiment,
                       params=_parse_assignments(params, "param"),
                       tags={k: str(v) for k, v in _parse_assignments(tags, "tag").items()},
                       description=description,
                       metrics_from_output=list(metric_patterns or []) if metrics_from_output or metric_patterns
                       else None)


def cmd_ls(experiment: str | None, limit: int | None, form: str, columns: str | None,
           precision: int, all_columns: bool, where: str | None = None, sort: str | None = None,
           only_changed: bool = False, wide: bool = False) -> int:
    # The cyclic GC would walk the listing's many objects (none in a cycle) again and again as
    # rows are made. They are freed when _ls returns, before the GC is back.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _ls(experiment, limit, form, columns, precision, all_columns, where, sort, only_changed, wide)
    finally:
        if collecting:
            gc.enable()


def _ls(experiment: str | None, limit: int | None, form: str, columns: str | None, precision: int,
        all_columns: bool, where: str | None, sort: str | None, only_changed: bool, wide: bool) -> int:
    from gitexp.cli import pager
    from gitexp.store import search
    from gitexp.views import table

    if limit is not None and limit < 0:
        raise GitexpError(f"-n {limit}: the number of runs to list must be 0 or more")
    plain = not (where or "").strip() and not sort
    records: list[RunRecord] = []
    if plain and limit is None and not columns and form != "json":
        # Every run: as the last listing of the same refs showed them (their columns were kept), or
        # loaded, and their columns kept for the next listing.
        from gitexp.store import runs
        from gitexp.views import listing

        whole = listing.current()
        keep: listing.Listing | None = None  # a listing of every run, to remember once the table is out
        if whole is None:
            records = runs.load_runs(experiment=experiment)
            kept = listing.of_records(records) if isinstance(records, runs.RunList) else None
            keep = kept if experiment is None else None
        else:
            kept = whole.of_experiment(experiment) if experiment else whole
            keep = whole.to_keep()  # brought up to date
        after = None if keep is None else partial(listing.remember, None, keep)
        if kept is not None and len(kept):
            cols, values = kept.columns(all_columns or form == "csv", only_changed, full_ids=form == "csv")
            return _show_listing(cols, values, kept.experiments, form, precision, all_columns, wide, after=after)
    elif plain:
        from gitexp.store import runs

        if limit and not columns and form != "json":
            shown = _newest(experiment, limit, form, precision, all_columns, only_changed, wide)
            if shown is not None:
                return shown
        records = runs.load_runs(experiment=experiment, limit=limit)  # with a limit, the others go unread
    else:
        loaded = None
        if not columns and form != "json" and limit != 0:
            shown, loaded = _selected(experiment, where, sort, limit, form, precision, all_columns, only_changed,
                                      wide)
            if shown is not None:
                return shown
        records = search.search_runs(where, sort, experiment=experiment) if loaded is None else \
            search.search_loaded(loaded, where, sort)
        records = records[:limit] if limit is not None else records
    if not records:
        return _no_runs(experiment, where)
    if form == "json" and not columns and not only_changed:
        import json

        pager.page(json.dumps([r.to_dict() for r in records], indent=2, default=str) + "\n")
        return 0
    extra = table.split_columns(columns) if columns else None
    # csv is for programs: every column, and full ids (a handle is for people to read and type).
    cols, values = table.run_columns(records, extra, all_columns=all_columns or form == "csv",
                                     only_changed=only_changed, full_ids=form == "csv")
    return _show_listing(cols, values, [r.experiment for r in records], form, precision, all_columns, wide,
                         columns)


def _selected(experiment: str | None, where: str | None, sort: str | None, limit: int | None, form: str,
              precision: int, all_columns: bool, only_changed: bool, wide: bool) -> tuple[int | None, Any]:
    """ls --where/--sort from the kept listing's columns (views.selection): its exit code, or None
    where they cannot answer it (then the runs are searched), and every run when it read them."""
    from gitexp.store import runs, search
    from gitexp.views import listing, selection

    search.check_query(where, sort)
    whole, records = listing.current(), None
    if whole is None and experiment is None:
        # No listing kept, or too many runs changed since: the runs listed, and their listing kept
        # for the next query (as a plain listing keeps it), unless they cannot be.
        records = runs.load_runs()
        whole = listing.of_records(records) if isinstance(records, runs.RunList) else None
    if whole is None:
        return None, records
    kept = whole.of_experiment(experiment) if experiment else whole
    found = selection.select(kept, where, sort) if len(kept) else None
    keep = whole.to_keep()  # made or brought up to date: kept for the next call
    if found is None or not len(found):
        if keep is not None:
            listing.remember(None, keep)
        return None if found is None else _no_runs(experiment, where), records
    if limit is not None:
        found = found.subset(list(range(min(limit, len(found)))))
    # A listing brought up to date is kept for the next call, as a plain listing keeps it.
    after = None if keep is None else partial(listing.remember, None, keep)
    cols, values = found.columns(all_columns or form == "csv", only_changed, full_ids=form == "csv")
    return _show_listing(cols, values, found.experiments, form, precision, all_columns, wide, after=after), records


def _newest(experiment: str | None, limit: int, form: str, precision: int, all_columns: bool, only_changed: bool,
            wide: bool) -> int | None:
    """ls -n N from the kept listing, whose order is load_runs' (newest first): its exit code, or
    None where no listing is kept or none has runs (then the N newest runs are read alone)."""
    from gitexp.views import listing

    whole = listing.current()
    if whole is None:
        return None
    kept = whole.of_experiment(experiment) if experiment else whole
    keep = whole.to_keep()  # made or brought up to date: kept for the next call
    after = None if keep is None else partial(listing.remember, None, keep)
    if not len(kept):
        if after is not None:
            after()
        return None
    found = kept.subset(list(range(min(limit, len(kept)))), extremes=False)
    cols, values = found.columns(all_columns or form == "csv", only_changed, full_ids=form == "csv")
    return _show_listing(cols, values, found.experiments, form, precision, all_columns, wide, after=after)


def _no_runs(experiment: str | None, where: str | None) -> int:
    scope = f" in experiment {experiment!r}" if experiment else ""
    if where:
        print(f"no runs{scope} match --where {where!r}", file=sys.stderr)
    else:
        print(f"no runs{scope} yet; start one with `git exp run -- python train.py` or gitexp.start_run()",
              file=sys.stderr)
    return 0


def _show_listing(cols: list[str], values: list[list[Any]], experiments: list[str], form: str, precision: int,
                  all_columns: bool, wide: bool, columns: str | None = None,
                  after: Callable[[], None] | None = None) -> int:
    """Print a listing's table; then call *after*."""
    from gitexp.cli import pager
    from gitexp.views import fitting, table

    screen = pager.screen() if form == "table" and not columns else None
    hidden: list[str] = []
    if screen is None:  # a pipe, a file, --format or --columns: every column asked for, the same every time
        text = table.render_columns(cols, values, form, precision)
    else:
        # A person reads this: the default columns fit the terminal (--wide and --all: every one).
        text, hidden = fitting.terminal_table(cols, values, experiments,
                                              None if wide or all_columns else screen.columns, precision, _ellipsis())
    pager.page(text)
    if hidden and screen is not None:
        print(_hidden_note(hidden, screen.columns), file=sys.stderr)
    if after is not None:
        sys.stdout.flush()
        after()
    from gitexp.cli.main import exit_now

    exit_now(0)  # the process: without freeing the listing's objects first
    return 0


def _hidden_note(hidden: list[str], width: int) -> str:
    """What ls says of the columns it hid to fit *width*: as many of their names as fit on the line."""
    from gitexp.text import printable

    hidden = [printable(name) for name in hidden]
    head = f"git exp: {len(hidden)} column{'s' * (len(hidden) > 1)} hidden to fit {width} columns"
    for named in range(len(hidden), 0, -1):
        more = f" and {len(hidden) - named} more" if named < len(hidden) else ""
        note = f"{head} ({', '.join(hidden[:named])}{more}); --wide shows all"
        if len(note) <= width:
            return note
    return f"{head}; --wide shows all"


def _ellipsis() -> str:
    """An ellipsis: "…" where stdout can show it, else ".."."""
    try:
        "…".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ".."
    return "…"


def cmd_show(run: str, form: str, experiment: str | None) -> int:
    from gitexp.store import runs
    from gitexp.views import show

    record = runs.get_run(run, experiment=experiment)
    sys.stdout.write(show.render(record, form))
    return 0


def cmd_rm(run_ids: list[str], undo: bool, experiment: str | None, force: bool) -> int:
    from gitexp.ops import trash
    from gitexp.text import printable

    if undo:
        restored = trash.undo(run_ids)
        for title in trash.titles(restored):
            print(printable(f"restored {title}"))
        return 0
    if not run_ids:
        raise GitexpError("name the runs to remove: git exp rm RUN... (or `git exp rm --undo`)")
    removed = trash.remove(run_ids, experiment, force=force)
    for title in trash.titles(removed):
        print(printable(f"removed {title}"))
    print(f"(`git exp rm --undo` restores {'it' if len(removed) == 1 else 'them'}; `git exp gc` deletes "
          f"{'it' if len(removed) == 1 else 'them'} for good)")
    return 0


def cmd_recover() -> int:
    from gitexp.git.repo import Repo
    from gitexp.store import writer as store

    done = store.recover(Repo.discover())
    for run_id, status in done:
        print(f"recovered {run_id}: {status}")
    if not done:
        print("no interrupted runs to recover on this machine")
    return 0


def cmd_gc(dry_run: bool) -> int:
    from gitexp.ops import trash

    collected = trash.gc(dry_run)
    for ref in collected:
        print(f"{'would delete' if dry_run else 'deleted'} {ref}")
    if collected.lifted:
        print(f"handed {collected.lifted} pack(s) of settled run objects back to git: the next `git gc` "
              "repacks every run once, as slow as before gitexp settled them, and prunes what the deleted runs held")
    from gitexp.cli.share import gc_lfs  # LFS objects no run references any more

    gc_lfs(dry_run)
    return 0


def register(add: AddCommand) -> None:
    p = add("run", "Run a command as a tracked run; its output goes to the run's output.log.")
    p.add_argument("--name", help="run name (default: a random readable name)")
    add_deprecated(p, "-n", "--name", "name", "NAME", "-n is to mean a count in every command, as in `git log -n`")
    p.add_argument("--experiment", "-e", help="experiment (default: $GITEXP_EXPERIMENT, exp.experiment, default)")
    p.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="a param, visible to the command through gitexp.params(); repeatable")
    p.add_argument("--tag", "-t", dest="tags", action="append", default=[], metavar="KEY=VALUE",
                   help="a tag of the run (its value kept as text); repeatable")
    p.add_argument("--description", "-d", help="free text describing the run")
    p.add_argument("--metrics-from-output", action="store_true",
                   help="log the name=value and name: value pairs the command prints as metrics, each "
                        "occurrence the next step (docs/cli.md)")
    p.add_argument("--metric-pattern", dest="metric_patterns", action="append", metavar="REGEX",
                   help="with --metrics-from-output (implied), read metrics with this regular expression "
                        "instead: groups (?P<name>...) and (?P<value>...), or one group per metric such as "
                        "(?P<loss>...), and (?P<step>...) optionally; repeatable")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="the command to run and its arguments, after --")
    p.set_defaults(func=deprecated(lambda a: cmd_run(a.cmd, a.name, a.experiment, a.params, a.tags, a.description,
                                                     a.metrics_from_output, a.metric_patterns)))

    p = add("ls", "List runs, newest first, with the params and metrics that differ between them.")
    p.add_argument("--experiment", "-e", help="only this experiment")
    p.add_argument("-n", "--max-count", type=int, dest="limit", metavar="N",
                   help="only the first N runs: the newest, unless --sort")
    p.add_argument("--format", "-f", dest="form", default="table", choices=("table", "csv", "json", "md"),
                   help="output format; csv and json are for programs, md for pull requests")
    p.add_argument("--columns", "-c", help="comma-separated columns, e.g. params.lr,metrics.acc")
    p.add_argument("--precision", type=int, default=4, help="significant digits of numbers (default 4)")
    p.add_argument("--all", "-a", dest="all_columns", action="store_true",
                   help="every differing param and metric, not only the first 8 of each")
    p.add_argument("--where", "-w", metavar="EXPR",
                   help="only runs matching EXPR, e.g. \"params.lr < 0.1 and metrics.acc > 0.9\" (docs/query.md)")
    add_sort(p, "sort keys, '-' for descending, e.g. -metrics.acc,duration; runs missing a key go last")
    p.add_argument("--only-changed", action="store_true",
                   help="only the columns whose values differ between the listed runs (id and name stay)")
    p.add_argument("--wide", action="store_true",
                   help="on a terminal, every column, however wide (by default the table fits the terminal)")
    p.set_defaults(func=lambda a: cmd_ls(a.experiment, a.limit, a.form, a.columns, a.precision, a.all_columns,
                                         a.where, a.sort, a.only_changed, a.wide))

    p = add("show", "Show one run: status, git state, params, metrics, artifacts, output, inputs, environment.")
    p.add_argument("run", help="run handle (as `git exp ls` shows it), id, unique id prefix, or unique run name")
    p.add_argument("--format", "-f", dest="form", default="text", choices=("text", "yaml", "json"),
                   help="output format; yaml and json print the complete record")
    p.add_argument("--experiment", "-e", help="look the run up in this experiment only")
    p.set_defaults(func=lambda a: cmd_show(a.run, a.form, a.experiment))

    p = add("rm", "Remove runs (recoverable with --undo until `git exp gc`).")
    p.add_argument("run_ids", nargs="*", metavar="RUN", help="runs to remove (or, with --undo, to restore)")
    p.add_argument("--undo", action="store_true", help="restore RUNs, or the runs of the last `git exp rm`")
    p.add_argument("--experiment", "-e", help="look the runs up in this experiment only")
    p.add_argument("--force", action="store_true", help="remove runs even while they are RUNNING")
    p.set_defaults(func=lambda a: cmd_rm(a.run_ids, a.undo, a.experiment, a.force))

    p = add("recover", "Finish runs whose process died (kill -9, OOM, power loss) as CRASHED.")
    p.set_defaults(func=lambda a: cmd_recover())

    p = add("gc", "Delete removed runs, and LFS objects nothing references, for good.")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.set_defaults(func=lambda a: cmd_gc(a.dry_run))
