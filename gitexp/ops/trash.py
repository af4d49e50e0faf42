"""Removing runs recoverably (`git exp rm`, `rm --undo`) and deleting them for good (`gc`)."""

from __future__ import annotations

from pathlib import Path

from gitexp.errors import GitexpError
from gitexp.git import shelf
from gitexp.git.repo import Repo
from gitexp.store import names, runs

LAST_RM = "gitexp/last-rm"


def _trash_ref(record: runs.RunRecord) -> str:
    return f"{names.TRASH_PREFIX}{record.experiment}/{record.id}"


def titles(records: list[runs.RunRecord]) -> list[str]:
    """How messages name *records* ("3fa9c21 cnn/lr-0.1"), by handles that are unique among the runs
    and the removed runs, so that both `git exp show` and `git exp rm --undo` take them."""
    every = [runs.split_ref(ref, namespace)[1] for namespace in (names.REF_PREFIX, names.TRASH_PREFIX)
             for ref in (records[0].repo.refs(namespace) if records else {})]
    handles = names.handles([*every, *(r.id for r in records)])
    return [runs.run_title(r, handles[r.id]) for r in records]


def remove(run_texts: list[str], experiment: str | None = None, repo: Repo | None = None,
           force: bool = False) -> list[runs.RunRecord]:
    """Move runs to refs/experiments-trash/ (reflog included); returns the removed runs."""
    repo = repo or Repo.discover()
    # All or nothing; each read alone where its id, name or handle tells (get_runs), not 100,000 loaded.
    chosen = {r.id: r for r in runs.get_runs(run_texts, repo, experiment)}
    live = [r for r in chosen.values() if r.status == "RUNNING"]
    if live and not force:
        raise GitexpError(f"run {titles(live[:1])[0]} is still RUNNING on {live[0].meta.get('host')}; "
                          "removing it now would lose what it logs next. Wait for it to end, or pass --force")
    removed = []
    with repo.shelf_batch():
        for record in chosen.values():
            repo.rename_ref(record.ref, _trash_ref(record), record.commit, f"gitexp: rm {record.id}")
            removed.append(record)
    (repo.commondir / LAST_RM).parent.mkdir(parents=True, exist_ok=True)
    (repo.commondir / LAST_RM).write_text("".join(f"{i}\n" for i in chosen))
    return removed


def undo(run_texts: list[str], repo: Repo | None = None) -> list[runs.RunRecord]:
    """Restore removed runs: those named, or else those of the last `git exp rm`; returns them."""
    repo = repo or Repo.discover()
    trashed = runs.load_runs(repo, recover=False, namespace=names.TRASH_PREFIX)
    if run_texts:
        chosen = [runs.resolve(trashed, text) for text in run_texts]
    else:
        last = repo.commondir / LAST_RM
        wanted = set(last.read_text().split()) if last.exists() else set()
        chosen = [r for r in trashed if r.id in wanted]
        if not chosen:
            raise GitexpError("nothing to undo: the last `git exp rm` was undone or collected already; "
                              "`git exp rm --undo RUN` restores a removed run by id or name")
    restored = []
    for record in chosen:
        repo.rename_ref(_trash_ref(record), record.ref, record.commit, f"gitexp: rm --undo {record.id}")
        restored.append(record)
    return restored


class Collected(list[str]):
    """gc()'s deleted refs, and how many settled packs it handed back to `git gc`."""

    __slots__ = ("lifted",)

    def __init__(self, refs: list[str], lifted: int) -> None:
        super().__init__(refs)
        self.lifted = lifted


def gc(dry_run: bool = False, repo: Repo | None = None) -> Collected:
    """Delete removed runs for good; what they alone reference becomes unreachable for `git gc`,
    settled objects too: their packs are handed back to it (the next upkeep settles the rest again)."""
    repo = repo or Repo.discover()
    doomed = repo.refs(names.TRASH_PREFIX)
    lifted = 0
    if not dry_run:
        for ref, commit in doomed.items():
            repo.delete_ref(ref, commit)
        (repo.commondir / LAST_RM).unlink(missing_ok=True)
        if doomed:
            shelf.compact(Path(repo.commondir))  # (its links would keep a shelved run's objects)
            lifted = repo.lift_settled_packs()
    return Collected(sorted(doomed), lifted)
