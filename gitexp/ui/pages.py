"""The UI's HTML: the frame of every page, the runs page, and small table markup.

Pages are thin: the server writes their frame and the run page's tables; static/ui.js fills in the
rest from the JSON API, always through textContent, never as markup. No page holds an inline script
or loads anything from another origin (the Content-Security-Policy of app.py forbids both), so it
works offline. The styles start from the report's (views.report.STYLE), so both look alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from gitexp import __version__
from gitexp.views.report import STYLE

STATIC = "/static"


def page(title: str, body: str, data: dict[str, Any]) -> str:
    """A whole HTML page: *body* (markup already escaped), *data* for the script as data- attributes.
    Plotly (4 MB) is not among its scripts: ui.js loads it when a chart is first drawn, so the table
    shows without waiting for it."""
    attributes = " ".join(f'data-{escape(k)}="{escape(_attr(v))}"' for k, v in data.items())
    scripts = [f'<script defer src="{STATIC}/ui.js?v={escape(__version__)}"></script>']
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">', '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<link rel="stylesheet" href="{STATIC}/ui.css?v={escape(__version__)}">',
        *scripts, "</head>", f"<body {attributes}>",
        '<header class="bar"><a class="home" href="/">git exp ui</a>'
        '<span class="muted" id="refreshed"></span></header>',
        f"<main>{body}</main>", "</body>", "</html>", ""])


def _attr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_html(headers: Sequence[str], rows: Sequence[Sequence[str]], attrs: str = "") -> str:
    """A table of cells that are markup already (each escaped by the caller)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(f'<td>{c}</td>' for c in row)}</tr>" for row in rows)
    return f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def runs_page() -> str:
    """The runs page: experiment picker, filter, columns, the table, and the selected runs' curves and comparison."""
    body = """
<section class="controls">
  <label>experiment <select id="experiment"><option value="">all</option></select></label>
  <label class="grow">filter <input id="where" type="search" spellcheck="false" autocomplete="off"
    placeholder="params.lr &lt; 0.1 and metrics.acc &gt; 0.9 (as --where, docs/query.md)"></label>
  <label><input id="only-changed" type="checkbox"> only columns that differ</label>
  <details class="chooser"><summary>columns</summary>
    <p class="muted">Tick the columns to show; none ticked: the ones <code>git exp ls</code> shows.</p>
    <div id="column-list"></div></details>
</section>
<p id="where-error" class="error" role="alert" hidden></p>
<p class="muted"><span id="count"></span> <span id="selection"></span></p>
<div class="scroll table-box" id="table-box"><table class="runs" id="runs"><thead></thead><tbody></tbody></table>
<p id="more" class="muted"></p></div>
<nav class="tabs" id="tabs">
  <button data-tab="curves" class="on">Curves</button><button data-tab="compare">Compare</button>
  <button data-tab="scatter">Scatter</button><button data-tab="parallel">Parallel coordinates</button>
</nav>
<section id="tab-curves" class="tab">
  <div class="curve-tools" id="curve-tools"></div>
  <p class="muted" id="curves-note">Tick runs in the table to draw their metrics.</p>
  <div id="charts" class="charts"></div>
</section>
<section id="tab-compare" class="tab" hidden>
  <p class="muted" id="compare-note">Tick two runs or more to compare them.</p>
  <div class="scroll"><table id="compare-table" class="compare"><thead></thead><tbody></tbody></table></div>
  <pre id="diff" class="diff" hidden></pre>
</section>
<section id="tab-scatter" class="tab" hidden>
  <p class="muted">One point per run: the ticked runs, or every run the filter lists.</p>
  <label>x <input id="scatter-x" list="fields" spellcheck="false"></label>
  <label>y <input id="scatter-y" list="fields" spellcheck="false"></label>
  <button id="scatter-draw">draw</button>
  <p class="error" id="scatter-error" hidden></p>
  <div id="scatter" class="chart"></div>
</section>
<section id="tab-parallel" class="tab" hidden>
  <p class="muted">The ticked runs, or every run the filter lists: params (comma-separated) and the metric
  that colours the lines.</p>
  <label class="grow">params <input id="parallel-params" spellcheck="false"
    placeholder="params.lr,params.batch_size"></label>
  <label>metric <input id="parallel-metric" list="fields" spellcheck="false"></label>
  <button id="parallel-draw">draw</button>
  <p class="error" id="parallel-error" hidden></p>
  <div id="parallel" class="chart"></div>
</section>
<datalist id="fields"></datalist>
"""
    return page("git exp ui", body, {"page": "runs"})


def message_page(title: str, message: str) -> str:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", {"page": "message"})
