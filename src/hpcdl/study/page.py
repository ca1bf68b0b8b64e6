"""The scaling study's and the comparison's page: verdicts (comparison), figures, a table per world
size (and arm), one row per run, and the runs that failed or did not finish. Self-contained like
every report page (the report's CSS and frame, figures inline, no scripts); every string from a
run is escaped.
"""

from __future__ import annotations

from html import escape

from hpcdl.mixup_comparison.stats import Spread
from hpcdl.report.html import document, img
from hpcdl.study import figures
from hpcdl.study.gather import Measured, Missing
from hpcdl.study.stats import RULE, Point, Verdict


def pm(s: Spread | None, unit: str = "") -> str:
    """``1.234 ± 0.05678 s`` (mean ± sample std); an em dash for none."""
    return "—" if s is None else f"{s.mean:.4g} ± {s.std:.4g}{unit}"


def seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.4g} s"


def _table(head: tuple[str, ...], rows: list[list[str]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + cells + "</tbody></table>")


def _time_to_target(p: Point) -> str:
    if p.time_to_target_s is None:
        return "not reached"
    reached = "" if p.reached == len(p.runs) else f" ({p.reached}/{len(p.runs)} reached)"
    return pm(p.time_to_target_s, " s") + reached


def point_rows(arms: dict[str, list[Point]], compare: bool) -> list[list[str]]:
    """One row per arm and world size, as the page's table shows it."""
    rows = []
    for pts in arms.values():
        for p in pts:
            row = [str(p.world_size), str(len(p.runs)), pm(p.epoch_time_s, " s"), _time_to_target(p),
                   f"{p.speedup:.2f}x (ideal {p.ideal:.2f}x)", f"{100 * p.efficiency:.0f} %", pm(p.metric)]
            rows.append([p.arm, *row] if compare else row)
    return rows


def _run_rows(measured: list[Measured], compare: bool) -> list[list[str]]:
    rows = []
    for m in sorted(measured, key=lambda m: (m.arm, m.world_size, m.seed)):
        value = "—" if m.metric_value is None else f"{m.metric_value:.4g}"
        row = [m.name, str(m.world_size), str(m.seed), m.status, str(m.epochs), f"{m.epoch_time_s:.4g} s",
               seconds(m.time_to_target_s), value]
        rows.append([m.arm, *row] if compare else row)
    return rows


def render(title: str, arms: dict[str, list[Point]], measured: list[Measured], missing: list[Missing],
           found: list[Verdict] | None, pngs: dict[str, bytes]) -> str:
    """The whole page; ``found`` is ``None`` for a study (one arm), the verdicts for a comparison."""
    compare = found is not None
    metric = measured[0].metric if measured else "metric"
    target = measured[0].target if measured else None
    arm_col = ("arm",) if compare else ()
    point_head = (*arm_col, "ranks", "seeds", "time / epoch (mean ± sd)", "time to target (mean ± sd)",
                  "speed-up", "efficiency", f"final {metric} (mean ± sd)")
    run_head = (*arm_col, "run", "ranks", "seed", "status", "epochs", "time / epoch", "time to target",
                f"final {metric}")
    body = [f"<h1>{escape(title)}</h1>"]
    if target is not None:
        body.append(f"<p class='muted'>{len(measured)} finished run(s); target: validation {escape(metric)} "
                    f"{escape(target.mode)} {target.threshold:g}. ± is the sample standard deviation over seeds; "
                    "time per epoch is each run's median, first epoch excluded; speed-up and efficiency are of the "
                    "mean time per epoch against the smallest world size.</p>")
    if compare:
        body.append("<h2>Verdict</h2>")
        body += [f"<p><b>{escape(v.text)}</b></p>" for v in found] or ["<p>No world size has runs of both arms.</p>"]
        body.append(f"<p class='muted'>{escape(RULE)}</p>")
    captions = {"time": figures.TIME_CAPTION, "speedup": figures.SPEEDUP_CAPTION,
                "metric": figures.METRIC_CAPTION.format(metric=metric)}
    body.append("<h2>Scaling</h2><div class='figs'>")
    body += [f"<figure>{img(pngs[name], text)}<figcaption>{escape(text)}</figcaption></figure>"
             for name, text in captions.items() if name in pngs]
    body.append("</div><h2>Per world size</h2>")
    rows = point_rows(arms, compare)
    body.append(_table(point_head, rows) if rows else "<p>No run finished.</p>")
    body.append("<h2>Runs</h2>")
    body.append(_table(run_head, _run_rows(measured, compare)) if measured else "<p>No run finished.</p>")
    if missing:
        body.append("<h2>Runs that failed or did not finish</h2>")
        body.append(_table((*arm_col, "run directory", "epochs recorded", "reason"),
                           [[*([m.arm] if compare else []), str(m.directory), str(m.epochs), m.reason]
                            for m in missing]))
    return document(title, "\n".join(body))
