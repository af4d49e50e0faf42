"""Runs beside the commits they ran on: one line per run in refs/notes/experiments.

The note of a code commit holds one line per run that started from it (or was linked to it
by the post-commit hook), sorted and unique, the newest NOTE_LINES of them (and a line saying
so when there are more):

    <run-id> <experiment>/<name> <STATUS> [key=value ...]

so the notes of two machines merge by taking the union of their lines, which is what git's
own `git notes merge -s cat_sort_uniq` does and what merge_notes() does. Notes are derived
data: `git exp notes rebuild` regenerates them from the runs. Every writer moves the notes
ref by compare-and-swap and retries when it loses, so concurrent writers lose no line.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from gitexp import threads
from gitexp.errors import GitexpError, StorageError
from gitexp.git.repo import RefConflictError, Repo
from gitexp.store.background import worker
from gitexp.text import printable

NOTES_REF = "refs/notes/experiments"
ATTEMPTS = 60  # enough for dozens of runs of a sweep ending in the same second
NOTE_DELAY = 1.0  # seconds a finished run's line may wait to share a notes commit with others
# Run lines a note keeps (git config exp.noteLines): the newest, by run id. Every run of a sweep
# rewrites the note of its code commit, so an unbounded note made each run cost in proportion to
# the sweep so far, and the sweep's objects grow with its square (1,500 runs: 69 MB of note blobs).
NOTE_LINES = 20
# The commit quoted: a prefix of digits alone (or digits, an e, digits) would read as a number.
EARLIER = "(only the {count} newest runs; every run of this commit: git exp ls --where \"commit = '{commit}'\")"


class NoteEntry(NamedTuple):
    run_id: str
    line: str
    commits: tuple[str, ...]


_queue: list[tuple[Path, float, NoteEntry]] = []
_queue_lock = threading.Lock()
_flush_lock = threading.Lock()  # one writer per process at a time: the background thread or a reader


def _after_fork() -> None:
    global _queue_lock, _flush_lock
    _queue_lock, _flush_lock = threading.Lock(), threading.Lock()
    _queue.clear()  # the parent's queued lines are the parent's to write


os.register_at_fork(after_in_child=_after_fork)


def headline(metrics: Mapping[str, Mapping[str, Any]], chosen: str | None = None) -> str:
    """`key=value` of the metrics worth a glance: those in git config exp.noteMetrics, else up to
    three in alphabetical order, system metrics left out."""
    keys = [k.strip() for k in chosen.split(",") if k.strip()] if chosen else \
        sorted(k for k in metrics if not k.startswith("system/"))[:3]
    shown = []
    for key in keys:
        value = (metrics.get(key) or {}).get("last")
        if isinstance(value, (int, float)):
            shown.append(f"{key}={value:.4g}" if math.isfinite(value) else f"{key}={value}")
    return " ".join(shown)


def clean_line(text: str) -> str:
    """*text* as one note line: whitespace folded to single spaces, other control characters shown escaped.

    `git log --notes` prints note lines raw: run data (a fetched run's name, status, metric keys) and a
    remote's note lines must neither break a line into two (a fake run line) nor reach the terminal as
    escape sequences.
    """
    return printable(" ".join(text.split()))


def note_line(meta: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], chosen: str | None = None) -> str:
    name = meta.get("name") or meta["id"]
    shown = headline(metrics, chosen)
    return clean_line(f"{meta['id']} {meta['experiment']}/{name} {meta.get('status', 'RUNNING')} {shown}")


def annotated_commits(meta: Mapping[str, Any]) -> list[str]:
    """The code commits a run's line goes on: its base commit and the commit it was linked to."""
    base = (meta.get("git") or {}).get("commit")
    return list(dict.fromkeys(c for c in (base, meta.get("linked_commit")) if c))


def parse(data: bytes | None) -> list[str]:
    return [line for line in (data or b"").decode(errors="replace").splitlines() if line.strip()]


def render(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in sorted(set(lines))).encode()


def capped(lines: Iterable[str], commit: str, cap: int) -> list[str]:
    """The note of *commit* as written: its run lines, the newest *cap* of them (a run id begins with
    its start time), and, when some were left out now or by an earlier writer, a line saying so and
    how to list them all; sorted, as render() writes them."""
    every = set(lines)
    runs = sorted(line for line in every if not line.startswith("("))
    if len(runs) <= cap and len(runs) == len(every):
        return runs
    return sorted([EARLIER.format(count=cap, commit=commit[:12]), *runs[-cap:]])  # as render() orders them


def line_cap(repo: Repo) -> int:
    """git config exp.noteLines (at least 1), else NOTE_LINES."""
    return max(1, int(repo.config_number("exp.noteLines", NOTE_LINES)))


def _commit_or_none(repo: Repo, ref_value: str | None) -> str | None:
    """*ref_value* (the notes ref's target) when it is a commit, else None: a notes ref fetched or
    written by something else may point at a blob or a tree, which holds no notes to read."""
    return ref_value if ref_value is not None and repo.resolve_commit(ref_value) == ref_value else None


def notes_tip(repo: Repo) -> str | None:
    """The notes commit refs/notes/experiments points at; None without one, and, with a warning,
    when it points at something else (the next notes write replaces it)."""
    value = repo.ref(NOTES_REF)
    tip = _commit_or_none(repo, value)
    if value is not None and tip is None:
        from gitexp.store.codec import object_kind

        warnings.warn(f"gitexp: ignoring {NOTES_REF}: it points at {object_kind(repo, value)} ({value[:12]}), not "
                      "at a notes commit; `git exp notes rebuild` writes it again", RuntimeWarning, stacklevel=2)
    return tip


def notes_of(repo: Repo, notes_commit: str | None = None) -> dict[str, list[str]]:
    """Code commit -> note lines, for the notes ref (or another notes commit)."""
    flush_pending()
    tip = notes_commit or notes_tip(repo)
    if tip is None:
        return {}
    return {commit: parse(repo.read_blob(blob)) for commit, blob in repo.notes_map(tip).items()}


def lines_for(repo: Repo, commit: str, notes: Mapping[str, str] | None = None) -> list[str]:
    """The note lines of one code commit (*notes*: a notes_map, to look up many commits at once)."""
    if notes is None:
        flush_pending()
        tip = notes_tip(repo)
        notes = repo.notes_map(tip) if tip else {}
    blob = notes.get(commit)
    return parse(repo.read_blob(blob)) if blob else []


def update(repo: Repo, change: Callable[[str | None], dict[str, str | None] | None], message: str,
           flush: bool = True) -> str | None:
    """Apply *change* (current notes commit -> {annotated: blob or None}) and move the notes ref by
    compare-and-swap, recomputing the change after every lost race. Returns the new notes commit."""
    if flush:
        flush_pending()  # queued lines go first, so that this change is made on top of them
    for attempt in range(ATTEMPTS):
        current = repo.ref(NOTES_REF)
        tip = _commit_or_none(repo, current)  # a ref at anything else is replaced
        updates = change(tip)
        if not updates:
            repo.discard_staged()  # blobs a caller staged for the change: all already there
            return tip
        tree = repo.notes_tree(tip, updates)
        if tip is not None and tree == repo.tree_of(tip):
            repo.discard_staged()
            return tip
        commit = repo.commit_staged(tree, [tip] if tip else [], message)
        try:
            repo.cas_ref(NOTES_REF, commit, current, message)
            return commit
        except RefConflictError:
            # Jittered backoff: writers that collided now spread out instead of colliding again.
            time.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** min(attempt, 7))))
    raise StorageError(f"could not update {NOTES_REF} after {ATTEMPTS} attempts: other processes kept "
                       "moving it; `git exp notes rebuild` writes every run's note again")


