"""Writing runs: a run's state becomes a commit on its ref, moved by compare-and-swap."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError, StorageError
from gitexp.git.repo import Entry, RefConflictError, RefLockedError, Repo
from gitexp.store import codec as fmt
from gitexp.store import journal, names
from gitexp.store.isotime import iso, parse_iso
from gitexp.store.state import FINAL_STATUSES, RunState


def run_ref(experiment: str, run_id: str) -> str:
    return f"{names.REF_PREFIX}{experiment}/{run_id}"


def commit_state(repo: Repo, state: RunState, tip: str | None, extra_parents: tuple[str, ...] = (),
                 files: dict[str, Any] | None = None, first: str | None = None) -> str:
    """Commit *state* on top of *tip* (None: create the ref) and return the new commit.

    The first commit's parent is the code commit the run started from (so pushing a run
    carries its code); later commits have the previous commit of the run first. *first*:
    the run's first commit when the ref does not exist yet (staged by stage_first, or written
    by a process that died before creating the ref): the new commit goes on top of it, and
    both reach the disk in one pack and the ref in one update.
    """
    tree = repo.stage_tree(fmt.tree_spec(repo, state, files))
    previous = first if first is not None else tip
    if previous is None:
        parents = _first_parents(state, extra_parents)
    else:
        parents = [previous, *(p for p in extra_parents if p != previous)]
    commit = repo.commit_staged(tree, parents, fmt.commit_message(state), sign=repo.config_bool("exp.sign", False))
    _move_ref(repo, state, tip, commit)
    return commit


def stage_first(repo: Repo, initial: RunState, extra_parents: tuple[str, ...] = ()) -> str:
    """Stage (not write) a run's RUNNING commit as it started; commit_state(first=...) writes it."""
    tree = repo.stage_tree(fmt.tree_spec(repo, initial))
    return repo.stage_commit(tree, _first_parents(initial, extra_parents), fmt.commit_message(initial),
                             sign=repo.config_bool("exp.sign", False))


def _first_parents(state: RunState, extra_parents: tuple[str, ...]) -> list[str]:
    """A run's first commit: the code commit it started from (none in an empty repository), then
    any extra parents (the run it was forked from)."""
    base = state.meta.get("git", {}).get("commit")
    parents = [base] if base else []
    return parents + [p for p in extra_parents if p not in parents]


def put_first(repo: Repo, initial: RunState, first: str) -> str:
    """Write the staged RUNNING commit *first* and create the run's ref at it."""
    repo.write_staged()
    _move_ref(repo, initial, None, first)
    return first


def _move_ref(repo: Repo, state: RunState, tip: str | None, commit: str) -> None:
    ref = run_ref(state.meta["experiment"], state.id)
    reason = f"gitexp: {state.meta.get('status', 'RUNNING').lower()} {state.id}"
    if tip is None:
        repo.create_ref(ref, commit, reason)
    else:
        repo.update_ref(ref, commit, tip, reason)


def output_log_entry(repo: Repo, path: Path) -> dict[str, Any]:
    if path.is_file():
        return {fmt.OUTPUT_LOG: Entry(repo.stage_blob(path.read_bytes()))}
    return {}


def recover(repo: Repo) -> list[tuple[str, str]]:
    """Finish every run whose process died on this machine; returns (run id, status)."""
    done = []
    for run_id, info, fd in journal.orphans(repo.commondir):
        try:
            done.append(_recover_one(repo, run_id, info))
        except GitexpError as exc:
            import warnings

            warnings.warn(f"gitexp: could not recover run {run_id}: {exc}; `git exp recover` retries",
                          RuntimeWarning, stacklevel=2)
        finally:
            os.close(fd)
    return done


