"""The comparison's two figures, PNG bytes drawn like the report's (matplotlib object API).

* time to train against accelerators (log-log), with the ideal line through the point that needs
  the fewest accelerator-minutes: perfect strong scaling from the most efficient result;
* samples/s per accelerator, one bar per folder.

The user's runs are drawn in their own colour and named on the figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from hpcdl.report.figures import png

_PUBLISHED, _MINE = "C0", "C3"


@dataclass(frozen=True)
class Point:
    """One folder's score at its accelerator count."""

    label: str
    accelerators: int
    minutes: float
    mine: bool
    official: bool


@dataclass(frozen=True)
class Ideal:
    """Perfect strong scaling from ``label``: time to train = ``accelerator_minutes`` / accelerators."""

    label: str
    accelerator_minutes: float


def ideal(points: list[Point]) -> Ideal:
    """The ideal line through the point with the fewest accelerator-minutes (the first on a tie)."""
    best = min(points, key=lambda p: p.accelerators * p.minutes)
    return Ideal(best.label, best.accelerators * best.minutes)


def time_to_train(points: list[Point]) -> bytes:
    """Time to train against accelerators, log-log, with the :func:`ideal` line."""
    line = ideal(points)
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax = fig.subplots()
    counts = [p.accelerators for p in points]
    xs = [min(counts) / 1.5, max(counts) * 1.5]
    ax.plot(xs, [line.accelerator_minutes / x for x in xs], "k--", lw=1, label=f"ideal scaling from {line.label}")
    for mine, name in ((False, "published"), (True, "your runs")):
        group = [p for p in points if p.mine == mine]
        if not group:
            continue
        color = _MINE if mine else _PUBLISHED
        ax.scatter([p.accelerators for p in group], [p.minutes for p in group], s=80 if mine else 40,
                   marker="*" if mine else "o", label=name, zorder=3,
                   facecolors=[color if p.official else "none" for p in group], edgecolors=color)
        if mine:
            for p in group:
                ax.annotate(p.label, (p.accelerators, p.minutes), textcoords="offset points", xytext=(6, 6),
                            color=_MINE, fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(y=0.15)  # room for the labels of the user's points
    for axis in (ax.xaxis, ax.yaxis):  # ticks at 1, 2, 5 x 10^k, labelled 200 rather than 2 x 10^2
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_title("Time to train vs accelerators (hollow: not an official score)")
    ax.set_xlabel("accelerators")
    ax.set_ylabel("time to train (minutes)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    return png(fig)


def throughput(bars: list[tuple[str, float, bool]]) -> bytes:
    """Samples/s per accelerator, one horizontal bar per ``(label, value, mine)``, fastest on top."""
    bars = sorted(bars, key=lambda b: b[1])
    fig = Figure(figsize=(7.2, 1.4 + 0.32 * len(bars)), layout="constrained")
    ax = fig.subplots()
    ax.barh(range(len(bars)), [b[1] for b in bars], color=[_MINE if b[2] else _PUBLISHED for b in bars])
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=9)
    for tick, (_, _, mine) in zip(ax.get_yticklabels(), bars, strict=True):
        if mine:
            tick.set_color(_MINE)
            tick.set_fontweight("bold")
    ax.set_title("Training throughput per accelerator (red: your runs)")
    ax.set_xlabel("samples / s per accelerator")
    ax.grid(True, axis="x", alpha=0.3)
    return png(fig)
