"""Linking runs to the commit that now holds their code: what the post-commit hook does in the
background (gitexp/ops/hookentry.py) before it starts the auto-run (gitexp/tracking/runner.py).

A run made on a dirty tree records the snapshot of that tree (meta.code.tree). When a commit
is made whose tree is exactly that snapshot, the run's code now has a name: the run gains
`linked_commit` in meta (a new commit on its ref, status unchanged) and a line in that
commit's note. A run still RUNNING on this machine gets the link through its journal, so its
owner writes it with its next commit.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gitexp.git.repo import RefConflictError, Repo
from gitexp.store import codec as fmt
from gitexp.store import journal, names

LOG_FILE = Path("gitexp") / "hooks.log"


def link_reason(run_id: str) -> str:
    return f"gitexp: link {run_id}"


def candidates(repo: Repo, commit: str) -> list[tuple[str, str]]:
    """(ref, tip) of every run whose code snapshot is *commit*'s tree (one tree-entry read per run)."""
    tree = repo.tree_of(commit)
    return [(ref, tip) for ref, tip in sorted(repo.refs(names.REF_PREFIX).items())
            if repo.entry_oid(tip, fmt.CODE_DIR) == tree]


def link_runs(repo: Repo, commit: str) -> list[str]:
    """Link every run made on a dirty tree whose snapshot equals *commit*'s tree; returns their ids."""
    linked: list[str] = []
    with repo.shelf_batch():
        _link_each(repo, commit, linked)
    return linked


def _link_each(repo: Repo, commit: str, linked: list[str]) -> None:
    for ref, tip in candidates(repo, commit):
        for _ in range(10):
            meta = fmt.read_meta(repo, tip)
            git = meta.get("git") or {}
            if not git.get("dirty") or git.get("commit") == commit or meta.get("linked_commit") == commit:
                break
            if meta.get("status") == "RUNNING":
                if _link_live(repo, meta["id"], commit):
                    linked.append(meta["id"])
                break
            try:
                new = _link_commit(repo, ref, tip, meta, commit)
            except RefConflictError:  # the run moved (resumed, removed): look again
                moved = repo.ref(ref)
                if moved is None:
                    break
                tip = moved
                continue
            linked.append(meta["id"])
            _note(repo, new)
            break


def _link_commit(repo: Repo, ref: str, tip: str, meta: dict[str, Any], commit: str) -> str:
    """A commit on the run's ref that changes nothing but meta.linked_commit."""
    tree = repo.stage_tree(fmt.replace_meta(repo, tip, {**meta, "linked_commit": commit}))
    _, message, _ = repo.commit_info(tip)
    new = repo.commit_staged(tree, [tip], message, sign=repo.config_bool("exp.sign", False))
    repo.cas_ref(ref, new, tip, link_reason(meta["id"]))
    return new


def _link_live(repo: Repo, run_id: str, commit: str) -> bool:
    """Hand the link to a live run's owner through the journal; False if it runs elsewhere."""
    jour = journal.Journal.attach(repo.commondir, run_id)
    if not jour.exists():
        return False
    try:
        jour.append(journal.record_line("S", {"linked_commit": commit}))
    finally:
        jour.close()
    return True


def _note(repo: Repo, run_commit: str) -> None:
    if not repo.config_bool("exp.notes", True):
        return
    from gitexp.store import notes

    meta, _, metrics = fmt.read_summary(repo, run_commit)
    notes.add_run_note(repo, meta, metrics)


def log_problem(commondir: Path, what: str) -> None:
    """Background work has no terminal: its problems go to hooks.log, shown by `git exp hooks status`."""
    path = commondir / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > 256 * 1024:
            path.write_text("".join(path.read_text(errors="replace").splitlines(keepends=True)[-200:]))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {' '.join(what.split())}\n")
    except OSError:
        pass  # nowhere left to report to; the commit itself is unaffected either way
