"""Commands for artifacts and sharing: artifacts, get, push, fetch, pull, remote setup (and gc's LFS part)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from gitexp.errors import GitexpError

if TYPE_CHECKING:
    from gitexp.git.repo import Repo
    from gitexp.ops.remote import FetchReport
    from gitexp.store.runs import RunRecord

AddCommand = Callable[[str, str], argparse.ArgumentParser]
SHOWN = 20  # runs listed one per line; a first fetch of a team's thousands of runs says the rest in a count


def _list_runs(status: str, refs: list[str], titles: dict[str, str]) -> None:
    """A line per run (at most SHOWN), named by handle and name ("3fa9c21 cnn/lr-0.1"), not by ref."""
    from gitexp.text import printable

    for ref in refs[:SHOWN]:
        print(printable(f"  {status:<8} {titles.get(ref, ref)}"))
    if len(refs) > SHOWN:
        print(f"  ... and {len(refs) - SHOWN} more {status}")


def _titles(repo: Repo, refs: list[str], every: Iterable[str] | None = None) -> dict[str, str]:
    """ref -> "3fa9c21 cnn/lr-0.1" of the runs that messages list (SHOWN of each kind at most).

    A handle is unique among every run's id, which the ref names give (*every* run ref here,
    else listed); only the listed runs are read. Loading every run (store.runs.ref_titles) cost
    5 s after a fetch of 10,000 new runs.
    """
    from gitexp.errors import CorruptRunError
    from gitexp.git.transport import local_refs
    from gitexp.store import names
    from gitexp.store.codec import read_listing
    from gitexp.store.runs import RunRecord, run_title, split_ref

    wanted = list(dict.fromkeys(refs))
    if not wanted:
        return {}
    here = local_refs(repo, tuple(wanted))  # exact names: git lists just these
    handles = _handles([split_ref(ref)[1] for ref in here], local_refs(repo, (names.REF_PREFIX,)) if every is None
                       else every)
    out = {}
    for ref in wanted:
        commit = here.get(ref)
        experiment, run_id = split_ref(ref)
        try:
            if commit is None or run_id not in handles:
                raise CorruptRunError(f"{ref} is no run here")
            meta, params, metrics = read_listing(repo, commit)
        except CorruptRunError:
            out[ref] = ref  # a damaged run is named by its ref, as the warnings about it do
            continue
        out[ref] = run_title(RunRecord(run_id, experiment, commit, meta, params, metrics, repo), handles[run_id])
    return out


def _handles(ids: list[str], every: Iterable[str]) -> dict[str, str]:
    """names.handles of *ids* among the ids of the run refs *every*, from what decides them: the ids
    whose random part starts as one of theirs does, and each distinct start of 8 characters (the
    starts a handle of digits is checked against; given as ids of their own, their handles unused).
    At 100,000 runs, handles of every id took most of a second."""
    from gitexp.store import names

    starts = {names.random_part(i)[:names.HANDLE_LEN] for i in ids}
    tails = [ref[ref.rfind("/") + 1:] for ref in every]
    end = names.RANDOM_START + names.HANDLE_LEN
    deciding = {t for t in tails if t[names.RANDOM_START:end] in starts}
    return names.handles([*ids, *deciding, *{t[:names.HANDLE_LEN + 1] for t in tails}])


def _record(run: str, experiment: str | None) -> RunRecord:
    from gitexp.store import runs

    return runs.get_run(run, experiment=experiment)


def cmd_artifacts(run: str, form: str, experiment: str | None) -> int:
    from gitexp.store.artifacts import human_size

    record = _record(run, experiment)
    artifacts = record.artifacts
    if form == "json":
        print(json.dumps([a.to_dict() for a in artifacts], indent=2))
        return 0
    if not artifacts:
        print(f"run {record.id} has no artifacts", file=sys.stderr)
        return 0
    from gitexp.text import printable

    # Paths are tree entry names of the run, which may come from an untrusted remote.
    rows = [(printable(a.path), human_size(a.size) if not a.problem else "?", "lfs" if a.lfs else "git",
             "yes" if a.present else "no", a.sha256 or printable(f"INVALID: {a.problem}")) for a in artifacts]
    header = ("path", "size", "storage", "local", "sha256")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    return 0


def cmd_get(run: str, paths: list[str], output: str, remote: str | None, force: bool,
            experiment: str | None) -> int:
    from gitexp.git.lazyrepo import real
    from gitexp.ops import restore

    record = _record(run, experiment)
    chosen = restore.select(record.artifacts, paths, record.id)
    if not chosen:
        print(f"run {record.id} has no artifacts", file=sys.stderr)
        return 0
    repo = real(record.repo)  # fetching LFS content writes
    fetched = restore.ensure_present(repo, chosen, remote)
    written = restore.restore(repo, chosen, Path(output), force=force)
    note = f", {fetched} fetched through Git LFS" if fetched else ""
    kept = len(chosen) - len(written)
    print(f"restored {len(written)} file(s) into {output} ({restore.describe(chosen)} checked{note}"
          f"{f'; {kept} already there' if kept else ''})")
    return 0


def cmd_push(args: list[str], no_artifacts: bool) -> int:
    from gitexp.git.repo import Repo
    from gitexp.ops import remote as remote_mod
    from gitexp.store.artifacts import human_size

    repo = Repo.discover()
    name, run_texts = remote_mod.push_target(repo, args)
    report = remote_mod.push(repo, name, run_texts, artifacts=not no_artifacts)
    counts: dict[str, int] = {}
    for update in report.runs:
        counts[update.status] = counts.get(update.status, 0) + 1
    listed = {status: [u.ref for u in report.runs if u.status == status] for status in ("new", "updated", "forced")}
    titles = _titles(repo, [ref for refs in listed.values() for ref in refs[:SHOWN]]
                     + [u.ref for u in report.rejected])
    for status, refs in listed.items():
        _list_runs(status, refs, titles)
    for update in report.rejected:
        from gitexp.text import printable

        # The reason is the remote's words.
        print(printable(f"  ! {titles.get(update.ref, update.ref)}: {update.reason}"), file=sys.stderr)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no runs"
    notes = f"; notes {report.notes.status}" if report.notes else ""
    lfs = f"; LFS: {report.lfs_objects} object(s), {human_size(report.lfs_bytes)}" if report.lfs_objects else ""
    print(f"pushed to {report.remote}: {summary}{notes}{lfs}")
    if report.lfs_missing:
        from gitexp.store import names, runs

        shown = report.lfs_missing[:5]
        handles = names.handles([*runs.run_ids(repo), *(m.split(":", 1)[0] for m in shown)])
        missing = ", ".join(f"{handles[run_id]}:{path}" for run_id, _, path in (m.partition(":") for m in shown))
        print(f"warning: {len(report.lfs_missing)} LFS artifact(s) are not in the local store and were not "
              f"uploaded (fetch them with `git exp pull --artifacts` first): {missing}", file=sys.stderr)
    if report.rejected:
        print(f"git exp: error: {len(report.rejected)} ref(s) rejected by {report.remote}; for a run, "
              "`git exp fetch` shows how the two versions differ", file=sys.stderr)
        return 1
    return 0


def _print_fetch(repo: Repo, report: FetchReport) -> None:
    from gitexp.text import printable

    titles = _titles(repo, [*report.new[:SHOWN], *report.updated[:SHOWN], *(ref for ref, _ in report.conflicts)],
                     report.runs_here)
    _list_runs("new", report.new, titles)
    _list_runs("updated", report.updated, titles)
    for ref, kept in report.conflicts:
        print(printable(f"warning: run {titles.get(ref, ref)} differs on {report.remote}: kept yours, theirs is at "
                        f"{kept} (compare them with `git log --oneline {ref} {kept}`; take theirs with "
                        f"`git update-ref {ref} {kept}`)"), file=sys.stderr)
    if report.removed_here:
        print(f"note: {len(report.removed_here)} run(s) you removed with `git exp rm` were not brought back",
              file=sys.stderr)
    if report.invalid:
        print(f"warning: ignored {len(report.invalid)} ref(s) of {report.remote} that are not runs: "
              f"{', '.join(report.invalid[:5])}", file=sys.stderr)
    parts = [f"{len(report.new)} new", f"{len(report.updated)} updated", f"{report.same} unchanged"]
    if report.ahead:
        parts.append(f"{len(report.ahead)} ahead here (push them)")
    if report.conflicts:
        parts.append(f"{len(report.conflicts)} in conflict")
    notes = f"; notes {report.notes}" if report.notes else ""
    lfs = f"; {report.lfs_fetched} LFS object(s) fetched" if report.lfs_fetched else ""
    print(f"fetched from {report.remote}: {', '.join(parts)}{notes}{lfs}")


def cmd_fetch(remote: str | None, artifacts: bool, pull: bool) -> int:
    from gitexp.git.repo import Repo
    from gitexp.ops import remote as remote_mod

    repo = Repo.discover()
    report = remote_mod.pull(repo, remote, artifacts) if pull else remote_mod.fetch(repo, remote)
    _print_fetch(repo, report)
    return 0


def cmd_remote(action: str, remote: str | None) -> int:
    from gitexp.git.repo import Repo
    from gitexp.ops import remote as remote_mod

    if action != "setup":
        raise GitexpError(f"unknown action {action!r}; use `git exp remote setup [REMOTE]`")
    name, added = remote_mod.setup(Repo.discover(), remote)
    for key, spec in added:
        print(f"added {key} = {spec}")
    if not added:
        print(f"remote {name} already carries runs and notes")
    else:
        print(f"plain `git fetch {name}` and `git push {name}` now carry runs and notes; `git exp fetch` "
              "also merges diverged notes and keeps both versions of a diverged run")
    return 0


def gc_lfs(dry_run: bool) -> None:
    """The LFS part of `git exp gc` (called by gitexp/cli/core.py)."""
    from gitexp.git.repo import Repo
    from gitexp.ops import prune
    from gitexp.store.artifacts import human_size

    removed, why_not = prune.prune(Repo.discover(), dry_run)
    if why_not:
        print(f"note: {why_not}", file=sys.stderr)
    if removed:
        verb = "would delete" if dry_run else "deleted"
        print(f"{verb} {len(removed)} unreferenced LFS object(s), {human_size(sum(s for _, s in removed))}")


def register(add: AddCommand) -> None:
    p = add("artifacts", "List a run's artifacts: path, size, storage, whether the content is here, sha256.")
    p.add_argument("run", help="run handle (as `git exp ls` shows it), id, unique id prefix, or unique run name")
    p.add_argument("--format", "-f", dest="form", default="table", choices=("table", "json"),
                   help="output format; json prints a list of {path, size, sha256, lfs, present} objects")
    p.add_argument("--experiment", "-e", help="look the run up in this experiment only")
    p.set_defaults(func=lambda a: cmd_artifacts(a.run, a.form, a.experiment))

    p = add("get", "Restore a run's artifacts into a folder, checking every sha256 (fetching LFS content first).")
    p.add_argument("run", help="run handle (as `git exp ls` shows it), id, unique id prefix, or unique run name")
    p.add_argument("paths", nargs="*", metavar="PATH", help="artifact files or folders (default: all)")
    p.add_argument("--output", "-o", default=".", metavar="DIR", help="folder to restore into (default: .)")
    p.add_argument("--remote", "-r", help="remote to fetch missing LFS content from (default: as for push)")
    p.add_argument("--force", action="store_true", help="overwrite files in DIR that differ")
    p.add_argument("--experiment", "-e", help="look the run up in this experiment only")
    p.set_defaults(func=lambda a: cmd_get(a.run, a.paths, a.output, a.remote, a.force, a.experiment))

    p = add("push", "Push runs, notes and their LFS artifacts to a remote with your own git.")
    p.add_argument("args", nargs="*", metavar="[REMOTE] [RUN...]",
                   help="a configured remote (default: the branch's remote, else origin), then runs (default: all)")
    p.add_argument("--no-artifacts", action="store_true", help="push runs and notes only, not LFS content")
    p.set_defaults(func=lambda a: cmd_push(a.args, a.no_artifacts))

    p = add("fetch", "Fetch a remote's runs and notes; keep both versions of a run that differs.")
    p.add_argument("remote", nargs="?", help="a configured remote (default: the branch's remote, else origin)")
    p.set_defaults(func=lambda a: cmd_fetch(a.remote, False, False))

    p = add("pull", "Fetch, and with --artifacts also the LFS content of the remote's runs.")
    p.add_argument("remote", nargs="?", help="a configured remote (default: the branch's remote, else origin)")
    p.add_argument("--artifacts", action="store_true", help="download LFS content now, not on `git exp get`")
    p.set_defaults(func=lambda a: cmd_fetch(a.remote, a.artifacts, True))

    p = add("remote", "Configure a remote so that plain git fetch/push also carry runs and notes.")
    p.add_argument("action", choices=("setup",), help="add refspecs for runs and notes to the remote's configuration")
    p.add_argument("remote", nargs="?", help="a configured remote (default: the branch's remote, else origin)")
    p.set_defaults(func=lambda a: cmd_remote(a.action, a.remote))
