"""Writing runs: a run's state becomes a commit on its ref, moved by compare-and-swap."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp import journal, names
from gitexp.errors import GitexpError
from gitexp.repo import Entry, RefConflictError, Repo
from gitexp.state import FINAL_STATUSES, RunState


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_ref(experiment: str, run_id: str) -> str:
    return f"{names.REF_PREFIX}{experiment}/{run_id}"


def commit_state(repo: Repo, state: RunState, tip: str | None, extra_parents: tuple[str, ...] = (),
                 files: dict[str, Any] | None = None) -> str:
    """Commit *state* on top of *tip* (None: create the ref) and return the new commit.

    The first commit's parent is the code commit the run started from (so pushing a run
    carries its code); later commits have the previous commit of the run first.
    """
    ref = run_ref(state.meta["experiment"], state.id)
    tree = repo.stage_tree(fmt.tree_spec(repo, state, files))
    if tip is None:
        base = state.meta.get("git", {}).get("commit")
        parents = [base] if base else []
    else:
        parents = [tip]
    parents += [p for p in extra_parents if p not in parents]
    commit = repo.commit_staged(tree, parents, fmt.commit_message(state), sign=repo.config_bool("exp.sign", False))
    reason = f"gitexp: {state.meta.get('status', 'RUNNING').lower()} {state.id}"
    if tip is None:
        repo.create_ref(ref, commit, reason)
    else:
        repo.update_ref(ref, commit, tip, reason)
    return commit


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
    # The base is the commit the journal extends; a run that died right after its first
    # commit, before recording the base, extends that first commit.
    base = info.get("base") or tip
    if base is None:
        journal.remove_files(root, run_id)  # died before committing anything: nothing to keep
        return run_id, "EMPTY"
    final = fmt.read_meta(repo, tip).get("status") if tip else None
    if final in FINAL_STATUSES:
        # The owner committed its final state and died before removing its journal (the
        # journal's base is always a RUNNING commit, so a final tip is the owner's last word).
        journal.remove_files(root, run_id)
        return run_id, final
    state = fmt.read_state(repo, base)
    last_time = 0.0
    for segment in journal.segments(root, run_id, info.get("pid")):
        with open(segment, encoding="utf-8", errors="replace") as handle:
            journal.apply(state, handle.readlines())
        last_time = max(last_time, segment.stat().st_mtime)
    if state.meta.get("status") not in FINAL_STATUSES:
        state.update_meta({
            "status": "CRASHED",
            "end": iso(last_time or time.time()),
            "error": {"type": "ProcessDied",
                      "message": f"process {info.get('pid')} on {socket.gethostname()} exited without "
                                 "ending the run; gitexp finished it from its journal"},
        })
        start = state.meta.get("start")
        if start:
            state.meta["duration"] = round(max(0.0, parse_iso(state.meta["end"]) - parse_iso(start)), 3)
    for _ in range(5):
        try:
            commit_state(repo, state, repo.ref(ref), files=output_log_entry(repo, root / f"{run_id}.output"))
            break
        except RefConflictError:
            continue
    journal.remove_files(root, run_id)
    try:  # the ended run's line in refs/notes/experiments: derived data, `git exp notes rebuild` redoes it
        if repo.config_bool("exp.notes", True):
            from gitexp import notes

            notes.add_run_note(repo, state.meta, fmt.summaries(state))
    except GitexpError:
        pass
    return run_id, state.meta["status"]