def _recover_one(repo: Repo, run_id: str, info: dict[str, Any]) -> tuple[str, str]:
    root = journal.journal_root(repo.commondir)
    ref = run_ref(info["experiment"], run_id) if "experiment" in info else None
    tip = repo.ref(ref) if ref else None
    # The base is the run's first commit, which the journal extends. It is recorded before it
    # is written, so it may be missing from the disk: then the run is rebuilt as it started.
    base = info.get("base")
    if base is not None and not repo.has_object(base):
        base = None
    if base is None and "initial" not in info:  # a journal from before "initial" existed
        if tip is None:
            journal.remove_files(root, run_id)  # died before committing anything: nothing to keep
            return run_id, "EMPTY"
        base = tip  # then the ref's first commit
    final = fmt.read_meta(repo, tip).get("status") if tip else None
    if final in FINAL_STATUSES:
        # The owner committed its final state and died before removing its journal (the
        # journal's base is always a RUNNING commit, so a final tip is the owner's last word).
        journal.remove_files(root, run_id)
        return run_id, final
    if base is not None:
        state = fmt.read_state(repo, base)
    else:
        state, extra_parents = journal.initial_state(info["initial"])
        # Whatever of the start-up snapshot never reached the disk is left out, not referenced.
        state.files = {p: e for p, e in state.files.items() if repo.has_object(e.oid)}
        code = state.meta.get("code") or {}
        if code.get("tree") and not repo.has_object(code["tree"]):
            state.meta["code"] = {k: v for k, v in code.items() if k != "tree"}
        base = stage_first(repo, state, extra_parents)
    last_time, complete = 0.0, False
    for segment in journal.segments(root, run_id, info.get("pid")):
        with open(segment, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
        journal.apply(state, lines)
        complete = complete or (segment.name == f"{run_id}.{info.get('pid')}.log" and journal.is_complete(lines))
        last_time = max(last_time, segment.stat().st_mtime)
    # Only a final commit on the ref makes a run FINISHED: a status the journal holds was written
    # as the process began to end, and whatever it committed after that never landed.
    ended_as = state.meta.get("status")
    if complete and ended_as in FINAL_STATUSES:
        pass  # the owner journaled everything, then its status, and gave up committing: it stands
    elif ended_as in FINAL_STATUSES:
        why = (f"process {info.get('pid')} on {socket.gethostname()} ended the run as {ended_as}, but its "
               "final commit never landed (killed while writing it, or unable to); gitexp finished it from "
               "its journal")
    else:
        why = (f"process {info.get('pid')} on {socket.gethostname()} exited without ending the run; "
               "gitexp finished it from its journal")
    if not complete and (ended_as != "CRASHED" or "error" not in state.meta):
        state.update_meta({
            "status": "CRASHED",
            "end": iso(last_time or time.time()),
            "error": {"type": "ProcessDied", "message": why,
                      **({"cause": state.meta["error"]} if isinstance(state.meta.get("error"), dict) else {})},
        })
        start = state.meta.get("start")
        if start:
            state.meta["duration"] = round(max(0.0, parse_iso(state.meta["end"]) - parse_iso(start)), 3)
    ref = ref or run_ref(state.meta["experiment"], state.id)  # a journal's info names it; the state always does
    for _ in range(5):
        try:
            current = repo.ref(ref)
            commit_state(repo, state, current, files=output_log_entry(repo, root / f"{run_id}.output"),
                         first=base if current is None else None)
            break
        except RefLockedError as exc:  # another try would wait as long again: say what holds it
            raise StorageError(f"cannot recover run {run_id}: {exc}; its journal is kept") from exc
        except RefConflictError:
            continue
    else:  # the journal stays until the ref holds what it recovered
        raise StorageError(f"{ref} kept moving while gitexp recovered run {run_id}; its journal is kept")
    journal.remove_files(root, run_id)
    try:  # the ended run's line in refs/notes/experiments: derived data, `git exp notes rebuild` redoes it
        if repo.config_bool("exp.notes", True):
            from gitexp.store import notes

            notes.add_run_note(repo, state.meta, fmt.summaries(state))
    except GitexpError:
        pass
    return run_id, state.meta["status"]