def add_run_note(repo: Repo, meta: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Put (or replace) this run's line in the note of every commit it belongs to, now."""
    flush_pending()  # an older queued line of the same run must not land after this one
    return add_lines(repo, [_entry(repo, meta, metrics)])


def queue_run_note(repo: Repo, meta: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> None:
    """add_run_note, deferred: the runs of a sweep that end within NOTE_DELAY share one notes
    commit instead of rewriting the note once per run. flush_pending() writes them; the
    background thread calls it, readers of the notes call it, and so does process exit."""
    if worker.in_forked_child:  # it may end with os._exit, before any flush: write the line now
        add_run_note(repo, meta, metrics)
        return
    entry = _entry(repo, meta, metrics)
    with _queue_lock:
        _queue.append((repo.commondir, time.monotonic(), entry))


def flush_pending(min_age: float = 0.0) -> None:
    """Write the queued notes (only if the oldest waited *min_age* seconds). A failure warns:
    the runs are saved either way, and `git exp notes rebuild` rewrites every line."""
    with _flush_lock:
        with _queue_lock:
            if not _queue or time.monotonic() - _queue[0][1] < min_age:
                return
            items = list(_queue)
            _queue.clear()
        by_repo: dict[Path, list[NoteEntry]] = {}
        for commondir, _, entry in items:
            by_repo.setdefault(commondir, []).append(entry)
        for commondir, entries in by_repo.items():
            try:
                repo = Repo.borrow(commondir)
                add_lines(repo, entries)
                repo.give_back()
            except GitexpError as exc:
                warnings.warn(f"gitexp: the notes of {len(entries)} run(s) in {commondir} were not written "
                              f"({exc}); `git exp notes rebuild` writes them", RuntimeWarning, stacklevel=2)


def flush_due() -> None:
    """The background thread's chore: write queued notes once the oldest has waited NOTE_DELAY."""
    flush_pending(NOTE_DELAY)


def _entry(repo: Repo, meta: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> NoteEntry:
    return NoteEntry(str(meta["id"]), note_line(meta, metrics, repo.config("exp.noteMetrics")),
                     tuple(annotated_commits(meta)))


def add_lines(repo: Repo, entries: list[NoteEntry]) -> str | None:
    """One notes commit putting each entry's line on its commits, replacing that run's old line."""
    wanted: dict[str, dict[str, str]] = {}  # code commit -> run id -> line (the last entry wins)
    for entry in entries:
        for commit in entry.commits:
            if repo.has_object(commit):
                wanted.setdefault(commit, {})[entry.run_id] = entry.line
    if not wanted:
        return None

    cap = line_cap(repo)

    def change(tip: str | None) -> dict[str, str | None]:
        current = repo.notes_map(tip) if tip else {}
        updates: dict[str, str | None] = {}
        for commit, lines in wanted.items():
            old = parse(repo.read_blob(current[commit])) if commit in current else []
            new = capped([x for x in old if x.split(" ", 1)[0] not in lines] + list(lines.values()), commit, cap)
            if new != old:
                updates[commit] = repo.stage_blob(render(new), look_up=False)
        return updates

    first = entries[0].run_id
    return update(repo, change, f"gitexp: note {first}" + (f" and {len(entries) - 1} more" if len(entries) > 1 else ""),
                  flush=False)


def rebuild(repo: Repo, records: Iterable[Any]) -> tuple[str | None, int]:
    """Replace the notes with what the runs say now; returns (notes commit, lines written)."""
    wanted: dict[str, list[str]] = {}
    chosen = repo.config("exp.noteMetrics")
    for record in records:
        for commit in annotated_commits(record.meta):
            if repo.has_object(commit):
                wanted.setdefault(commit, []).append(note_line(record.meta, record.metrics, chosen))
    cap = line_cap(repo)
    blobs = {commit: repo.stage_blob(render(capped(lines, commit, cap)), look_up=False)
             for commit, lines in wanted.items()}

    def change(tip: str | None) -> dict[str, str | None]:
        current = repo.notes_map(tip) if tip else {}
        gone: dict[str, str | None] = {commit: None for commit in current if commit not in blobs}
        return {**gone, **{c: b for c, b in blobs.items() if current.get(c) != b}}

    tip = update(repo, change, "gitexp: notes rebuild")
    return tip, sum(min(len(set(lines)), cap) for lines in wanted.values())


def _their_lines(repo: Repo, other: str) -> tuple[dict[str, list[str]], bool]:
    """(code commit -> note lines, each through clean_line) of another notes commit, and whether its
    notes are text without control characters but newlines: only then is it taken as it is (a
    fast-forward), since `git log --notes` prints its blobs raw."""
    theirs, clean = {}, True
    for commit, blob in repo.notes_map(other).items():
        data = repo.read_blob(blob)
        theirs[commit] = [clean_line(line) for line in parse(data)]
        if clean:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                clean = False
            else:
                clean = printable(text, keep="\n") == text
    return theirs, clean


def merge_notes(repo: Repo, other_notes_commit: str) -> str | None:
    """Merge another notes commit (e.g. a remote's refs/notes/experiments, just fetched) into
    refs/notes/experiments: for every code commit, the union of both sides' lines, sorted and
    unique, exactly as `git notes merge -s cat_sort_uniq` would, then capped to the newest
    exp.noteLines run lines as every writer caps them.

    Fast-forwards when one side contains the other, else writes a merge commit whose parents
    are the local tip and *other_notes_commit*. Safe against concurrent writers (compare-and-
    swap, retried). Returns the resulting notes commit (None when both sides are empty).
    """
    flush_pending()
    other = repo.resolve_commit(other_notes_commit)
    if other is None:
        raise GitexpError(f"cannot merge notes from {other_notes_commit!r}: no such commit in "
                          f"{repo.gitdir}; fetch the remote's {NOTES_REF} first")
    theirs, clean = _their_lines(repo, other)
    cap = line_cap(repo)
    for attempt in range(ATTEMPTS):
        current = repo.ref(NOTES_REF)
        tip = _commit_or_none(repo, current)  # a ref at anything else is replaced
        if tip is not None and repo.is_ancestor(other, tip):
            return tip  # nothing new on their side
        if (tip is None or repo.is_ancestor(tip, other)) and clean:
            commit, message = other, f"gitexp: notes fast-forward to {other[:12]}"
        else:
            # Theirs as cleaned: all of it where it contains ours, else the union with ours.
            ours = notes_of(repo, tip) if tip is not None else {}
            replace = tip is None or repo.is_ancestor(tip, other)
            updates: dict[str, str | None] = {c: None for c in ours if c not in theirs} if replace else {}
            for c, lines in theirs.items():
                merged = capped(lines if replace else [*ours.get(c, []), *lines], c, cap)
                if merged != ours.get(c):
                    updates[c] = repo.stage_blob(render(merged), look_up=False)
            message = f"gitexp: merge notes from {other[:12]}"
            commit = repo.commit_staged(repo.notes_tree(tip, updates), [tip, other] if tip else [other], message)
        try:
            repo.cas_ref(NOTES_REF, commit, current, message)
            return commit
        except RefConflictError:
            time.sleep(random.uniform(0, min(0.2, 0.002 * 2 ** min(attempt, 7))))
    raise StorageError(f"could not merge notes into {NOTES_REF}: other processes kept moving it; try again")


# A SIGTERM's handler ends the runs, which takes this lock: it must not wait for it in the thread that holds it.
threads.holds_locks(flush_pending, queue_run_note)
