"""One run's page: what `git exp show` tells, as HTML, at an address that names the run for good.

The facts, params, metrics and environment tables are the report's own (views.report), so the
report is a snapshot of this page. Around them: the curves (drawn by the browser from /api/curves),
inputs, artifacts with downloads, output.log followed while the run is live, the code (base commit
and the patch against it), lineage (resume, fork, rerun) and the notes on the code commit. Every
piece of run data goes through html.escape: runs come from teammates' pushes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from gitexp.errors import GitexpError
from gitexp.git.lazyrepo import real
from gitexp.ops import logs
from gitexp.store import codec, notes
from gitexp.store.artifacts import Artifact, human_size
from gitexp.store.runs import RunRecord
from gitexp.store.search import inputs_of
from gitexp.ui.catalog import Snapshot, is_live
from gitexp.ui.pages import page, table_html
from gitexp.views import report
from gitexp.views.lineage import lineage_dict
from gitexp.views.table import cell

TAIL_BYTES = 64 * 1024  # of output.log shown at first; the page asks for what follows
MAX_PATCH = 2 * 2**20  # bytes of code.patch shown on the page


def run_url(record: RunRecord) -> str:
    return f"/run/{quote(record.id, safe='')}"


def artifact_url(record: RunRecord, path: str) -> str:
    return f"/api/run/{quote(record.id, safe='')}/artifact/{quote(path)}"


def render(snapshot: Snapshot, record: RunRecord, token_query: str = "") -> str:
    handle = snapshot.handles[record.id]
    title = f"{record.name or record.id} · {record.experiment}"
    live = is_live(record)
    state = "live here" if live else ("running elsewhere: as of its last checkpoint"
                                      if record.status == "RUNNING" else "")
    head = (f'<p class="crumbs"><a href="/">all runs</a> / {escape(record.experiment)}</p>'
            f'<h1 id="run-title">{escape(record.name or record.id)} '
            f'<span class="muted mono">{escape(handle)}</span></h1>'
            f'<p><span class="status s-{escape(record.status)}">{escape(record.status)}</span> '
            f'<span class="muted">{escape(state)}</span></p>')
    sections = [
        head,
        '<div class="blocks">'
        f'<div class="block"><h2>Run</h2>{report.facts_table(record)}</div>'
        f'<div class="block"><h2>Params</h2>{report.params_table(record)}</div>'
        f'<div class="block"><h2>Metrics</h2>{report.metrics_table(record)}</div></div>',
        '<h2>Curves</h2><div class="curve-tools" id="curve-tools"></div><div id="charts" class="charts"></div>',
        f"<h2>Output</h2>{_output(record)}",
        f'<h2 id="artifacts">Artifacts</h2>{_artifacts(record, record.artifacts)}',
        f"<h2>Inputs</h2>{_inputs(record)}",
        f"<h2>Code</h2>{_code(record)}",
        f"<h2>Lineage</h2>{_lineage(snapshot, record)}",
        f"<h2>Notes</h2>{_notes(record)}",
        f"<h2>Environment</h2>{report.environment_table(record)}",
    ]
    data = {"page": "run", "run": record.id, "running": record.status == "RUNNING"}
    return page(title, "\n".join(sections), data)


def _output(record: RunRecord) -> str:
    return ('<p class="muted" id="log-state"></p><pre class="log" id="log" tabindex="0"></pre>'
            if record.read(codec.OUTPUT_LOG) is not None or record.status == "RUNNING"
            else "<p>none: only <code>git exp run</code> records a command's output</p>")


def _artifacts(record: RunRecord, found: Sequence[Artifact]) -> str:
    if not found:
        return "<p>none</p>"
    rows = []
    for artifact in found:
        where = "Git LFS" if artifact.lfs else "git"
        if artifact.problem:
            link = f"<code>{escape(artifact.path)}</code>"
            where = f"unusable: {escape(artifact.problem)}"
        elif artifact.lfs and not artifact.present:
            link = f"<code>{escape(artifact.path)}</code>"
            where = "Git LFS, not fetched here (<code>git exp get</code> fetches it)"
        else:
            link = (f'<a class="artifact" download href="{escape(artifact_url(record, artifact.path))}">'
                    f"<code>{escape(artifact.path)}</code></a>")
            where = escape(where)
        digest = f'<span class="mono">{escape(artifact.sha256[:12])}</span>'
        rows.append((link, escape(human_size(artifact.size)), digest, where))
    return table_html(["path", "size", "sha256", "stored in"], rows, attrs=' id="artifact-table"')


def _inputs(record: RunRecord) -> str:
    found = inputs_of(record)
    if not found:
        return "<p>none</p>"
    rows = []
    for name, info in sorted(found.items()):
        info = info if isinstance(info, dict) else {"value": info}
        rows.append((escape(str(name)), escape(str(info.get("sha256", ""))[:16]),
                     escape(human_size(info["size"])) if isinstance(info.get("size"), int) else "",
                     escape(str(info.get("source") or info.get("path") or ""))))
    return table_html(["input", "sha256", "size", "source"], rows)


def _code(record: RunRecord) -> str:
    git = record.meta.get("git") or {}
    facts = [("base commit", git.get("commit")), ("branch", git.get("branch")), ("remote", git.get("remote")),
             ("uncommitted changes", git.get("dirty"))]
    out = table_html(["field", "value"], [(escape(k), f'<span class="mono">{escape(cell(v, 6))}</span>')
                                          for k, v in facts if v not in (None, "")])
    patch = record.read(codec.PATCH)
    if patch:
        shown = patch[:MAX_PATCH].decode("utf-8", errors="replace")
        cut = f" (the first {human_size(MAX_PATCH)} of {human_size(len(patch))})" if len(patch) > MAX_PATCH else ""
        out += (f"<details><summary>the patch against the base commit{escape(cut)}</summary>"
                f'<pre class="patch">{escape(shown)}</pre></details>')
    elif git.get("commit"):
        out += "<p class=\"muted\">no patch: the run's code was the base commit's</p>"
    return out


def _lineage(snapshot: Snapshot, record: RunRecord) -> str:
    tree = lineage_dict(snapshot.records, record)
    if not tree["children"] and tree["id"] == record.id and tree["relation"] is None:
        return "<p>none: not resumed, forked or rerun</p>"
    return f'<ul class="lineage">{_node(tree, record.id)}</ul>'


def _node(node: dict[str, Any], current: str) -> str:
    label = escape(node.get("name") or node["id"])
    link = label if node["id"] == current else f'<a href="/run/{escape(quote(node["id"], safe=""))}">{label}</a>'
    relation = f' <span class="muted">({escape(node["relation"])})</span>' if node.get("relation") else ""
    kids = "".join(_node(k, current) for k in node["children"])
    return (f"<li>{link} <span class=\"muted\">{escape(str(node['status']))}</span>{relation}"
            + (f"<ul>{kids}</ul>" if kids else "") + "</li>")


def _notes(record: RunRecord) -> str:
    commit = (record.meta.get("git") or {}).get("commit")
    if not commit:
        return "<p>none: the run has no code commit</p>"
    try:
        lines = notes.lines_for(real(record.repo), commit)
    except GitexpError as exc:
        return f"<p>cannot read the notes: {escape(str(exc))}</p>"
    if not lines:
        return f'<p>none on <span class="mono">{escape(commit[:12])}</span></p>'
    return (f'<p class="muted">refs/notes/experiments on {escape(commit[:12])}:</p>'
            f'<pre class="notes">{escape(chr(10).join(lines))}</pre>')


def log_chunk(record: RunRecord, offset: int) -> dict[str, Any]:
    """What the page shows of output.log after byte *offset* (-1: its last TAIL_BYTES), as text safe
    to show, whole lines only while the run is live; and the offset to ask from next."""
    live = is_live(record)
    data = logs.read_log(record) or b""
    skipped = 0
    if offset < 0:
        offset = max(0, len(data) - TAIL_BYTES)
        if offset:
            offset = data.find(b"\n", offset) + 1 or len(data)
            skipped = offset
    chunk = data[offset:]
    if live:
        chunk = chunk[:chunk.rfind(b"\n") + 1]
    text = logs.LogText()
    shown = text.feed(chunk) + ("" if live else text.end())
    return {"text": shown, "offset": offset + len(chunk), "live": live, "skipped": skipped, "size": len(data)}
