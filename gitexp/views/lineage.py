"""`git exp log`: a run's lineage (forks, reruns, resumes) as a tree, or commits with their runs.

A run has at most one lineage parent: the run it was forked from (meta.forked_from) or the
run it reruns (meta.rerun_of), so the lineage of runs is a forest and a tree drawing shows it
exactly. Resumes are sessions of one run: a RUNNING commit on its ref after a final one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from gitexp.errors import GitexpError
from gitexp.git.reader import RepoReader
from gitexp.git.repo import Repo
from gitexp.store import notes
from gitexp.store.runs import RunRecord
from gitexp.store.state import FINAL_STATUSES
from gitexp.text import printable

RELATIONS = {"forked_from": "fork", "rerun_of": "rerun"}  # RunRecord.origin's meta keys


def _trailers(message: str) -> dict[str, str]:
    out = {}
    for line in message.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key:
            out[key] = value.strip()
    return out


def sessions(repo: RepoReader, record: RunRecord) -> list[tuple[int, str]]:
    """(start time, status it ended with) of each session of a run, oldest first; one per resume."""
    chain = []
    commit: str | None = record.commit
    while commit:
        parents, message, when = repo.commit_info(commit)
        trailers = _trailers(message)
        if trailers.get("Run-Id") != record.id:
            break  # reached the code commit the run started from
        chain.append((when, trailers.get("Status", "RUNNING")))
        commit = parents[0] if parents else None
    chain.reverse()
    out: list[tuple[int, str]] = []
    previous = None
    for when, status in chain:
        if not out or (status == "RUNNING" and previous in FINAL_STATUSES):
            out.append((when, status))
        else:
            out[-1] = (out[-1][0], status)
        previous = status
    return out


def parent_of(record: RunRecord) -> tuple[str, str] | None:
    """(relation, run id) of the run this one came from."""
    # (From the listing's row where the run has one: at 100,000 runs, reading each run's meta for
    # this took 4 s and 1 GB.)
    found = record.origin
    return None if found is None else (RELATIONS[found[0]], found[1])


def _clock(when: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def _describe(record: RunRecord, asked: str) -> str:
    shown = notes.headline(record.metrics)
    mark = "*" if record.id == asked else "o"
    text = f"{mark} {record.id}  {record.experiment}/{record.name}  {record.status}"
    return printable(f"{text}  {shown}" if shown else text)


def _children(by_id: dict[str, RunRecord]) -> dict[str, list[tuple[str, RunRecord]]]:
    """The runs that came from each run: its id -> [(relation, run)]."""
    children: dict[str, list[tuple[str, RunRecord]]] = {}
    for record in by_id.values():
        link = parent_of(record)
        if link:
            children.setdefault(link[1], []).append((link[0], record))
    return children


def graph(records: Iterable[RunRecord], run: RunRecord) -> list[str]:
    """The lineage tree that holds *run*, from its oldest ancestor down; *run* is marked '*'."""
    by_id = {r.id: r for r in records}
    by_id.setdefault(run.id, run)
    children = _children(by_id)
    root, seen, head = run, {run.id}, []
    while (link := parent_of(root)) is not None and link[1] not in seen:
        seen.add(link[1])
        if link[1] not in by_id:
            head.append(printable(f"  ({root.id} is a {link[0]} of {link[1]}, which is not in this repository)"))
            break
        root = by_id[link[1]]
    lines = [*head]
    _draw(root, "", "", run.id, children, lines, set())
    return lines


def _draw(record: RunRecord, lead: str, rest: str, asked: str, children: dict[str, list[tuple[str, RunRecord]]],
          lines: list[str], drawn: set[str]) -> None:
    drawn.add(record.id)
    lines.append(lead + _describe(record, asked))
    kids = sorted((k for k in children.get(record.id, []) if k[1].id not in drawn), key=lambda k: k[1].id)
    bar = "|   " if kids else "    "
    runs_of = sessions(record.repo, record)
    if len(runs_of) > 1:
        for number, (when, status) in enumerate(runs_of[1:], 2):
            lines.append(f"{rest}{bar}  resumed {_clock(when)} (session {number}) -> {status}")
    for index, (relation, child) in enumerate(kids):
        last = index == len(kids) - 1
        _draw(child, f"{rest}{'`-- ' if last else '|-- '}{relation}: ", rest + ("    " if last else "|   "),
              asked, children, lines, drawn)


def commit_log(repo: Repo, start: str = "HEAD", limit: int = 20, runs_only: bool = False) -> list[str]:
    """Commits from *start*, newest first, each followed by the note lines of its runs."""
    head = repo.resolve_commit(start)
    if head is None:
        raise GitexpError(f"{start!r} names no commit in {repo.workdir or repo.gitdir}; "
                          "`git exp log` starts from HEAD, or give a run: git exp log RUN")
    notes.flush_pending()
    tip = notes.notes_tip(repo)
    annotated = repo.notes_map(tip) if tip else {}
    out: list[str] = []
    shown = 0
    for commit, _, message, when in repo.walk(head, 100_000 if runs_only else limit):
        lines = notes.lines_for(repo, commit, annotated) if commit in annotated else []
        if runs_only and not lines:
            continue
        subject = message.split("\n", 1)[0]
        out.append(f"{commit[:12]}  {_clock(when)}  {printable(subject)}")
        out += [f"    {printable(line)}" for line in lines]  # a remote's notes may hold anything
        shown += 1
        if shown >= limit:
            break
    return out


def lineage_dict(records: Iterable[RunRecord], run: RunRecord) -> dict[str, Any]:
    """The same tree as data, for --format json."""
    by_id = {r.id: r for r in records}
    children = _children(by_id)
    drawn: set[str] = set()

    def node(record: RunRecord) -> dict[str, Any]:
        drawn.add(record.id)
        link = parent_of(record)
        kids = [r for _, r in children.get(record.id, []) if r.id not in drawn]
        return {"id": record.id, "experiment": record.experiment, "name": record.name, "status": record.status,
                "relation": link[0] if link else None, "sessions": len(sessions(record.repo, record)),
                "children": [node(k) for k in sorted(kids, key=lambda r: r.id)]}

    root, seen = run, {run.id}
    while (link := parent_of(root)) is not None and link[1] in by_id and link[1] not in seen:
        seen.add(link[1])
        root = by_id[link[1]]
    return node(root)
