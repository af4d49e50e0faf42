"""`git exp show`: one run, readable by a person (text) or a program (yaml, json)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store import codec as fmt
from gitexp.store.fields import flatten
from gitexp.store.runs import RunRecord, run_handles
from gitexp.text import printable
from gitexp.views.table import cell, human_duration, local_time


def render(record: RunRecord, form: str = "text") -> str:
    if form == "json":
        return json.dumps(record.to_dict(env=True), indent=2, default=str) + "\n"
    if form == "yaml":
        return fmt.dump_yaml(record.to_dict(env=True)).decode()
    return text(record)


def _section(title: str, pairs: list[tuple[str, Any]]) -> list[str]:
    if not pairs:
        return []
    pairs = [(printable(str(k)), v) for k, v in pairs]
    width = max(len(k) for k, _ in pairs)
    return ["", title, *(f"  {k:<{width}}  {printable(cell(v, 6))}" for k, v in pairs)]


def _lines_of(value: Any, indent: int) -> str:
    """Free text that may span lines (a description, an error message): control characters shown
    escaped but for newlines and tabs, and each later line indented by *indent*, so that no line
    of it reads as a field of its own."""
    return printable(str(value), keep="\n\t").replace("\n", "\n" + " " * indent)


def text(record: RunRecord) -> str:
    """The run for a person. Every value is run data, which may come from an untrusted remote: each
    is printed through printable(), which shows control characters escaped."""
    meta = record.meta
    git = meta.get("git") or {}
    handles = run_handles([record])
    handle = handles[record.id]
    lines = [printable(f"run {record.id}  {record.experiment}/{record.name}")]
    head = [
        ("handle", handle),
        ("status", record.status + (f" (exit code {meta['exit_code']})" if meta.get("exit_code") is not None
                                    else "")),
        ("start", f"{local_time(record.start)}  ({record.start})"),
        ("duration", human_duration(record.duration) or "still running"),
        ("code", " ".join(filter(None, [(git.get("commit") or "no commit")[:12], git.get("branch") and
                                         f"on {git['branch']}", "with uncommitted changes" if git.get("dirty")
                                         else None]))),
        *_linked(record),
        *_lineage(record, handles),
        ("ref", record.ref),
        ("commit", record.commit[:12]),
        ("host", f"{meta.get('user')}@{meta.get('host')} pid {meta.get('pid')}"),
        ("command", shlex.join(meta.get("command") or [])),
        *_output(record, handle),
    ]
    width = max(len(k) for k in [*(k for k, _ in head), *(["description"] if meta.get("description") else [])])
    lines += [f"{k:<{width}}  {printable(v)}" for k, v in head]
    if meta.get("description"):
        lines.append(f"{'description':<{width}}  {_lines_of(meta['description'], width + 2)}")
    if meta.get("error"):
        error = meta["error"]
        lines += ["", "error", f"  {printable(str(error.get('type')))}: {_lines_of(error.get('message'), 4)}"]
    skipped = (meta.get("code") or {}).get("skipped")
    if skipped:
        lines += ["", f"warning: {len(skipped)} large file(s) left out of the code snapshot: "
                      + printable(", ".join(skipped[:5]))]
    lines += _section("tags", sorted(record.tags.items()))
    lines += _section("params", sorted(flatten(record.params).items()))
    if record.metrics:
        rows = [(printable(k), v) for k, v in sorted(record.metrics.items())]
        width = max(len(k) for k, _ in rows)
        lines += ["", f"{'metrics':<{width + 2}}  {'last':>12} {'step':>8} {'min':>12} {'max':>12} {'count':>7}"]
        lines += [f"  {k:<{width}}  {cell(v.get('last'), 6):>12} {v.get('step', ''):>8} "
                  f"{cell(v.get('min'), 6):>12} {cell(v.get('max'), 6):>12} {v.get('count', ''):>7}"
                  for k, v in rows]
    lines += _artifacts(record) + _inputs(record)
    env = record.env
    if env:
        python = env.get("python") or {}
        gpu = env.get("gpu") or {}
        devices = ", ".join(d.get("name", "?") for d in gpu.get("devices") or []) or "none"
        lines += _section("environment", [
            ("python", f"{python.get('version')} ({python.get('implementation')})"),
            ("os", " ".join(str((env.get("os") or {}).get(k, "")) for k in ("system", "release"))),
            ("cpu", f"{(env.get('cpu') or {}).get('model')} x{(env.get('cpu') or {}).get('cores_logical')}"),
            ("gpus", f"{gpu.get('count', 0)}: {devices}"),
            ("packages", len(env.get("packages") or {})),
        ])
    return "\n".join(lines) + "\n"


def _artifacts(record: RunRecord) -> list[str]:
    from gitexp.store.artifacts import human_size

    found = record.artifacts
    if not found:
        return []
    width = max(len(a.path) for a in found)
    rows = []
    for a in found:
        where = "" if not a.lfs else "  LFS" if a.present else "  LFS, not here (`git exp get` fetches it)"
        rows.append(f"  {printable(a.path):<{width}}  {human_size(a.size):>10}{where}")
    return ["", f"artifacts ({len(found)}, `git exp get {run_handles([record])[record.id]} PATH` restores one)", *rows]


def _linked(record: RunRecord) -> list[tuple[str, str]]:
    """The commit the post-commit hook found the run's code in, made after the run (meta.linked_commit)."""
    commit = record.meta.get("linked_commit")
    if not isinstance(commit, str) or not commit:
        return []
    subject = ""
    try:
        if record.repo.has_object(commit):
            subject = f" {_subject(record.repo.commit_info(commit)[1])}"
    except GitexpError:
        pass  # not a commit here (a teammate's, not fetched): its id says enough
    return [("", f"linked to commit {commit[:12]}{subject} (by the post-commit hook)")]


