"""The study's figures as PNG bytes (matplotlib's object API): every arm on the same axes, each
in its own colour, against the number of ranks (GPUs) on a log2 axis. Error bars are mean ± sample
std over seeds; dashed lines are the ideal (linear speed-up from the arm's smallest world size).
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hpcdl.report.figures import png
from hpcdl.study.stats import Point
from hpcdl.workloads import Target

TIME_CAPTION = ("Left: median time per epoch (first epoch excluded) against ranks; right: time to target (runs that "
                "reached it). Mean ± sample std over seeds; dashed: ideal, linear speed-up from the smallest world size.")
SPEEDUP_CAPTION = ("Left: speed-up of the mean time per epoch against ranks, relative to the smallest world size; "
                   "dashed: ideal (linear). Right: parallel efficiency, speed-up over ideal speed-up.")
METRIC_CAPTION = "Final validation {metric} against ranks: mean ± sample std over seeds (error bars); dashed: the target."


def _ranks_axis(ax: Axes, ranks: list[int], title: str, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks, [str(n) for n in ranks])
    ax.minorticks_off()
    ax.set(title=title, xlabel="ranks (GPUs)", ylabel=ylabel)
    ax.grid(True, alpha=0.3)


def _label(arm: str) -> str:
    return arm or "measured"


def _all_ranks(arms: dict[str, list[Point]]) -> list[int]:
    return sorted({p.world_size for pts in arms.values() for p in pts})


def time_figure(arms: dict[str, list[Point]]) -> bytes:
    """Time per epoch and time to target against ranks, with their ideal lines."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    ranks = _all_ranks(arms)
    for i, (arm, pts) in enumerate(arms.items()):
        n = [p.world_size for p in pts]
        left.errorbar(n, [p.epoch_time_s.mean for p in pts], yerr=[p.epoch_time_s.std for p in pts], fmt="o-",
                      color=f"C{i}", capsize=3, label=_label(arm))
        left.plot(n, [pts[0].epoch_time_s.mean * pts[0].world_size / k for k in n], "--", color=f"C{i}",
                  alpha=0.7, label=f"ideal ({_label(arm)})")
        hit = [p for p in pts if p.time_to_target_s is not None]
        if hit:
            right.errorbar([p.world_size for p in hit], [p.time_to_target_s.mean for p in hit],
                           yerr=[p.time_to_target_s.std for p in hit], fmt="o-", color=f"C{i}", capsize=3,
                           label=_label(arm))
            first = hit[0]
            right.plot(n, [first.time_to_target_s.mean * first.world_size / k for k in n], "--", color=f"C{i}",
                       alpha=0.7, label=f"ideal ({_label(arm)})")
    _ranks_axis(left, ranks, "Time per epoch", "seconds")
    _ranks_axis(right, ranks, "Time to target", "seconds")
    right.set_xlim(left.get_xlim())
    left.legend()
    if right.lines:
        right.legend()
    else:
        right.text(0.5, 0.5, "no run reached the target", transform=right.transAxes, ha="center", va="center",
                   color="#5b6475")
    return png(fig)


def speedup_figure(arms: dict[str, list[Point]]) -> bytes:
    """Speed-up against ranks with the ideal line, and parallel efficiency."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    ranks = _all_ranks(arms)
    base = min(ranks)
    left.plot(ranks, [n / base for n in ranks], "k--", label="ideal (linear)")
    for i, (arm, pts) in enumerate(arms.items()):
        n = [p.world_size for p in pts]
        left.plot(n, [p.speedup for p in pts], "o-", color=f"C{i}", label=_label(arm))
        right.plot(n, [100 * p.efficiency for p in pts], "o-", color=f"C{i}", label=_label(arm))
    right.axhline(100, color="k", linestyle="--")
    top = max((p.efficiency for pts in arms.values() for p in pts), default=1.0)
    right.set_ylim(0, max(110, 105 * top))
    _ranks_axis(left, ranks, "Speed-up (time per epoch)", "speed-up")
    _ranks_axis(right, ranks, "Parallel efficiency", "efficiency %")
    left.legend()
    right.legend()
    return png(fig)


def metric_figure(arms: dict[str, list[Point]], metric: str, target: Target | None) -> bytes:
    """The target metric against ranks, seed spread as error bars, the target dashed."""
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, (arm, pts) in enumerate(arms.items()):
        drawn = [p for p in pts if p.metric is not None]
        # arms side by side (3 % apart on the log axis): equal values would hide one another
        dodge = 2 ** (0.04 * (i - (len(arms) - 1) / 2))
        ax.errorbar([p.world_size * dodge for p in drawn], [p.metric.mean for p in drawn],
                    yerr=[p.metric.std for p in drawn], fmt="o-", color=f"C{i}", capsize=3, label=_label(arm))
    if target is not None:
        ax.axhline(target.threshold, color="C3", linestyle="--", label=f"target {target.mode} {target.threshold:g}")
    _ranks_axis(ax, _all_ranks(arms), f"Validation {metric}", metric)
    ax.legend()
    return png(fig)
