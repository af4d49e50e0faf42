// git exp ui: the browser side. Everything from runs is untrusted (teammates' pushes): it reaches
// the page only through textContent and element attributes, never as markup, and is escaped before
// Plotly (which reads a few tags in its texts) sees it. Charts are Plotly's, loaded on first use.
"use strict";

const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];
const PAGE = 200;
const POLL_MS = 2000;

// -- helpers ---------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function byId(id) { return document.getElementById(id); }

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

// Plotly reads <br>, <b>... and entities in names and texts: run names are shown as the text they are.
function plotText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const response = await fetch(path + (query.toString() ? "?" + query : ""), {credentials: "same-origin"});
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

let plotlyLoading = null;
function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      const script = el("script", {src: "/static/plotly.min.js"});
      script.addEventListener("load", () => resolve(window.Plotly));
      script.addEventListener("error", () => reject(new Error("plotly.min.js did not load")));
      document.head.append(script);
    });
  }
  return plotlyLoading;
}

function number(n) { return Number(n).toLocaleString("en-US"); }

function showError(node, message) {
  node.hidden = !message;
  node.textContent = message || "";
}

function stamp() {
  const node = byId("refreshed");
  if (node) node.textContent = "updated " + new Date().toLocaleTimeString();
}

// -- curves (the runs page and a run's page) ---------------------------------------------------------

class Curves {
  constructor(tools, box, note) {
    this.box = box;
    this.note = note;
    this.ids = [];
    this.timer = null;
    this.generation = 0;
    this.x = el("select", {}, ...["step", "time", "relative"].map(v => el("option", {value: v, text: v})));
    this.smooth = el("input", {type: "number", min: "0", value: "0", className: "narrow", title: "moving average over the last N points (0: none)"});
    this.logY = el("input", {type: "checkbox"});
    this.logX = el("input", {type: "checkbox"});
    const redraw = () => this.load(true);
    this.x.addEventListener("change", redraw);
    this.smooth.addEventListener("change", redraw);
    this.logY.addEventListener("change", () => this.relayout());
    this.logX.addEventListener("change", () => this.relayout());
    tools.append(el("label", {}, "x ", this.x), el("label", {}, "smoothing ", this.smooth),
                 el("label", {}, this.logY, " log y"), el("label", {}, this.logX, " log x"));
  }

  show(ids) {
    this.ids = ids.slice();
    this.load(true);
  }

  async load(fresh) {
    clearTimeout(this.timer);
    const generation = ++this.generation;
    if (!this.ids.length) {
      clear(this.box);
      if (this.note) this.note.textContent = "Tick runs in the table to draw their metrics.";
      return;
    }
    let answer;
    try {
      [answer] = await Promise.all([
        api("/api/curves", {runs: this.ids.join(","), x: this.x.value, smooth: this.smooth.value || ""}),
        loadPlotly()]);
    } catch (error) {
      if (this.note) this.note.textContent = "cannot draw the curves: " + error.message;
      return;
    }
    if (generation !== this.generation) return;  // a newer selection is being drawn
    this.draw(answer, fresh);
    stamp();
    if (answer.running.length) this.timer = setTimeout(() => this.load(false), POLL_MS);
  }