def _subject(message: str) -> str:
    first = message.strip().split("\n", 1)[0]
    return json.dumps(first if len(first) <= 50 else first[:49] + "…", ensure_ascii=False)


_LINEAGE = (("rerun_of", "rerun of"), ("forked_from", "forked from"), ("parent_run", "parent run"))


def _lineage(record: RunRecord, handles: dict[str, str]) -> list[tuple[str, str]]:
    """The runs this one came from (meta rerun_of, forked_from, parent_run): by handle, when they are
    here (*handles* has every run's)."""
    rows = []
    for key, label in _LINEAGE:
        source = record.meta.get(key)
        if isinstance(source, str) and source:
            rows.append((label, handles.get(source, f"{source} (not in this repository)")))
    return rows


def _output(record: RunRecord, handle: str) -> list[tuple[str, str]]:
    """Where the run's output is, how big, and the command that prints it."""
    from gitexp.ops.logs import log_state
    from gitexp.store.artifacts import human_size

    state = log_state(record)
    if state.size is None:
        return []
    size = human_size(state.size)
    if state.live:
        return [("output", f"{fmt.OUTPUT_LOG}  {size} so far  (`git exp logs -f {handle}` follows it)")]
    return [("output", f"{fmt.OUTPUT_LOG}  {size}  (`git exp logs {handle}` prints it)")]


def _inputs(record: RunRecord) -> list[str]:
    from gitexp.store.artifacts import human_size
    from gitexp.store.search import inputs_of

    pairs = []
    for name, entry in sorted(inputs_of(record).items()):
        if not isinstance(entry, dict):
            continue
        version = f"sha256 {str(entry['sha256'])[:12]}" if entry.get("sha256") else \
            f"fingerprint {entry.get('fingerprint')}" if entry.get("fingerprint") else str(entry.get("kind", ""))
        size = f"  {human_size(entry['size'])}" if isinstance(entry.get("size"), int) else ""
        source = f"  from {entry['source']}" if entry.get("source") else ""
        pairs.append((name, f"{version}{size}{source}"))  # _section escapes both
    return _section("inputs", pairs)
