"""`git exp report`: one self-contained HTML file comparing runs, readable offline in any browser.

Plots are inline SVG, styles are inline, there is no script; a Content-Security-Policy forbids
fetching anything, so the file never touches the network. Every piece of run data (names,
params, tags, commands) is user text and goes through html.escape.
"""

from __future__ import annotations

import io
import math
import os
import re
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from gitexp.errors import GitexpError
from gitexp.store import outputs
from gitexp.store.artifacts import human_size
from gitexp.store.fields import flatten
from gitexp.store.runs import RunRecord
from gitexp.views import selection
from gitexp.views.compare import guess_minimize, run_labels
from gitexp.views.diff import env_summary
from gitexp.views.table import cell, human_duration, local_time, run_rows, run_short_ids

MAX_PLOTS = 16  # metrics plotted; the tables still list every metric
# A report of a sweep's thousands of runs: 1,404 runs took 12 s and 500 MB to write 26 MB of HTML,
# a line per run in each plot and a section per run. The table lists every run; the plots draw
# the first MAX_LINES of them, and the first MAX_SECTIONS get a section of their own.
MAX_LINES = 50
MAX_SECTIONS = 100
PRECISION = 6  # significant digits in each run's own tables
TABLE_PRECISION = 4  # in the comparison table, where columns must stay narrow (a cell's title has all)
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:1240px;
padding:0 1rem;color:#1b1b1b}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.05rem;margin-bottom:.3rem}
table{border-collapse:separate;border-spacing:0;margin:.4rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e2e2e2;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4;font-weight:600}td.num{text-align:right}
.scroll{overflow-x:auto;max-width:100%}
table.runs{font-size:12.5px;line-height:1.35}
table.runs th,table.runs td{padding:.25rem .3rem}table.runs th{font-size:12px}table.runs td{white-space:nowrap}
table.runs th{vertical-align:bottom}
table.runs th.group{text-align:center;border-bottom:2px solid #c8c8c8}
table.runs th.first,table.runs td.first{border-left:1px solid #d0d0d0}
table.runs .sticky{position:sticky;left:0;z-index:1;background:#fff;box-shadow:1px 0 0 #e2e2e2}
table.runs th.sticky{background:#f4f4f4}
table.runs td.name a{display:inline-block;max-width:16em;overflow:hidden;text-overflow:ellipsis;vertical-align:top}
table.runs tbody tr:hover td{background:#f1f6fd}
code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
.best{font-weight:700}.bad{color:#b00020}.live{color:#0b5cad}.muted{color:#666}
dl.same{display:flex;flex-wrap:wrap;gap:.15rem 1.2rem;margin:.3rem 0 .6rem;font-size:13px}
dl.same div{white-space:nowrap}dl.same dt{display:inline;color:#666}dl.same dd{display:inline;margin:0 0 0 .3rem}
dl.same .label{color:#666;font-style:italic}
.blocks{display:flex;flex-wrap:wrap;gap:0 2.5rem;align-items:flex-start}.block{min-width:0;max-width:100%}
figure{margin:1rem 0}svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9rem}
""".strip()
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
REPORTS_DIR = Path("gitexp") / "reports"


def default_output(repo: Any = None) -> Path:
    """Where a report goes when no path is given: `<common git dir>/gitexp/reports/report-<local time>.html`,
    outside the work tree, so no run's code snapshot takes it and no branch switch removes it."""
    from gitexp.git.repo import Repo

    folder = Repo.discover(repo).commondir / REPORTS_DIR if not isinstance(repo, Repo) else \
        repo.commondir / REPORTS_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"report-{stamp}.html"
    count = 1
    while path.exists():  # two reports within a second
        count += 1
        path = folder / f"report-{stamp}-{count}.html"
    return path


def report(runs: Sequence[str | RunRecord] = (), where: str | None = None,
           output: str | os.PathLike[str] | None = None, experiment: str | None = None,
           repo: Any = None, title: str | None = None) -> Path:
    """Write the HTML report of the named *runs* (else those matching *where*) to *output*, by
    default a new file under the git directory (default_output); returns its path."""
    path = Path(output) if output is not None else None
    if path is not None and not path.parent.is_dir():  # say so before the work of drawing every plot
        raise GitexpError(f"cannot write the report to {path}: folder {path.parent} does not exist; "
                          "create it or choose another path with -o")
    records = selection.select_runs(runs, where, experiment=experiment, repo=repo)
    if not records:
        raise GitexpError(f"no runs to report{f' match --where {where!r}' if where else ''}; "
                          "`git exp ls` lists the runs")
    page = render(records, title)
    if path is None:
        path = default_output(repo)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GitexpError(f"cannot create the reports folder {path.parent}: {exc.strerror or exc}; "
                              "choose where the report goes with -o") from exc
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise GitexpError(f"cannot write the report to {path}: {exc.strerror or exc}; "
                          "choose another path with -o") from exc
    outputs.remember(path)  # written into a work tree: no run's code snapshot takes it
    return path


def render(records: Sequence[RunRecord], title: str | None = None) -> str:
    title = title or f"gitexp report: {len(records)} run{'s' * (len(records) != 1)}"
    experiments = sorted({r.experiment for r in records})
    artifacts = {r.id: r.artifacts for r in records}
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="gitexp">',
        f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">Generated {escape(time.strftime("%Y-%m-%d %H:%M %Z"))} by gitexp from '
        f"{len(records)} run{'s' * (len(records) != 1)} of experiment{'s' * (len(experiments) != 1)} "
        f"{escape(', '.join(experiments))}.</p>",
        _comparison(records, artifacts), _plots(records),
    ]
    detailed = records[:MAX_SECTIONS]
    labels = run_labels(detailed)
    handles = run_short_ids(detailed)
    parts += [_run_section(r, labels[r.id], handles[r.id], artifacts[r.id]) for r in detailed]
    if len(records) > len(detailed):
        parts.append(f'<p class="muted">The {len(records) - len(detailed):,} runs after the first '
                     f"{len(detailed)} have no section of their own (the table lists them all): report fewer "
                     "runs, named or by a narrower --where, for theirs; `git exp show RUN` prints any run.</p>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


class _Html(str):
    """Markup made here from escaped parts, inserted into a table cell as it is."""


def _td(value: Any, precision: int = PRECISION) -> str:
    if isinstance(value, _Html):
        return f"<td>{value}</td>"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return ('<td class="num">' if numeric else "<td>") + escape(cell(value, precision)) + "</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], attrs: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(_td(v) for v in row)}</tr>" for row in rows)
    return f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


# -- the comparison table ------------------------------------------------------------------------

_GROUPS = ("params", "metrics")


# The comparison table's own column names, with the soft hyphens that let them break when space is short.
_BASE_HEADERS = {"duration": "dura&shy;tion", "artifacts": "arti&shy;facts", "status": "sta&shy;tus"}


def _header_text(text: str) -> str:
    """A column name that may wrap after its separators (model.layers, val/acc, test_acc), never
    inside a word, so narrow numeric columns can carry long names."""
    return re.sub(r"([./_-])", r"\1<wbr>", escape(text))


def _same(values: Sequence[Any]) -> bool:
    return len(values) > 1 and all(v == values[0] and type(v) is type(values[0]) for v in values[1:]) \
        and not (isinstance(values[0], float) and math.isnan(values[0]))


def _start_cells(starts: Sequence[str | None]) -> tuple[list[str], str | None]:
    """The start column's local times, as short as the runs allow ("14:05" when all started on one
    day, "12-02 14:05" within one year), and the day they share, if they do."""
    full = [local_time(s) for s in starts]
    days = {f[:10] for f in full if f}
    if len(days) == 1 and all(full):
        return [f[11:] for f in full], next(iter(days))
    if len({f[:4] for f in full if f}) == 1:
        return [f[5:] for f in full], None
    return full, None


def _best(key: str, values: Sequence[Any]) -> int | None:
    """Index of the best value of metric *key* (lowest for names like loss or error): None when fewer
    than two runs have a finite value, or they tie."""
    finite = [(v, i) for i, v in enumerate(values)
              if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    if len(finite) < 2 or len({v for v, _ in finite}) == 1:
        return None
    return (min(finite) if guess_minimize(key) else max(finite))[1]


def _same_everywhere(records: Sequence[RunRecord], columns: list[str],
                     values: dict[str, list[Any]]) -> list[tuple[str, Any]]:
    """(column, value) of the fields every run has with one value: the columns of *columns* (but id,
    name and start) and the params and metrics the listing leaves out for not differing."""
    if len(records) < 2:
        return []
    same = [(c, values[c][0]) for c in columns
            if c not in ("id", "name", "start") and values[c][0] is not None and _same(values[c])]
    listed = set(columns)
    for group, of in (("params", lambda r: flatten(r.params)),
                      ("metrics", lambda r: {k: m.get("last") for k, m in r.metrics.items()})):
        each = [of(r) for r in records]
        for key in sorted(set(each[0]).intersection(*each[1:])):
            if f"{group}.{key}" not in listed and _same([fields[key] for fields in each]):
                same.append((f"{group}.{key}", each[0][key]))
    return same


def _comparison(records: Sequence[RunRecord], artifacts: dict[str, list[Any]]) -> str:
    """One row per run. The fields that hold one value in every run are said once above the table, so
    a typical sweep fits a laptop's width; a wider table scrolls in its own box, the names in view."""
    columns, rows = run_rows(records, all_columns=True)
    values = {c: [row.get(c) for row in rows] for c in columns}
    same = _same_everywhere(records, columns, values)
    hidden = {c for c, _ in same}
    shown = [c for c in columns if c not in hidden and any(v not in (None, "") for v in values[c])]
    starts, day = _start_cells(values.get("start", [None] * len(records)))
    if day is not None and len(records) > 1:
        same.insert(0, ("started on", day))
    if any(artifacts.values()):
        shown.append("artifacts")
    groups = [next((g for g in _GROUPS if c.startswith(g + ".")), "") for c in shown]
    firsts = {n for n, g in enumerate(groups) if g and (n == 0 or groups[n - 1] != g)}
    best = {c: _best(c, values[c]) for c in shown if c.startswith("metrics.")}

    top, sub = [], []
    for n, (column, group) in enumerate(zip(shown, groups, strict=True)):
        if not group:
            sticky = " sticky" if column == "name" else ""
            rowspan = ' rowspan="2"' if any(groups) else ""
            text = _BASE_HEADERS.get(column) or _header_text(column)
            top.append(f'<th{rowspan} class="c-{escape(column)}{sticky}">{text}</th>')
            continue
        if n in firsts:
            top.append(f'<th colspan="{_run_of(groups, n)}" class="group first">{group}</th>')
        first = ' class="first"' if n in firsts else ""
        sub.append(f'<th{first} title="{escape(column)}">{_header_text(column[len(group) + 1:])}</th>')
    head = f"<tr>{''.join(top)}</tr>" + (f"<tr>{''.join(sub)}</tr>" if sub else "")

    body = []
    for i, record in enumerate(records):
        cells = [_run_cell(column, record, rows[i].get(column), starts[i], artifacts[record.id],
                           n in firsts, best.get(column) == i, i < MAX_SECTIONS) for n, column in enumerate(shown)]
        body.append(f'<tr class="run" id="row-{escape(record.id)}">{"".join(cells)}</tr>')
    parts = ["<h2>Runs</h2>"]
    if same:
        items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(cell(v, PRECISION))}</dd></div>" for k, v in same)
        parts.append(f'<dl class="same"><div class="label">the same in every run:</div>{items}</dl>')
    parts.append(f'<div class="scroll"><table class="runs" id="runs"><thead>{head}</thead>'
                 f"<tbody>{''.join(body)}</tbody></table></div>")
    if any(v is not None for v in best.values()):
        parts.append('<p class="muted">Bold: the best value of each metric, the lowest for names like loss or '
                     "error, else the highest. Hover over a value for all its digits.</p>")
    return "\n".join(parts)


def _run_of(groups: list[str], start: int) -> int:
    """How many columns from *start* on belong to the group of *start*."""
    count = 1
    while start + count < len(groups) and groups[start + count] == groups[start]:
        count += 1
    return count


def _run_cell(column: str, record: RunRecord, value: Any, start: str, artifacts: list[Any], first: bool,
              best: bool, linked: bool) -> str:
    """The <td> of *column* in the row of *record* (*value* from run_rows; *start* already shortened);
    *linked*: its name links to the run's section."""
    if column == "name":
        name = escape(record.name or record.id)
        if not linked:
            return f'<td class="name sticky" title="{name}">{name}</td>'
        return f'<td class="name sticky"><a href="#run-{escape(record.id)}" title="{name}">{name}</a></td>'
    if column in ("id", "commit"):
        full = record.id if column == "id" else (record.meta.get("git") or {}).get("commit") or ""
        return f'<td class="mono" title="{escape(str(full))}">{escape(str(value or ""))}</td>'
    if column == "start":
        return f'<td title="{escape(local_time(record.start))} ({escape(record.start or "")})">{escape(start)}</td>'
    if column == "duration":
        return f'<td class="num">{escape(human_duration(value))}</td>'
    if column == "status":
        kind = {"RUNNING": "live", "FAILED": "bad", "CRASHED": "bad", "KILLED": "bad"}.get(str(value), "")
        attrs = f' class="{kind}"' if kind else ""
        return f'<td{attrs}>{escape(str(value or ""))}</td>'
    if column == "artifacts":
        if not artifacts:
            return '<td class="num"></td>'
        size = human_size(sum(a.size for a in artifacts))
        return (f'<td class="num"><a href="#artifacts-{escape(record.id)}" title="{escape(size)}">'
                f"{len(artifacts)}</a></td>")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    classes = " ".join(k for k, on in (("num", numeric), ("first", first), ("best", best)) if on)
    text = escape(cell(value, TABLE_PRECISION))
    full = cell(value, 17)
    title = f' title="{escape(full)}"' if numeric and full != cell(value, TABLE_PRECISION) else ""
    attrs = f' class="{classes}"' if classes else ""
    return f"<td{attrs}{title}>{text}</td>"


def _plots(records: Sequence[RunRecord]) -> str:
    from gitexp.views.plots import plot

    out = ["<h2>Metrics</h2>"]
    if len(records) > MAX_LINES:
        out.append(f'<p class="muted">The plots draw the first {MAX_LINES} of the {len(records):,} runs (the table '
                   "lists them all): report fewer runs, or `git exp plot METRIC RUN...`, to draw others.</p>")
        records = records[:MAX_LINES]
    keys = sorted({k for r in records for k in r.metrics}, key=lambda k: (k.startswith("system/"), k))
    shown = keys[:MAX_PLOTS]
    if not shown:
        return "<h2>Metrics</h2><p>No run has metrics.</p>"
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


def _run_section(record: RunRecord, label: str, handle: str, artifacts: list[Any]) -> str:
    parts = [f'<section id="run-{escape(record.id)}">',
             f'<h2>{escape(label)} <span class="muted mono">{escape(handle)}</span></h2>', facts_table(record)]
    blocks = [
        "<h3>Params</h3>" + params_table(record), "<h3>Metrics</h3>" + metrics_table(record),
        f'<h3 id="artifacts-{escape(record.id)}">Artifacts</h3>' + _artifacts(artifacts, handle),
    ]
    parts.append('<div class="blocks">' + "".join(f'<div class="block">{b}</div>' for b in blocks) + "</div>")
    parts.append("<h3>Environment</h3>" + environment_table(record))
    parts.append("</section>")
    return "\n".join(parts)


# The tables of one run, shared with the run page of `git exp ui` (gitexp/ui/runpage.py): the report
# shows what the UI shows.


def facts_table(record: RunRecord) -> str:
    """The run's identity and circumstances: id, status, times, code commit, host, command, tags."""
    meta, git = record.meta, record.meta.get("git") or {}
    facts = [("id", record.id), ("experiment", record.experiment), ("status", record.status),
             ("start", f"{local_time(record.start)} ({record.start})"),
             ("duration", human_duration(record.duration) or "still running"),
             ("base commit", git.get("commit")), ("branch", git.get("branch")),
             ("uncommitted changes", git.get("dirty")), ("host", f"{meta.get('user')}@{meta.get('host')}"),
             ("command", " ".join(meta.get("command") or [])), ("description", meta.get("description"))]
    facts += [(f"tag {k}", v) for k, v in sorted(record.tags.items())]
    return _table(["field", "value"], [(k, v) for k, v in facts if v not in (None, "")])


def params_table(record: RunRecord) -> str:
    params = sorted(flatten(record.params).items())
    return _table(["param", "value"], params) if params else "<p>none</p>"


def metrics_table(record: RunRecord) -> str:
    """Each metric's summary: last value, its step, min, max, count."""
    metrics = [(k, v.get("last"), v.get("step"), v.get("min"), v.get("max"), v.get("count"))
               for k, v in sorted(record.metrics.items())]
    return _table(["metric", "last", "step", "min", "max", "count"], metrics) if metrics else "<p>none</p>"


def _artifacts(found: list[Any], handle: str) -> str:
    if not found:
        return "<p>none</p>"
    rows = []
    for artifact in found:
        where = "Git LFS" if artifact.lfs else "git"
        if artifact.problem:
            where = f"unusable: {artifact.problem}"
        elif artifact.lfs and not artifact.present:
            where += " (not fetched here)"
        rows.append((_Html(f"<code>{escape(artifact.path)}</code>"), _Html(escape(human_size(artifact.size))),
                     where))
    total = human_size(sum(a.size for a in found))
    return (_table(["path", "size", "stored in"], rows)
            + f'<p class="muted">{len(found)} file{"s" * (len(found) != 1)}, {escape(total)}; '
              f"<code>git exp get {escape(handle)} PATH</code> restores one.</p>")


def environment_table(record: RunRecord) -> str:
    """The run's env.yaml: Python, host, OS, CPU, GPUs, memory, recorded variables, installed packages."""
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
