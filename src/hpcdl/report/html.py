"""Self-contained HTML pages: inline CSS, figures as base64 PNG data URIs, no network; only the run
index (:mod:`hpcdl.report.index_page`) carries a script, inline.

Every string that comes from a run is passed through :func:`html.escape` before it is placed
in the page, so a run name or setting can never inject markup.
"""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING, Any

from hpcdl.report.compliance import Verdict
from hpcdl.report.runs import Run

if TYPE_CHECKING:  # matplotlib only where figures are drawn: the run index imports this module
    from hpcdl.report.figures import RunFigure

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1200px;margin:0 auto;padding:1.2rem 1.5rem 3rem}
h1{font-size:1.6rem;margin:.2rem 0 .6rem}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:1px solid #d5d9e0;padding-bottom:.3rem}
a{color:#1f5fbf}.muted{color:#5b6475;font-size:.9rem}
.badge{display:inline-block;padding:.15rem .55rem;border-radius:.8rem;font-size:.85rem;font-weight:600;margin-right:.4rem}
.ok{background:#d9f2e1;color:#165c2e}.bad{background:#fbe0e0;color:#8a1c1c}.neutral{background:#e4e8f0;color:#333c4d}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{background:#fff;border:1px solid #dde1e8;border-radius:.5rem;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.25rem}.card span{color:#5b6475;font-size:.8rem}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
figure{margin:0;background:#fff;border:1px solid #dde1e8;border-radius:.5rem;padding:.5rem}
figure img{width:100%;height:auto;display:block}figcaption{font-size:.85rem;color:#5b6475;padding:.3rem .2rem 0}
table{border-collapse:collapse;background:#fff;font-size:.9rem}
th,td{border:1px solid #dde1e8;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#fff;border:1px solid #dde1e8;border-radius:.4rem;padding:.6rem;overflow-x:auto;font-size:.82rem}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:1.5rem;align-items:start}
"""

def fmt_seconds(value: Any) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 03 min``; an em dash when not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_number(value: Any, spec: str = ".4g") -> str:
    """A number with ``spec``, integers with thousands separators; other values as text."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def badge(text: str, good: bool | None) -> str:
    cls = "neutral" if good is None else ("ok" if good else "bad")
    return f'<span class="badge {cls}">{escape(text)}</span>'


def status_badge(status: Any) -> str:
    return badge(f"run {status}", status == "success")


def verdict_badge(verdict: Verdict) -> str:
    return badge(f"MLPerf compliance {verdict.verdict}", verdict.passed)


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _flatten(config: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as ``(dotted.key, value)`` rows; lists joined with commas."""
    if isinstance(config, dict):
        rows: list[tuple[str, str]] = []
        for key, value in config.items():
            rows += _flatten(value, f"{prefix}{key}.")
        return rows
    if isinstance(config, list):
        return [(prefix[:-1], ", ".join(fmt_number(v) for v in config))]
    return [(prefix[:-1], fmt_number(config) if config != "" else "(empty)")]


def _table(rows: list[tuple[str, str]], head: tuple[str, str]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table><thead><tr><th>{escape(head[0])}</th><th>{escape(head[1])}</th></tr></thead><tbody>{body}</tbody></table>"


def document(title: str, body: str, css: str = "") -> str:
    """A whole page: the shared style sheet, then ``css`` (the page's own rules)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}{css}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def run_page(run: Run, verdict: Verdict, figures: list[RunFigure]) -> str:
    """The page of one run."""
    s = run.summary
    key = run.target_key
    cards = [
        (f"best {key}", fmt_number(s.best)),
        (f"final {key}", fmt_number(s.final)),
        ("target", f"{key} {run.target_text}"),
        ("epochs run", fmt_number(s.epochs_run)),
        ("time to train", fmt_seconds(s.time_to_train_s)),
        ("staging time", fmt_seconds(s.staging_s)),
        ("median throughput", f"{run.throughput:.4g} samples/s" if run.throughput is not None else "—"),
        *((f"{name} (final weights)", fmt_number(value)) for name, value in s.test.items()),
    ]
    facts_keys = ("workload", "mlperf_benchmark", "world_size", "local_world_size", "nodes", "launcher",
                  "device", "global_batch_size", "parameters", "train_samples", "eval_samples")
    facts = [(k.replace("_", " "), fmt_number(getattr(s, k))) for k in facts_keys]
    figs = "".join(
        f"<figure>{img(f.png, f.caption)}<figcaption>{escape(f.caption)}</figcaption></figure>" for f in figures
    )
    checker_lines = "\n".join(verdict.lines) or "(the checker printed nothing relevant)"
    command = f"<code>{escape(verdict.command)}</code>" if verdict.command else ""
    title = f"{s.workload} run {run.name}"
    body = f"""<p class="muted"><a href="index.html">← all runs</a></p>
<h1>{escape(title)}</h1>
<p>{status_badge(s.status)}{verdict_badge(verdict)}</p>
<div class="cards">{"".join(f"<div class='card'><b>{escape(v)}</b><span>{escape(k)}</span></div>" for k, v in cards)}</div>
<h2>Training curves</h2>
<div class="figs">{figs}</div>
{tallies_section(s.tallies)}
<div class="cols">
<section><h2>Run facts</h2>{_table(facts, ("fact", "value"))}</section>
<section><h2>Configuration</h2>{_table(_flatten(s.spec), ("setting", "value"))}</section>
</div>
<h2>MLPerf HPC compliance</h2>
<p>{verdict_badge(verdict)}{command}</p>
<pre>{escape(checker_lines)}</pre>
<p class="muted">Run directory: {escape(str(run.directory))}</p>"""
    return document(title, body)


def _confusion(classes: list[str], matrix: list[list[int]], split: str) -> str:
    """Per-class accuracy (recall) and the confusion matrix, cells shaded by their share of the row."""
    names = classes if len(classes) == len(matrix) else [str(i) for i in range(len(matrix))]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for i, (name, row) in enumerate(zip(names, matrix)):
        total = sum(row) or 1
        cells = "".join(f'<td class="num" style="background:rgba(31,95,191,{0.6 * v / total:.2f})">{v}</td>'
                        for v in row)
        rows.append(f'<tr><th>{escape(name)}</th><td class="num">{100 * row[i] / total:.1f} %</td>'
                    f'<td class="num">{sum(row)}</td>{cells}</tr>')
    return (f"<section><h3>{escape(split)} split</h3><table><thead><tr><th>true \\ predicted</th>"
            f"<th>accuracy</th><th>samples</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def tallies_section(tallies: dict[str, Any]) -> str:
    """Per-class accuracy and confusion matrices of the splits a run tallied (none: empty)."""
    parts = [_confusion(tallies.get("classes", []), counts["confusion"], split)
             for split, counts in tallies.items() if isinstance(counts, dict) and "confusion" in counts]
    if not parts:
        return ""
    return ("<h2>Per-class accuracy and confusion (final weights)</h2>"
            '<p class="muted">Rows: true class; columns: predicted class; accuracy is the row\'s diagonal share.</p>'
            + "".join(parts))