  draw(answer, fresh) {
    const colors = {};
    this.ids.forEach((id, i) => { colors[id] = PALETTE[i % PALETTE.length]; });
    const wanted = new Set(answer.charts.map(c => "chart-" + c.key));
    for (const node of Array.from(this.box.children)) {
      if (!wanted.has(node.dataset.key)) node.remove();
    }
    if (this.note) {
      const live = answer.live.length ? ` ${answer.live.length} live: updating every ${POLL_MS / 1000} s.` : "";
      const more = answer.more ? ` ${answer.more} more metrics are not drawn.` : "";
      this.note.textContent = answer.charts.length ? `${answer.charts.length} metrics of ${this.ids.length} runs.${live}${more}`
        : "The selected runs have no metrics.";
    }
    for (const chart of answer.charts) {
      let figure = this.box.querySelector(`[data-key="${CSS.escape("chart-" + chart.key)}"]`);
      if (!figure) {
        figure = el("figure", {className: "chart-box", "data-key": "chart-" + chart.key},
                    el("div", {className: "chart"}), el("figcaption", {className: "muted"}));
        this.box.append(figure);
      }
      const traces = chart.lines.map(line => ({
        type: "scatter", mode: line.x.length === 1 ? "markers" : "lines", x: line.x, y: line.y,
        name: plotText(line.label), line: {color: colors[line.id], width: 1.5},
        marker: {color: colors[line.id]}, connectgaps: false,
        hovertemplate: "%{y}<extra>" + plotText(line.label) + "</extra>",
      }));
      const cut = chart.lines.filter(line => line.shown < line.count);
      figure.querySelector("figcaption").textContent = cut.length
        ? cut.map(line => `${line.label}: ${number(line.count)} points, drawn from ${number(line.shown)} (every bucket's minimum and maximum kept)`).join("; ")
        : chart.lines.map(line => `${line.label}: ${number(line.count)} points`).join("; ");
      const div = figure.querySelector(".chart");
      const layout = {
        title: {text: plotText(chart.key), font: {size: 14}}, height: 300, margin: {l: 55, r: 10, t: 34, b: 36},
        showlegend: chart.lines.length > 1, legend: {font: {size: 11}},
        xaxis: {title: {text: answer.x}, type: answer.x === "time" ? "date" : (this.logX.checked ? "log" : "linear")},
        yaxis: {type: this.logY.checked ? "log" : "linear"},
        uirevision: fresh ? String(Math.random()) : "keep",  // a live update keeps the user's zoom
      };
      window.Plotly.react(div, traces, layout, {displaylogo: false, responsive: true});
    }
  }

  relayout() {
    for (const div of this.box.querySelectorAll(".chart")) {
      if (!div.data) continue;
      window.Plotly.relayout(div, {"yaxis.type": this.logY.checked ? "log" : "linear",
        ...(this.x.value === "time" ? {} : {"xaxis.type": this.logX.checked ? "log" : "linear"})});
    }
  }
}

// -- the runs page -----------------------------------------------------------------------------------

