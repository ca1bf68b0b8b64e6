"""The MixUp comparison page: verdicts first, then the curves with their seed bands, a table per
arm and one per run, the verdict's rule and the runs that could not be read. Self-contained like
every report page (the report's CSS and frame, figures inline, no scripts); every string from a
run is escaped.
"""

from __future__ import annotations

from html import escape

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpcdl.mixup_comparison.runs import NONE
from hpcdl.mixup_comparison.stats import RULE, Arm, BandPoint, Spread, study_key
from hpcdl.report.figures import png
from hpcdl.report.html import badge, document, fmt_number, fmt_seconds, img
from hpcdl.report.runs import Run

VAL_CAPTION = "Validation accuracy per epoch: mean over seeds (line), min to max over seeds (band)."
GAP_CAPTION = ("Train–validation gap per epoch: accuracy on a fixed subset of clean training samples minus "
               "validation accuracy; mean over seeds (line), min to max (band).")


def arm_label(a: Arm) -> str:
    """``no MixUp`` or ``MixUp α=0.2``, as the verdicts name the arms."""
    return "no MixUp" if a.name == NONE else f"MixUp α={a.alpha:g}"


def band_figure(all_arms: list[Arm], title: str, ylabel: str, gap: bool) -> bytes:
    """Per arm, the mean over seeds per epoch as a line and the min–max range as a band; each arm
    keeps its colour (its place in ``all_arms``) in both figures."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    drawn = False
    for i, a in enumerate(all_arms):
        points: list[BandPoint] = a.gap if gap else a.val_accuracy
        if not points:
            continue
        epochs = [p.epoch for p in points]
        ax.plot(epochs, [p.mean for p in points], "o-", color=f"C{i}", label=f"{arm_label(a)} ({len(a.runs)} seeds)")
        ax.fill_between(epochs, [p.min for p in points], [p.max for p in points], color=f"C{i}", alpha=0.2,
                        linewidth=0)
        drawn = True
    if gap:
        ax.axhline(0, color="k", linewidth=0.8)
    if drawn:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#5b6475")
    return png(fig)


def _pm(s: Spread | None, unit: str) -> str:
    """``91.25 ± 0.40 %`` of a fraction's spread (``unit`` ``%`` or ``pp``); an em dash for none."""
    return "—" if s is None else f"{100 * s.mean:.2f} ± {100 * s.std:.2f} {unit}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _table(head: tuple[str, ...], rows: list[str]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _arm_row(a: Arm) -> str:
    time = None if a.time_to_train_s is None else a.time_to_train_s.mean
    cells = (_pm(a.final_val_accuracy, "%"), _pm(a.test_accuracy, "%"), _pm(a.final_gap, "pp"), fmt_seconds(time))
    return (f"<tr><td>{escape(arm_label(a))}</td><td class='num'>{len(a.runs)}</td>"
            + "".join(f"<td class='num'>{escape(c)}</td>" for c in cells) + "</tr>")


def _run_row(run: Run, arms_by_alpha: dict[float, Arm]) -> str:
    alpha, seed = study_key(run)
    s = run.summary
    cells = (fmt_number(s.epochs_run), _percent(run.epochs[-1].metrics.get("val_accuracy")),
             _percent(s.test.get("test_accuracy")))
    # With stop_at_target false a run that used its epochs ends "aborted": not a failure here.
    return (f"<tr><td>{escape(run.name)}</td><td>{escape(arm_label(arms_by_alpha[alpha]))}</td>"
            f"<td class='num'>{seed}</td><td>{badge(s.status, False if s.status == 'diverged' else None)}</td>"
            + "".join(f"<td class='num'>{escape(c)}</td>" for c in cells) + "</tr>")


def render(all_arms: list[Arm], runs: list[Run], lines: list[str], val_png: bytes, gap_png: bytes,
           errors: list[str]) -> str:
    """The whole page; ``runs`` are the readable study runs that ``all_arms`` were computed from."""
    by_alpha = {a.alpha: a for a in all_arms}
    ordered = sorted(runs, key=study_key)
    arm_head = ("arm", "seeds", "final validation accuracy", "test accuracy", "train–validation gap (final)",
                "mean time to train")
    run_head = ("run", "arm", "seed", "status", "epochs", "final validation accuracy", "test accuracy")
    body = [
        "<h1>MixUp comparison</h1>",
        "<h2>Verdict</h2>",
        *(f"<p><b>{escape(line)}</b></p>" for line in lines),
        f"<p class='muted'>{escape(RULE)} Test accuracy is measured once per run with its final weights on the "
        "test split, which no run uses to stop or select; ± is the sample standard deviation over seeds; pp: "
        "percentage points.</p>",
        "<h2>Curves</h2><div class='figs'>",
        f"<figure>{img(val_png, VAL_CAPTION)}<figcaption>{escape(VAL_CAPTION)}</figcaption></figure>",
        f"<figure>{img(gap_png, GAP_CAPTION)}<figcaption>{escape(GAP_CAPTION)}</figcaption></figure></div>",
        "<h2>Arms</h2>",
        _table(arm_head, [_arm_row(a) for a in all_arms]) if all_arms else "<p>No arm has a run.</p>",
        "<h2>Runs</h2>",
        _table(run_head, [_run_row(r, by_alpha) for r in ordered]) if ordered else "<p>No run could be read.</p>",
    ]
    if errors:
        body.append("<h2>Runs that could not be read</h2><pre>" + escape("\n".join(errors)) + "</pre>")
    return document("MixUp comparison", "\n".join(body))
