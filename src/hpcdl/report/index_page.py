"""The HTML of the run index (``hpcdl index``): tables rendered here, so the page reads
without JavaScript; an inline script (no external files, works from ``file://``) sorts and filters
the runs table and overlays the selected runs' curves in SVG, from the JSON embedded in the page.

Every string from a record is escaped; the embedded JSON has ``<`` escaped so that no value can
close its ``<script>`` element.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any

from hpcdl.report.html import badge, document, fmt_number, fmt_seconds
from hpcdl.report.catalog import INCOMPLETE, Group, Index, RunRow

_CSS = """
main{max-width:1600px}
.controls{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:.6rem 0}
.controls input[type=search]{min-width:24rem}
.controls input,.controls select,.controls button{font:inherit;font-size:.9rem;padding:.25rem .45rem;
border:1px solid #c3c9d4;border-radius:.3rem;background:#fff}
.scroll{max-height:70vh;overflow:auto;border:1px solid #dde1e8;border-radius:.4rem;background:#fff}
#runs{width:100%;font-size:.8rem}#runs th,#runs td{border-width:0 0 1px 0;white-space:nowrap}
#runs thead th{position:sticky;top:0;z-index:1;box-shadow:0 1px 0 #dde1e8;vertical-align:bottom}
#runs th.sortable{cursor:pointer;user-select:none}#runs th.sortable:hover{background:#e1e6ee}
#runs th[aria-sort=ascending]::after{content:" \\25B2";font-size:.7em}
#runs th[aria-sort=descending]::after{content:" \\25BC";font-size:.7em}
#runs tbody tr:hover{background:#f3f6fb}#runs tr.picked td:first-child{box-shadow:inset 5px 0 var(--pick)}
#runs .badge{font-size:.78rem;padding:.05rem .45rem}#runs td.wrap{white-space:normal;min-width:5.5rem}
#runs th,#runs td{padding:.28rem .4rem}#runs td.group{color:#5b6475;white-space:normal}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem;margin:.6rem 0}
.chart{background:#fff;border:1px solid #dde1e8;border-radius:.5rem;padding:.5rem .7rem}
.chart h3{font-size:.95rem;margin:.1rem 0 .3rem;display:flex;gap:.5rem;align-items:center}
.chart svg{width:100%;height:auto;display:block;font-size:11px;fill:#333c4d}
.chart .grid{stroke:#e3e7ee}.chart .frame{fill:none;stroke:#9aa3b2}.chart .curve{fill:none;stroke-width:2}
.chart .target{stroke:#5b6475;stroke-dasharray:6 4}
.chart .halo{paint-order:stroke;stroke:#fff;stroke-width:3px}
#legend{display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;font-size:.85rem;margin:.2rem 0 .4rem}
#legend i{display:inline-block;width:1.4rem;height:.3rem;border-radius:.15rem;vertical-align:middle;margin-right:.35rem}
.notes{font-size:.85rem;color:#5b6475}.notes li{font-family:ui-monospace,monospace;font-size:.8rem}
"""

# Sorting (numbers by data-v, text otherwise, blanks last), filtering, selection and the SVG charts.
_SCRIPT = r"""
(() => {
"use strict";
const $ = (id) => document.getElementById(id);
const data = JSON.parse($("curves").textContent).runs;
const table = $("runs"), tbody = table.tBodies[0], rows = Array.from(tbody.rows);
const heads = Array.from(table.tHead.rows[0].cells);
const words = new Map(rows.map((r) => [r, r.textContent.toLowerCase()]));
const groups = new Map(rows.map((r) => [r, r.dataset.groups.toLowerCase().split(" ")]));
const collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#7f7f7f", "#bcbd22"];
const NS = "http://www.w3.org/2000/svg";
let order = {col: -1, dir: 1}, picked = [], chosen = "";

function key(row, col) {
  const cell = row.cells[col];
  if (cell.dataset.v === undefined) return cell.textContent.trim() || null;
  return cell.dataset.v === "" ? null : Number(cell.dataset.v);
}
function sortBy(col) {
  order = {col, dir: order.col === col ? -order.dir : 1};
  const keyed = rows.map((r, i) => [key(r, col), i, r]);
  keyed.sort((a, b) => {
    const x = a[0], y = b[0];
    if (x === y) return a[1] - b[1];
    if (x === null) return 1;
    if (y === null) return -1;
    return (typeof x === "number" ? x - y : collator.compare(x, y)) * order.dir || a[1] - b[1];
  });
  tbody.append(...keyed.map((k) => k[2]));
  heads.forEach((h) => h.removeAttribute("aria-sort"));
  heads[col].setAttribute("aria-sort", order.dir > 0 ? "ascending" : "descending");
}
heads.forEach((h, col) => { if (h.classList.contains("sortable")) h.addEventListener("click", () => sortBy(col)); });

function filter() {
  const terms = $("q").value.toLowerCase().split(/\s+/).filter(Boolean);
  const workload = $("workload").value, status = $("status").value;
  let shown = 0;
  for (const r of rows) {
    const keep = (!workload || r.dataset.workload === workload) && (!status || r.dataset.status === status)
      && terms.every((t) => t.startsWith("in:") ? groups.get(r).includes(t.slice(3)) : words.get(r).includes(t));
    r.hidden = !keep;
    shown += keep;
  }
  $("shown").textContent = `${shown} of ${rows.length} run(s) shown`;
}
for (const id of ["q", "workload", "status"]) $(id).addEventListener("input", filter);
document.querySelectorAll("button[data-filter]").forEach((b) => b.addEventListener("click", () => {
  $("q").value = "in:" + b.dataset.filter; $("workload").value = ""; $("status").value = ""; filter();
  table.scrollIntoView({block: "nearest"});
}));

const color = (name) => COLORS[picked.indexOf(name) % COLORS.length];
function el(tag, attrs, parent, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}
function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}
function step(span, count) {
  const raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}
const label = (v) => Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : String(+v.toFixed(6));

// series: [{name, color, x: [...], y: [...], dash}]; lines: [{y, text}] drawn dashed across the plot.
function draw(svg, series, ylabel, lines) {
  const W = 560, H = 300, m = {l: 58, r: 14, t: 10, b: 40};
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const xs = [], ys = lines.map((l) => l.y);
  for (const s of series) s.x.forEach((x, i) => { if (s.y[i] != null) { xs.push(x); ys.push(s.y[i]); } });
  if (!xs.length) { el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, svg, "no values to draw"); return; }
  let [x0, x1] = extent(xs), [y0, y1] = extent(ys);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const dy = step(y1 - y0, 5), dx = Math.max(1, Math.round(step(x1 - x0, 8)));
  y0 = Math.floor(y0 / dy) * dy; y1 = Math.ceil(y1 / dy) * dy;
  const sx = (x) => m.l + (x - x0) / (x1 - x0) * (W - m.l - m.r);
  const sy = (y) => H - m.b - (y - y0) / (y1 - y0) * (H - m.t - m.b);
  for (let t = y0; t <= y1 + dy / 2; t += dy) {
    el("line", {x1: m.l, x2: W - m.r, y1: sy(t), y2: sy(t), class: "grid"}, svg);
    el("text", {x: m.l - 6, y: sy(t) + 4, "text-anchor": "end"}, svg, label(t));
  }
  for (let t = Math.ceil(x0 / dx) * dx; t <= x1; t += dx) {
    el("line", {x1: sx(t), x2: sx(t), y1: m.t, y2: H - m.b, class: "grid"}, svg);
    el("text", {x: sx(t), y: H - m.b + 15, "text-anchor": "middle"}, svg, String(t));
  }
  el("rect", {x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b, class: "frame"}, svg);
  el("text", {x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle"}, svg, "epoch");
  el("text", {x: 12, y: (m.t + H - m.b) / 2, "text-anchor": "middle",
              transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})`}, svg, ylabel);
  for (const l of lines) {
    el("line", {x1: m.l, x2: W - m.r, y1: sy(l.y), y2: sy(l.y), class: "target"}, svg);
    el("text", {x: W - m.r - 4, y: sy(l.y) - 4, "text-anchor": "end", class: "halo"}, svg, l.text);
  }
  for (const s of series) {
    let d = "", pen = "M", n = 0;
    s.x.forEach((x, i) => {
      if (s.y[i] == null) { pen = "M"; return; }
      d += `${pen}${sx(x).toFixed(1)},${sy(s.y[i]).toFixed(1)}`; pen = "L"; n += 1;
    });
    if (!d) continue;
    const path = el("path", {d, class: "curve", stroke: s.color, "data-run": s.name}, svg);
    if (s.dash) path.setAttribute("stroke-dasharray", "5 4");
    el("title", {}, path, `${s.name} ${s.label}`);
    if (n > 40) continue;  // dots only where they stay apart
    s.x.forEach((x, i) => {
      if (s.y[i] != null) el("circle", {cx: sx(x), cy: sy(s.y[i]), r: 2.5, fill: s.color}, svg);
    });
  }
}

function update() {
  const runs = picked.filter((n) => data[n]);
  const shared = runs.length ? Object.keys(data[runs[0]].s).filter((k) => k !== "train_loss"
    && runs.every((n) => k in data[n].s)) : [];
  const target = runs.length && data[runs[0]].t ? data[runs[0]].t[0] : "";
  const metric = shared.includes(chosen) ? chosen : shared.includes(target) ? target
    : shared.find((k) => k !== "val_loss") || shared[0] || "";
  const select = $("metric");
  select.replaceChildren(...shared.map((k) => new Option(k, k)));
  select.value = metric;
  select.disabled = !shared.length;
  const thresholds = new Map();
  for (const n of runs) {
    const t = data[n].t;
    if (t && t[0] === metric) thresholds.set(t[2], `target ${t[1] === "min" ? "≤" : "≥"} ${t[2]}`);
  }
  draw($("metric-chart"), runs.map((n) => ({name: n, label: metric, color: color(n), x: data[n].e,
    y: data[n].s[metric] || []})), metric || "(no metric shared)",
    [...thresholds].map(([y, text]) => ({y, text})));
  const losses = [];
  for (const n of runs) {
    for (const [k, dash] of [["train_loss", false], ["val_loss", true]]) {
      if (data[n].s[k]) losses.push({name: n, label: k, color: color(n), x: data[n].e, y: data[n].s[k], dash});
    }
  }
  draw($("loss-chart"), losses, "loss", []);
  const legend = $("legend");
  legend.replaceChildren();
  for (const n of picked) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = color(n);
    item.append(swatch, n + (data[n] ? "" : " (no epochs recorded)"));
    legend.appendChild(item);
  }
  for (const r of rows) {
    const on = picked.includes(r.dataset.run);
    r.classList.toggle("picked", on);
    if (on) r.style.setProperty("--pick", color(r.dataset.run));
  }
  $("charts").hidden = !picked.length;
  $("hint").hidden = picked.length > 0;
  try {
    history.replaceState(null, "", picked.length ? "#select=" + picked.map(encodeURIComponent).join(",")
      : location.pathname + location.search);
  } catch (e) { /* some file:// setups refuse; the selection still works */ }
}
tbody.addEventListener("change", (ev) => {
  const box = ev.target;
  if (!box.matches("input.pick")) return;
  picked = picked.filter((n) => n !== box.value);
  if (box.checked) picked.push(box.value);
  update();
});
$("metric").addEventListener("input", () => { chosen = $("metric").value; update(); });
$("clear").addEventListener("click", () => {
  tbody.querySelectorAll("input.pick:checked").forEach((b) => { b.checked = false; });
  picked = [];
  update();
});

// #select=run1,run2 (kept up to date, so a view can be bookmarked) picks those runs on load.
const wanted = location.hash.startsWith("#select=") ? location.hash.slice(8).split(",").map(decodeURIComponent) : [];
for (const r of rows) {
  if (wanted.includes(r.dataset.run)) r.querySelector("input.pick").checked = true;
}
picked = wanted.filter((n) => rows.some((r) => r.dataset.run === n));
filter();
update();
})();
"""


def _utc(seconds: float | None, since: float | None = None) -> str:
    """``YYYY-mm-dd HH:MM`` in UTC; only ``HH:MM`` on the same day as ``since``."""
    if seconds is None:
        return "—"
    day = time.strftime("%Y-%m-%d ", time.gmtime(seconds))
    same = since is not None and time.strftime("%Y-%m-%d ", time.gmtime(since)) == day
    return time.strftime("%H:%M", time.gmtime(seconds)) if same else day + time.strftime("%H:%M", time.gmtime(seconds))


def _num(value: Any, text: str) -> str:
    """A sortable number cell: ``data-v`` holds the value (empty: none), ``text`` what is shown."""
    v = "" if value is None else repr(value)
    return f'<td class="num" data-v="{v}">{escape(text)}</td>'


def _status(row: RunRow) -> str:
    if row.status == INCOMPLETE:
        return badge("running / incomplete", None)
    if row.status == "aborted" and row.fixed_epochs:  # an experiment's or sweep's fixed-length run
        return badge("aborted: fixed epochs", None)
    return badge(row.status, row.status == "success")


def _target(target: dict[str, Any] | None) -> str:
    if target is None:
        return "—"
    return f"val_{target['metric']} {'≤' if target['mode'] == 'min' else '≥'} {target['threshold']:g}"


HEAD = ("", "run", "workload", "status", "target", "best", "reached", "test", "epochs", "time to train",
        "samples/s", "ranks", "strategy", "started (UTC)", "finished (UTC)", "part of")


def run_row(row: RunRow) -> str:
    name = escape(row.name)
    link = f'<a href="{escape(row.page)}">{name}</a>' if row.page else name
    reached = "—" if row.reached is None else badge("yes", True) if row.reached else badge("no", False)
    test = (f'<td class="num" data-v="{row.test[1]!r}" title="{escape(row.test[0])}">{fmt_number(row.test[1])}</td>'
            if row.test else _num(None, "—"))
    cells = [
        f'<td><input type="checkbox" class="pick" value="{name}" aria-label="overlay {name}"></td>',
        f"<td>{link}</td>", f"<td>{escape(row.workload or '—')}</td>", f'<td class="wrap">{_status(row)}</td>',
        f"<td>{escape(_target(row.target))}</td>", _num(row.best, fmt_number(row.best)), f"<td>{reached}</td>",
        test, _num(row.epochs, fmt_number(row.epochs)), _num(row.time_to_train_s, fmt_seconds(row.time_to_train_s)),
        _num(row.throughput, fmt_number(row.throughput)), _num(row.world_size, fmt_number(row.world_size)),
        f"<td>{escape(row.strategy or '—')}</td>", _num(row.started, _utc(row.started)),
        _num(row.finished, _utc(row.finished, row.started)), f'<td class="group">{escape(", ".join(row.groups))}</td>',
    ]
    groups = escape(" ".join(row.groups))
    return (f'<tr data-run="{name}" data-workload="{escape(row.workload or "")}" data-status="{escape(row.status)}"'
            f' data-groups="{groups}">' + "".join(cells) + "</tr>")


def _options(label: str, ident: str, values: list[str], names: dict[str, str]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(names.get(v, v))}</option>' for v in values)
    return f'<select id="{ident}" aria-label="{label}"><option value="">every {label}</option>{opts}</select>'


def group_table(groups: list[Group], kind: str) -> str:
    """The experiments' (or sweeps') table; empty when there are none."""
    chosen = [g for g in groups if g.kind == kind]
    if not chosen:
        return ""
    lines = []
    for g in chosen:
        name = escape(g.name)
        link = (f'<a href="{escape(g.page)}">{name}</a>' if g.page
                else f'{name} <span class="muted">(no page yet)</span>')
        best = (f"best: {escape(g.best['run'])} {fmt_number(g.best['value'])}<br>" if g.best else "")
        verdicts = best + "<br>".join(escape(v) for v in g.verdicts)
        show = (f'<button type="button" data-filter="{name}">show its {len(g.runs)} run(s)</button>'
                if g.runs else "—")
        lines.append(f"<tr><td>{link}</td><td>{escape(g.title)}</td><td>{escape(g.workload or '—')}</td>"
                     f"<td>{show}</td><td>{verdicts or '—'}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in (kind, "title", "workload", "runs", "findings"))
    return (f"<h2>{kind.capitalize()}s</h2>\n<table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>")


def render(index: Index, generated: float) -> str:
    """The whole page; ``generated`` (POSIX seconds) is shown as when it was written."""
    runs = index.runs
    workloads = sorted({r.workload for r in runs if r.workload})
    statuses = sorted({r.status for r in runs})
    groups = index.groups
    head = "".join(f'<th class="sortable" title="sort by {h}">{h.replace(" (", "<br>(")}</th>' if h else "<th></th>"
                   for h in HEAD)
    table = (f'<div class="scroll"><table id="runs"><thead><tr>{head}</tr></thead><tbody>'
             + "".join(run_row(r) for r in runs) + "</tbody></table></div>")
    curves = json.dumps({"runs": index.curves}, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    counts = (f"{len(runs)} run(s) of {len(workloads)} workload(s), "
              f"{sum(g.kind == 'experiment' for g in groups)} experiment(s), "
              f"{sum(g.kind == 'sweep' for g in groups)} sweep(s); written {_utc(generated)} UTC.")
    notes = ""
    if index.notes:
        notes = ('<h2>Left out or incomplete records</h2><ul class="notes">'
                 + "".join(f"<li>{escape(n)}</li>" for n in index.notes) + "</ul>")
    body = f"""<h1>Training runs</h1>
<p class="muted">{escape(counts)} Throughput is the median epoch throughput, first epoch excluded; started is
finished less staging and training time. Tick runs to overlay their curves; click a column heading to sort.</p>
<section id="charts" hidden>
<div class="charts">
<div class="chart"><h3>Validation metric <select id="metric" aria-label="metric"></select></h3>
<svg id="metric-chart" role="img" aria-label="validation metric per epoch"></svg></div>
<div class="chart"><h3>Loss <span class="muted">solid: training, dashed: validation</span></h3>
<svg id="loss-chart" role="img" aria-label="loss per epoch"></svg></div>
</div>
<div id="legend"></div>
</section>
<p id="hint" class="muted">No run ticked: the charts appear here.</p>
<div class="controls"><input id="q" type="search" placeholder="filter: any text; in:NAME for an experiment's runs"
aria-label="filter">{_options("workload", "workload", workloads, {})}
{_options("status", "status", statuses, {INCOMPLETE: "running / incomplete"})}
<button type="button" id="clear">clear ticks</button><span id="shown" class="muted">{len(runs)} run(s)</span></div>
{table}{'' if runs else '<p>No run under this folder yet.</p>'}
{group_table(index.groups, "experiment")}
{group_table(index.groups, "sweep")}
{notes}
<script type="application/json" id="curves">{curves}</script>
<script>{_SCRIPT}</script>"""
    return document("Training runs", body, _CSS)