class RunsPage {
  constructor() {
    const url = new URLSearchParams(location.search);
    this.state = {
      experiment: url.get("experiment") || "", where: url.get("where") || "", sort: url.get("sort") || "",
      columns: url.get("columns") ? url.get("columns").split(",") : [], onlyChanged: url.get("only_changed") === "1",
      tab: url.get("tab") || "curves",
    };
    this.selected = url.get("runs") ? url.get("runs").split(",").filter(Boolean) : [];
    this.labels = {};
    this.loaded = 0;
    this.matched = 0;
    this.loading = false;
    this.generation = 0;
    this.pollTimer = null;
    this.curves = new Curves(byId("curve-tools"), byId("charts"), byId("curves-note"));

    byId("where").value = this.state.where;
    byId("only-changed").checked = this.state.onlyChanged;
    let typing = null;
    byId("where").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.setFilter(), 300);
    });
    byId("where").addEventListener("keydown", event => {
      if (event.key === "Enter") { clearTimeout(typing); this.setFilter(); }
    });
    byId("experiment").addEventListener("change", () => {
      this.state.experiment = byId("experiment").value;
      this.columnsLoaded = false;
      this.reload();
    });
    byId("only-changed").addEventListener("change", () => {
      this.state.onlyChanged = byId("only-changed").checked;
      this.reload();
    });
    document.querySelector("details.chooser").addEventListener("toggle", () => this.loadColumns());
    byId("table-box").addEventListener("scroll", () => this.maybeMore());
    for (const button of document.querySelectorAll("#tabs button")) {
      button.addEventListener("click", () => this.setTab(button.dataset.tab));
    }
    byId("scatter-draw").addEventListener("click", () => this.scatter());
    byId("parallel-draw").addEventListener("click", () => this.parallel());
    this.setTab(this.state.tab, true);
    this.reload();
    this.loadColumns();
  }

  remember() {
    const url = new URLSearchParams();
    const s = this.state;
    if (s.experiment) url.set("experiment", s.experiment);
    if (s.where) url.set("where", s.where);
    if (s.sort) url.set("sort", s.sort);
    if (s.columns.length) url.set("columns", s.columns.join(","));
    if (s.onlyChanged) url.set("only_changed", "1");
    if (s.tab !== "curves") url.set("tab", s.tab);
    if (this.selected.length) url.set("runs", this.selected.join(","));
    history.replaceState(null, "", location.pathname + (url.toString() ? "?" + url : ""));
  }

  setFilter() {
    const where = byId("where").value.trim();
    if (where === this.state.where) return;
    this.state.where = where;
    this.reload();
  }

  query(offset, limit) {
    const s = this.state;
    return {experiment: s.experiment, where: s.where, sort: s.sort, columns: s.columns.join(","),
            only_changed: s.onlyChanged ? "1" : "", offset, limit};
  }

  async reload() {
    this.remember();
    const generation = ++this.generation;
    this.loading = true;
    let answer;
    try {
      answer = await api("/api/runs", this.query(0, PAGE));
    } catch (error) {
      showError(byId("where-error"), "cannot list the runs: " + error.message);
      this.loading = false;
      return;
    }
    if (generation !== this.generation) return;
    this.loading = false;
    this.fillExperiments(answer.experiments);
    if (answer.error) {
      showError(byId("where-error"), answer.error.message);
      byId("where").classList.add("bad");
      return;  // the table keeps showing the last good listing
    }
    showError(byId("where-error"), "");
    byId("where").classList.remove("bad");
    this.matched = answer.matched;
    this.columns = answer.columns;
    this.drawHead();
    clear(byId("runs").tBodies[0]);
    this.loaded = 0;
    this.append(answer.rows);
    this.count(answer);
    this.poll();
  }

  count(answer) {
    const scope = this.state.experiment ? ` of experiment ${this.state.experiment}` : "";
    byId("count").textContent = this.state.where
      ? `${number(answer.matched)} of ${number(answer.total)} runs${scope} match the filter.`
      : `${number(answer.total)} runs${scope}.`;
    byId("more").textContent = this.loaded < this.matched ? `showing ${number(this.loaded)}; scroll for more` : "";
  }

  async maybeMore() {
    const box = byId("table-box");
    if (this.loading || this.loaded >= this.matched) return;
    if (box.scrollTop + box.clientHeight < box.scrollHeight - 400) return;
    this.loading = true;
    const generation = this.generation;
    try {
      const answer = await api("/api/runs", this.query(this.loaded, PAGE));
      if (generation === this.generation && !answer.error) {
        this.append(answer.rows);
        this.count(answer);
      }
    } finally {
      this.loading = false;
    }
  }

  // While a shown run is RUNNING, its row (status, duration, last values) is read again every 2 s.
  poll() {
    clearTimeout(this.pollTimer);
    const running = Array.from(byId("runs").tBodies[0].rows).some(row => row.dataset.status === "RUNNING");
    if (!running) return;
    this.pollTimer = setTimeout(async () => {
      const generation = this.generation;
      try {
        const answer = await api("/api/runs", this.query(0, Math.max(this.loaded, PAGE)));
        if (generation !== this.generation || answer.error) return;
        if (answer.columns.map(c => c.name).join() !== this.columns.map(c => c.name).join()) {
          this.columns = answer.columns;
          this.drawHead();
        }
        clear(byId("runs").tBodies[0]);
        this.loaded = 0;
        this.matched = answer.matched;
        this.append(answer.rows);
        this.count(answer);
        stamp();
      } catch (error) {
        // the server may be restarting: try again later
      }
      this.poll();
    }, POLL_MS);
  }

  fillExperiments(experiments) {
    const select = byId("experiment");
    const have = Array.from(select.options).map(o => o.value).slice(1).join("\n");
    if (have !== experiments.join("\n")) {
      while (select.options.length > 1) select.remove(1);
      for (const name of experiments) select.append(el("option", {value: name, text: name}));
    }
    select.value = this.state.experiment;
  }

  drawHead() {
    const head = byId("runs").tHead;
    clear(head);
    const row = el("tr", {}, el("th", {className: "pick", title: "tick runs to draw and compare them"}));
    const [key, descending] = this.state.sort.startsWith("-") ? [this.state.sort.slice(1), true] : [this.state.sort, false];
    for (const column of this.columns) {
      const arrow = column.name === key ? (descending ? " ▼" : " ▲") : "";
      row.append(el("th", {text: column.name + arrow, className: column.numeric ? "num sortable" : "sortable",
        title: "sort by " + column.name, onclick: () => this.sortBy(column.name)}));
    }
    head.append(row);
  }

  sortBy(column) {
    this.state.sort = this.state.sort === column ? "-" + column : column;
    this.reload();
  }

  append(rows) {
    const body = byId("runs").tBodies[0];
    const nameAt = this.columns.findIndex(c => c.name === "name");
    const idAt = this.columns.findIndex(c => c.name === "id");
    const statusAt = this.columns.findIndex(c => c.name === "status");
    const fragment = document.createDocumentFragment();
    for (const run of rows) {
      const tick = el("input", {type: "checkbox", "aria-label": "select run " + run.id});
      tick.checked = this.selected.includes(run.id);
      tick.addEventListener("change", () => this.toggle(run.id, tick.checked));
      const tr = el("tr", {"data-id": run.id, "data-status": run.status}, el("td", {className: "pick"}, tick));
      this.labels[run.id] = run.cells[nameAt] || run.cells[idAt] || run.id;
      run.cells.forEach((text, i) => {
        const column = this.columns[i];
        const td = el("td", {className: column.numeric ? "num" : null, title: run.titles[i]});
        if (i === nameAt || i === idAt) {
          td.append(el("a", {href: "/run/" + encodeURIComponent(run.id), text: text || (i === nameAt ? "" : run.id)}));
        } else if (i === statusAt) {
          td.className = "status s-" + run.status;
          td.textContent = text + (run.live ? " · live" : "");
        } else {
          td.textContent = text;
        }
        tr.append(td);
      });
      fragment.append(tr);
    }
    body.append(fragment);
    this.loaded += rows.length;
  }

  toggle(id, on) {
    this.selected = this.selected.filter(x => x !== id);
    if (on) this.selected.push(id);
    byId("selection").textContent = this.selected.length ? `${this.selected.length} selected.` : "";
    this.remember();
    this.refreshTab();
  }

  setTab(tab, quiet) {
    this.state.tab = tab;
    for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("on", button.dataset.tab === tab);
    for (const section of document.querySelectorAll("section.tab")) section.hidden = section.id !== "tab-" + tab;
    if (!quiet) this.remember();
    this.refreshTab();
  }

  refreshTab() {
    byId("selection").textContent = this.selected.length ? `${this.selected.length} selected.` : "";
    if (this.state.tab === "curves") this.curves.show(this.selected);
    else if (this.state.tab === "compare") this.compare();
  }

  async loadColumns() {
    if (this.columnsLoaded) return;
    this.columnsLoaded = true;
    let names;
    try {
      names = await api("/api/columns", {experiment: this.state.experiment});
    } catch (error) {
      this.columnsLoaded = false;
      return;
    }
    const list = byId("column-list");
    clear(list);
    const fields = byId("fields");
    clear(fields);
    for (const name of names) {
      fields.append(el("option", {value: name}));
      const box = el("input", {type: "checkbox", value: name});
      box.checked = this.state.columns.includes(name);
      box.addEventListener("change", () => {
        this.state.columns = Array.from(list.querySelectorAll("input:checked")).map(b => b.value);
        this.reload();
      });
      list.append(el("label", {className: "column"}, box, " " + name));
    }
  }

  async compare() {
    const note = byId("compare-note");
    const table = byId("compare-table");
    const diff = byId("diff");
    clear(table.tHead);
    clear(table.tBodies[0]);
    diff.hidden = true;
    if (this.selected.length < 2) {
      note.textContent = "Tick two runs or more to compare them.";
      return;
    }
    let answer;
    try {
      answer = await api("/api/compare", {runs: this.selected.join(",")});
    } catch (error) {
      note.textContent = error.message;
      return;
    }
    note.textContent = "Highlighted: the fields whose values differ; bold: each metric's best value.";
    table.tHead.append(el("tr", {}, el("th", {text: "field"}),
      ...answer.runs.map(run => el("th", {}, el("a", {href: "/run/" + encodeURIComponent(run.id), text: run.label})))));
    for (const row of answer.rows) {
      const tr = el("tr", {className: row.differs ? "differs" : null}, el("th", {text: row.field}));
      row.cells.forEach((text, i) => tr.append(el("td", {text, className: row.best === i ? "best" : null})));
      table.tBodies[0].append(tr);
    }
    if (answer.diff) {
      diff.textContent = answer.diff;
      diff.hidden = false;
    }
  }

  chartScope() {
    if (this.selected.length) return {runs: this.selected.join(",")};
    return {experiment: this.state.experiment, where: this.state.where};
  }

  async scatter() {
    const x = byId("scatter-x").value.trim();
    const y = byId("scatter-y").value.trim();
    const error = byId("scatter-error");
    try {
      const [answer, Plotly] = await Promise.all([api("/api/fields", {fields: x + "," + y, ...this.chartScope()}), loadPlotly()]);
      showError(error, "");
      const labels = answer.runs.map(run => plotText(run.label));
      Plotly.react(byId("scatter"), [{type: "scatter", mode: "markers", x: answer.fields[x], y: answer.fields[y],
        text: labels, hovertemplate: "%{text}<br>%{x}, %{y}<extra></extra>", marker: {color: PALETTE[0], size: 8}}],
        {height: 420, margin: {l: 60, r: 10, t: 20, b: 50}, xaxis: {title: {text: plotText(x)}}, yaxis: {title: {text: plotText(y)}}},
        {displaylogo: false, responsive: true});
    } catch (problem) {
      showError(error, problem.message);
    }
  }

  async parallel() {
    const params = byId("parallel-params").value.split(",").map(s => s.trim()).filter(Boolean);
    const metric = byId("parallel-metric").value.trim();
    const error = byId("parallel-error");
    try {
      const fields = [...params, metric];
      const [answer, Plotly] = await Promise.all([api("/api/fields", {fields: fields.join(","), ...this.chartScope()}), loadPlotly()]);
      showError(error, "");
      const dimensions = fields.map(name => dimension(name, answer.fields[name]));
      const colors = answer.fields[metric].map(v => (typeof v === "number" ? v : null));
      Plotly.react(byId("parallel"), [{type: "parcoords", dimensions,
        line: {color: colors, colorscale: "Viridis", showscale: true, colorbar: {title: {text: plotText(metric)}}}}],
        {height: 460, margin: {l: 70, r: 70, t: 50, b: 30}}, {displaylogo: false, responsive: true});
    } catch (problem) {
      showError(error, problem.message);
    }
  }
}

