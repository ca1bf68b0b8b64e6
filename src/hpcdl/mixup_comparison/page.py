"""The MixUp comparison page: verdicts first, then the curves with their seed bands, a table per
arm and one per run. Self-contained like every report page (figures inline, no scripts)."""

from __future__ import annotations

from html import escape

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpcdl.mixup_comparison.stats import RULE, Arm, Spread
from hpcdl.report.figures import png
from hpcdl.report.html import document, fmt_seconds, img, status_badge
from hpcdl.report.runs import Run


def band_figure(all_arms: list[Arm], title: str, ylabel: str, gap: bool) -> bytes:
    """Per arm, the mean over seeds per epoch as a line and the min–max range as a band."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for a in all_arms:
        points = a.gap if gap else a.curve
        if not points:
            continue
        label = "no MixUp" if a.alpha == 0 else f"MixUp α={a.alpha:g}"
        line = ax.plot(a.epochs, [p[0] for p in points], marker="o", label=f"{label} ({len(a.runs)} seeds)")[0]
        ax.fill_between(a.epochs, [p[1] for p in points], [p[2] for p in points], color=line.get_color(),
                        alpha=0.2, linewidth=0)
    ax.legend()
    return png(fig)


def _pm(s: Spread | None, scale: float = 100, unit: str = " %") -> str:
    return "—" if s is None else f"{scale * s.mean:.2f} ± {scale * s.std:.2f}{unit}"


def render(all_arms: list[Arm], runs: list[Run], lines: list[str], curves: bytes, gaps: bytes,
           errors: list[str]) -> str:
    """The whole page."""
    arm_rows = "".join(
        f"<tr><td>{escape(a.name)}</td><td class='num'>{a.alpha:g}</td><td class='num'>{len(a.runs)}</td>"
        f"<td class='num'>{_pm(a.final_val)}</td><td class='num'>{_pm(a.test)}</td>"
        f"<td class='num'>{_pm(a.final_gap, unit=' pp')}</td>"
        f"<td class='num'>{escape(fmt_seconds(a.time_to_train.mean))}</td></tr>" for a in all_arms)
    run_rows = "".join(
        f"<tr><td>{escape(r.name)}</td><td class='num'>{r.summary.spec['params'].get('mixup_alpha', 0):g}</td>"
        f"<td class='num'>{r.summary.spec['train']['seed']}</td><td>{status_badge(r.summary.status)}</td>"
        f"<td class='num'>{r.summary.epochs_run}</td>"
        f"<td class='num'>{100 * r.epochs[-1].metrics.get('val_accuracy', float('nan')):.2f} %</td>"
        f"<td class='num'>{_test(r)}</td></tr>" for r in runs)
    body = f"""<h1>MixUp comparison</h1>
<h2>Verdict</h2>
{"".join(f"<p><b>{escape(line)}</b></p>" for line in lines)}
<p class="muted">{escape(RULE)} Test accuracy is measured once per run, with its final weights, on the
official test split, which no run uses to stop or select; ± is the sample standard deviation over seeds.</p>
<h2>Curves</h2>
<div class="figs"><figure>{img(curves, "validation accuracy per epoch, mean and min-max band per arm")}
<figcaption>Validation accuracy per epoch: mean over seeds, band from min to max.</figcaption></figure>
<figure>{img(gaps, "train-validation gap per epoch, mean and min-max band per arm")}
<figcaption>Train–validation gap: accuracy on clean training samples minus validation accuracy.</figcaption>
</figure></div>
<h2>Arms</h2>
<table><thead><tr><th>arm</th><th>α</th><th>seeds</th><th>final validation accuracy</th><th>test accuracy</th>
<th>train–validation gap</th><th>mean time to train</th></tr></thead><tbody>{arm_rows}</tbody></table>
<h2>Runs</h2>
<table><thead><tr><th>run</th><th>α</th><th>seed</th><th>status</th><th>epochs</th><th>final validation accuracy</th>
<th>test accuracy</th></tr></thead><tbody>{run_rows}</tbody></table>"""
    if errors:
        body += "\n<h2>Runs that could not be read</h2>\n<pre>" + escape("\n".join(errors)) + "</pre>"
    return document("MixUp comparison", body)


def _test(run: Run) -> str:
    value = run.summary.test.get("test_accuracy")
    return "—" if value is None else f"{100 * value:.2f} %"
