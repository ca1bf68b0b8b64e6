"""The comparison page: self-contained like the report's pages (its CSS and document frame, figures
inline, no scripts); every string from a log, a path or a system description is escaped.

One table row per folder (the user's runs highlighted), the two figures, then every run of every
folder with its time, checker verdict and what became of it in the score.
"""

from __future__ import annotations

from html import escape

from hpcdl.report.html import badge, document, img, fmt_number, fmt_seconds
from hpcdl.results.scoring import Checked, FolderScore, run_role

# Inline, not a class: the report's stylesheet, shared by every page, has no highlight.
MINE_STYLE = "background:#fff1cc"


def _value(score: FolderScore) -> float | None:
    """The folder's score: models/min (weak) or minutes (strong); ``None`` when it has none."""
    return score.weak.models_per_min if score.weak else score.strong.minutes


def score_text(score: FolderScore) -> str:
    """``27.47 min``, ``0.2985 models/min`` or ``no score``."""
    value = _value(score)
    if value is None:
        return "no score"
    return f"{value:.4g} models/min" if score.weak else f"{value:.2f} min"


def accelerators_text(score: FolderScore) -> str:
    """``64 × NVIDIA A100``; for weak scaling also the instances and their size."""
    text = f"{fmt_number(score.accelerators)} × {score.folder.accelerator or 'accelerators'}"
    weak = score.weak
    if weak is not None and weak.instance_accelerators:
        text += f" ({weak.instances} instances × {weak.instance_accelerators})"
    return text


def _folder_row(score: FolderScore) -> str:
    f = score.folder
    mine = f' style="{MINE_STYLE}"' if f.mine else ""
    who = badge("your run", None) if f.mine else ""
    how = score.weak or score.strong
    good = score.passed == len(score.runs)
    flag = " " + badge("unofficial", None) if _value(score) is not None and not how.official else ""
    staging = fmt_seconds(score.staging_s) + (" (inside the timed region)" if score.staging_timed else "")
    return (
        f'<tr{mine}><td>{who}<a href="#{escape(f.key)}">{escape(f.label)}</a></td><td>{escape(f.kind)}</td>'
        f"<td>{escape(f.ruleset)}</td><td>{escape(accelerators_text(score))}</td>"
        f'<td class="num">{escape(score_text(score))}{flag}</td><td>{escape(how.note)}</td>'
        f'<td class="num">{escape(fmt_number(score.per_accelerator))}</td><td class="num">{escape(staging)}</td>'
        f"<td>{badge(f'{score.passed}/{len(score.runs)} SUCCESS', good)}</td></tr>"
    )


def _run_row(score: FolderScore, run: Checked, checker_log: str) -> str:
    f = run.facts
    role = run_role(score, run)
    return (
        f"<tr><td>{escape(run.name)}</td>"
        f'<td class="num">{escape(fmt_number(f.time_to_train_min if f else None, ".2f"))}</td>'
        f"<td>{escape(str(f.status) if f and f.status else '—')}</td>"
        f'<td class="num">{escape(fmt_seconds(f.staging_s if f else None))}</td>'
        f'<td class="num">{escape(fmt_number(f.accelerators if f else None))}</td>'
        f'<td class="num">{escape(fmt_number(run.per_accelerator))}</td>'
        f'<td>{badge(run.verdict.verdict, run.verdict.passed)} <a href="{escape(checker_log)}">checker log</a></td>'
        f"<td>{badge(role, False) if run.problems else escape(role)}</td></tr>"
    )


def _table(head: tuple[str, ...], rows: list[str]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def page(benchmark: str, scores: list[FolderScore], figures: list[tuple[bytes, str]],
         checker_logs: dict[tuple[str, str], str], errors: list[str]) -> str:
    """The whole page; ``figures`` are ``(png, caption)``, ``checker_logs`` maps ``(folder key,
    run name)`` to the checker log's path relative to the page."""
    head = ("system", "scaling", "ruleset", "accelerators", "score", "how", "samples/s per accelerator",
            "staging (not in the score)", "compliance")
    body = [
        f"<h1>{escape(benchmark)}: your runs beside published MLPerf HPC results</h1>",
        "<p class='muted'>Scored by the MLPerf HPC rules of each folder's ruleset. Strong scaling: time to "
        "train (run_stop − run_start), the olympic mean over the required runs. Weak scaling: converged "
        "models per minute from the first run_start to the last run_stop. Staging is shown apart and never "
        "added to the time to train; samples/s per accelerator and staging are medians over the completed "
        "runs.</p>",
        _table(head, [_folder_row(s) for s in scores]) if scores else "<p>No folder could be scored.</p>",
    ]
    if figures:
        body.append("<h2>Figures</h2><div class='figs'>" + "".join(
            f"<figure>{img(png, caption)}<figcaption>{escape(caption)}</figcaption></figure>"
            for png, caption in figures) + "</div>")
    run_head = ("log", "time to train (min)", "status", "staging", "accelerators", "samples/s per accelerator",
                "compliance", "in the score")
    for s in scores:
        f = s.folder
        title = f"{f.label} ({f.kind} scaling" + (", your run)" if f.mine else ")")
        rows = [_run_row(s, r, checker_logs[(f.key, r.name)]) for r in s.runs]
        body.append(
            f'<h2 id="{escape(f.key)}">{escape(title)}</h2>'
            f"<p>{escape(score_text(s))}: {escape((s.weak or s.strong).note)}. Ruleset {escape(f.ruleset)} "
            f"(from {escape(f.ruleset_source)}); logs in <code>{escape(str(f.directory))}</code>.</p>"
            + _table(run_head, rows)
        )
    if errors:
        body.append("<h2>Inputs that could not be used</h2><pre>" + escape("\n".join(errors)) + "</pre>")
    return document(f"{benchmark} results compared", "\n".join(body))