// A parallel-coordinates axis: numbers as they are, anything else as categories.
function dimension(name, values) {
  if (values.every(v => typeof v === "number" || v === null)) {
    return {label: plotText(name), values: values.map(v => (v === null ? NaN : v))};
  }
  const categories = Array.from(new Set(values.map(v => String(v)))).sort();
  return {label: plotText(name), values: values.map(v => categories.indexOf(String(v))),
          tickvals: categories.map((_, i) => i), ticktext: categories.map(plotText)};
}

// -- a run's page --------------------------------------------------------------------------------------

class RunPage {
  constructor(runId, running) {
    this.runId = runId;
    this.curves = new Curves(byId("curve-tools"), byId("charts"), null);
    this.curves.show([runId]);
    this.log = byId("log");
    this.offset = -1;
    if (this.log) this.follow();
    if (running) this.watch();
  }

  async follow() {
    let answer;
    try {
      answer = await api(`/api/run/${encodeURIComponent(this.runId)}/log`, {offset: String(this.offset)});
    } catch (error) {
      byId("log-state").textContent = "cannot read output.log: " + error.message;
      return;
    }
    const atBottom = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 20;
    if (this.offset < 0 && answer.skipped) {
      byId("log-state").textContent = `the last ${number(answer.size - answer.skipped)} of ${number(answer.size)} bytes`;
    }
    this.log.append(document.createTextNode(answer.text));
    if (atBottom) this.log.scrollTop = this.log.scrollHeight;
    this.offset = answer.offset;
    if (answer.live) {
      byId("log-state").textContent = "following: the run is live on this machine";
      setTimeout(() => this.follow(), 1000);
    } else if (!this.log.textContent) {
      this.log.textContent = "(empty)";
    }
  }

  watch() {
    setTimeout(async () => {
      try {
        const answer = await api(`/api/run/${encodeURIComponent(this.runId)}/status`);
        const status = document.querySelector("p .status");
        if (status) {
          status.textContent = answer.status;
          status.className = "status s-" + answer.status;
        }
        if (!answer.running) return;
      } catch (error) {
        // the server may be restarting: try again later
      }
      this.watch();
    }, POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const data = document.body.dataset;
  if (data.page === "runs") window.gitexpPage = new RunsPage();
  else if (data.page === "run") window.gitexpPage = new RunPage(data.run, data.running === "true");
});
