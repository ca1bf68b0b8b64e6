"""An experiment's page: flags of impossible speed-ups, verdicts, the MLPerf score (system files),
figures, a table per arm and point, one row per run, and the runs that failed or did not finish.
Self-contained like every report page (the report's CSS and frame, figures inline, no scripts);
every string from a run is escaped. Metric columns are whatever the runs' records hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from hpcdl.experiments.figures import metric_name, spread_text
from hpcdl.experiments.gather import Measured, Missing
from hpcdl.experiments.score import Score
from hpcdl.experiments.stats import RULE, Flag, Point, Verdict
from hpcdl.report.html import badge, document, img


@dataclass(frozen=True)
class Figure:
    """One figure of the page: its file name (``<name>.png``), caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def _table(head: tuple[str, ...], rows: list[list[str]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + cells + "</tbody></table>")


def _time_to_target(p: Point) -> str:
    if p.time_to_target_s is None:
        return "not reached"
    reached = "" if p.reached == len(p.runs) else f" ({p.reached}/{len(p.runs)} reached)"
    return spread_text(p.time_to_target_s, " s") + reached


def final_keys(arms: dict[str, list[Point]]) -> list[str]:
    """Every final metric some point has: validation, test, training-set, then the gaps."""
    keys = {k for pts in arms.values() for p in pts for k in p.finals}
    order = ("val_", "test_", "trainset_", "gap_")
    return sorted(keys, key=lambda k: (next((i for i, o in enumerate(order) if k.startswith(o)), 9), k))


def point_rows(arms: dict[str, list[Point]], keys: list[str]) -> list[list[str]]:
    """One row per arm and point, as the page's table shows it."""
    return [[p.arm, p.point, str(p.world_size), str(len(p.runs)), spread_text(p.epoch_time_s, " s"),
             spread_text(p.throughput), _time_to_target(p), f"{p.speedup:.2f}x (ideal {p.ideal:.2f}x)",
             f"{100 * p.efficiency:.0f} %", *(spread_text(p.finals.get(k)) for k in keys)]
            for pts in arms.values() for p in pts]


def _run_rows(measured: list[Measured], keys: list[str]) -> list[list[str]]:
    rows = []
    for m in measured:
        ttt = "not reached" if m.time_to_target_s is None else f"{m.time_to_target_s:.4g} s"
        rows.append([m.arm, m.name, str(m.world_size), str(m.seed), m.status, str(m.epochs),
                     f"{m.epoch_time_s:.4g} s", ttt, *("—" if k not in m.finals else f"{m.finals[k]:.4g}" for k in keys)])
    return rows


def render(title: str, arms: dict[str, list[Point]], measured: list[Measured], missing: list[Missing],
           found: list[Verdict], warned: list[Flag], scored: list[Score], figures: list[Figure]) -> str:
    """The whole page."""
    keys = final_keys(arms)
    target = measured[0].target if measured else None
    body = [f"<h1>{escape(title)}</h1>"]
    arm_names = ", ".join(arms) or "none"
    body.append(f"<p class='muted'>{len(measured)} finished run(s); arms: {escape(arm_names)}"
                + (f"; target: validation {escape(target.metric)} {escape(target.mode)} {target.threshold:g}"
                   if target else "")
                + ". ± is the sample standard deviation over seeds; time per epoch and throughput are each run's "
                "median, first epoch excluded; speed-up and efficiency are of the mean time per epoch against the "
                "arm's smallest world size.</p>")
    if warned:
        body.append("<h2>Check these numbers</h2>")
        body += [f"<p>{badge('beyond ideal', False)}{escape(f.text)}</p>" for f in warned]
    if len(arms) > 1:
        body.append("<h2>Verdict</h2>")
        body += [f"<p><b>{escape(v.text)}</b></p>" for v in found] or ["<p>No point has runs of two arms.</p>"]
        body.append(f"<p class='muted'>{escape(RULE)} Test metrics are measured once per run with its final "
                    "weights on the test split, which no run uses to stop or select.</p>")
    if scored:
        body.append("<h2>MLPerf HPC score</h2>")
        body += [f"<p>{escape(s.text)}</p>" for s in scored]
    body.append("<h2>Figures</h2><div class='figs'>")
    body += [f"<figure>{img(f.png, f.caption)}<figcaption>{escape(f.caption)}</figcaption></figure>" for f in figures]
    body.append("</div><h2>Per arm and point</h2>")
    head = ("arm", "point", "ranks", "seeds", "time / epoch (mean ± sd)", "samples/s (mean ± sd)",
            "time to target (mean ± sd)", "speed-up", "efficiency", *(f"final {metric_name(k)}" for k in keys))
    rows = point_rows(arms, keys)
    body.append(_table(head, rows) if rows else "<p>No run finished.</p>")
    body.append("<h2>Runs</h2>")
    run_head = ("arm", "run", "ranks", "seed", "status", "epochs", "time / epoch", "time to target",
                *(metric_name(k) for k in keys))
    body.append(_table(run_head, _run_rows(measured, keys)) if measured else "<p>No run finished.</p>")
    if missing:
        body.append("<h2>Runs that failed or did not finish</h2>")
        body.append(_table(("arm", "run directory", "epochs recorded", "reason"),
                           [[m.arm, str(m.directory), str(m.epochs), m.reason] for m in missing]))
    return document(title, "\n".join(body))
