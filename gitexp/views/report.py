"""`git exp report`: one self-contained HTML file comparing runs, readable offline in any browser.

Plots are inline SVG, styles are inline, there is no script; a Content-Security-Policy forbids
fetching anything, so the file never touches the network. Every piece of run data (names,
params, tags, commands) is user text and goes through html.escape.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store import search
from gitexp.store.fields import flatten
from gitexp.store.runs import RunRecord
from gitexp.views.compare import run_labels
from gitexp.views.diff import env_summary
from gitexp.views.table import cell, human_duration, local_time, run_rows

MAX_PLOTS = 16  # metrics plotted; the tables still list every metric
PRECISION = 6
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#1b1b1b}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right}.scroll{overflow-x:auto}
figure{margin:1rem 0}svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}.muted{color:#666}
""".strip()
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def report(runs: Sequence[str | RunRecord] = (), where: str | None = None,
           output: str | os.PathLike[str] = "report.html", experiment: str | None = None,
           repo: Any = None, title: str | None = None) -> Path:
    """Write the HTML report of the named *runs* (else those matching *where*) to *output*."""
    path = Path(output)
    if not path.parent.is_dir():  # say so before the work of drawing every plot
        raise GitexpError(f"cannot write the report to {path}: folder {path.parent} does not exist; "
                          "create it or choose another path with -o")
    records = search.select_runs(runs, where, experiment=experiment, repo=repo)
    if not records:
        raise GitexpError(f"no runs to report{f' match --where {where!r}' if where else ''}; "
                          "`git exp ls` lists the runs")
    try:
        path.write_text(render(records, title), encoding="utf-8")
    except OSError as exc:
        raise GitexpError(f"cannot write the report to {path}: {exc.strerror or exc}; "
                          "choose another path with -o") from exc
    return path


def render(records: Sequence[RunRecord], title: str | None = None) -> str:
    title = title or f"gitexp report: {len(records)} run{'s' * (len(records) != 1)}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">Generated {escape(time.strftime("%Y-%m-%d %H:%M %Z"))} by gitexp from '
        f"{len(records)} run(s) of experiment(s) {escape(', '.join(sorted({r.experiment for r in records})))}.</p>",
        _comparison(records), _plots(records),
    ]
    labels = run_labels(records)
    parts += [_run_section(r, labels[r.id]) for r in records]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


class _Html(str):
    """Markup made here from escaped parts, inserted into a table cell as it is."""


def _td(value: Any) -> str:
    if isinstance(value, _Html):
        return f"<td>{value}</td>"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return ('<td class="num">' if numeric else "<td>") + escape(cell(value, PRECISION)) + "</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], attrs: str = "",
           row_attrs: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(_td(v) for v in row)
        body.append(f"<tr{row_attrs[i] if row_attrs else ''}>{cells}</tr>")
    table = f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _comparison(records: Sequence[RunRecord]) -> str:
    columns, rows = run_rows(records, all_columns=True)
    shown = [[local_time(row.get(c)) if c == "start" else human_duration(row.get(c)) if c == "duration"
              else row.get(c) for c in columns] for row in rows]
    for row, record in zip(shown, records, strict=True):  # the name links to the run's section
        row[columns.index("name")] = _Html(f'<a href="#run-{escape(record.id)}">{escape(record.name or record.id)}</a>')
    attrs = [f' class="run" id="row-{escape(r.id)}"' for r in records]
    return "<h2>Runs</h2>" + _table(columns, shown, ' id="runs"', attrs)


def _plots(records: Sequence[RunRecord]) -> str:
    from gitexp.views.plots import plot

    keys = sorted({k for r in records for k in r.metrics}, key=lambda k: (k.startswith("system/"), k))
    shown = keys[:MAX_PLOTS]
    if not shown:
        return "<h2>Metrics</h2><p>No run has metrics.</p>"
    out = ["<h2>Metrics</h2>"]
    for n, key in enumerate(shown):
        # A metric logged once per run reads better as bars than as single points.
        single = all(r.metrics.get(key, {}).get("count", 0) <= 1 for r in records)
        try:
            fig = plot(bar=f"metrics.`{key.replace('`', '``')}`", runs=records) if single else \
                plot(key, runs=records)
        except GitexpError as exc:  # e.g. only NaN values: say so instead of failing the report
            out.append(f"<p>{escape(key)}: not plotted ({escape(str(exc))})</p>")
            continue
        caption = f"{key}: {'last value per run' if single else 'one line per run, by step'}"
        out.append(f"<figure>{_svg(fig, f'f{n}')}<figcaption>{escape(caption)}</figcaption></figure>")
    if len(keys) > len(shown):
        out.append(f'<p class="muted">{len(keys) - len(shown)} more metric(s) are in the tables below; '
                   "`git exp plot METRIC` draws any of them.</p>")
    return "\n".join(out)


def _svg(fig: Any, prefix: str) -> str:
    """The figure as an <svg> element for inline use, its ids prefixed so figures never share one."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: invalid inside HTML
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = text.replace("url(#", f"url(#{prefix}-").replace('href="#', f'href="#{prefix}-')
    return text.replace("<svg ", f'<svg role="img" aria-label="{escape(prefix)}" ', 1)


def _run_section(record: RunRecord, label: str) -> str:
    meta, git = record.meta, record.meta.get("git") or {}
    facts = [("id", record.id), ("experiment", record.experiment), ("status", record.status),
             ("start", f"{local_time(record.start)} ({record.start})"),
             ("duration", human_duration(record.duration) or "still running"),
             ("base commit", git.get("commit")), ("branch", git.get("branch")),
             ("uncommitted changes", git.get("dirty")), ("host", f"{meta.get('user')}@{meta.get('host')}"),
             ("command", " ".join(meta.get("command") or [])), ("description", meta.get("description"))]
    facts += [(f"tag {k}", v) for k, v in sorted(record.tags.items())]
    parts = [f'<section id="run-{escape(record.id)}">', f"<h2>{escape(label)}</h2>",
             _table(["field", "value"], [(k, v) for k, v in facts if v not in (None, "")])]
    params = sorted(flatten(record.params).items())
    parts.append("<h3>Params</h3>" + (_table(["param", "value"], params) if params else "<p>none</p>"))
    metrics = [(k, v.get("last"), v.get("step"), v.get("min"), v.get("max"), v.get("count"))
               for k, v in sorted(record.metrics.items())]
    parts.append("<h3>Metrics</h3>" + (_table(["metric", "last", "step", "min", "max", "count"], metrics)
                                       if metrics else "<p>none</p>"))
    parts.append("<h3>Environment</h3>" + _environment(record))
    parts.append("</section>")
    return "\n".join(parts)


def _environment(record: RunRecord) -> str:
    env = record.env
    if not env:
        return "<p>not recorded</p>"
    summary = [(k, v) for k, v in env_summary(env).items() if v not in (None, "")]
    variables = sorted((env.get("variables") or {}).items())
    packages = sorted((env.get("packages") or {}).items())
    out = _table(["field", "value"], summary + [(f"${k}", v) for k, v in variables])
    if packages:
        out += (f"<details><summary>{len(packages)} installed packages</summary>"
                + _table(["package", "version"], packages) + "</details>")
    return out
