"""`git exp logs`: a run's output.log, and what a live run adds to it (-f)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

AddCommand = Callable[[str, str], argparse.ArgumentParser]


def cmd_logs(run: str, follow: bool, raw: bool, experiment: str | None) -> int:
    from gitexp.ops import logs
    from gitexp.store import runs
    from gitexp.text import printable

    record = runs.get_run(run, experiment=experiment)
    title = printable(runs.run_title(record, runs.run_handles([record])[record.id]))
    live = logs.is_live_here(record)
    if follow and not live and record.status == "RUNNING":
        print(f"note: run {title} is RUNNING on {printable(str(record.meta.get('host')))}, not here: this is its "
              "output as of its last commit; -f follows runs of this machine only", file=sys.stderr)
    text = logs.LogText()
    out = sys.stdout.buffer if raw else None
    printed = False
    for data in logs.follow_log(record, follow=follow):
        printed = True
        if out is not None:
            out.write(data)
            out.flush()
        else:
            sys.stdout.write(text.feed(data))
            sys.stdout.flush()
    if out is None and (last := text.end()):
        sys.stdout.write(last + "\n")  # a person's terminal: the prompt starts a line of its own
    if not printed and logs.read_log(record) is None:
        print(f"run {title} has no output.log: only `git exp run` records a command's output", file=sys.stderr)
    return 0


def register(add: AddCommand) -> None:
    p = add("logs", "Print a run's output.log, the output of its command; -f follows a live run.")
    p.add_argument("run", help="run handle (as `git exp ls` shows it), id, unique id prefix, or unique run name")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing what a run that is live on this machine writes, until it ends")
    p.add_argument("--raw", action="store_true",
                   help="the bytes as written, control characters included (default: shown escaped)")
    p.add_argument("--experiment", "-e", help="look the run up in this experiment only")
    p.set_defaults(func=lambda a: cmd_logs(a.run, a.follow, a.raw, a.experiment))
