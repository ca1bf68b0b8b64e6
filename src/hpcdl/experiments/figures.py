"""An experiment's figures as PNG bytes (matplotlib's object API): every arm in its own colour,
against the number of ranks (GPUs) on a log2 axis, or per epoch. Error bars are mean ± sample std
over seeds, bands min to max over seeds; dashed lines are the ideal (linear speed-up from the
arm's smallest world size).
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpcdl.experiments.stats import BandPoint, Point, Spread
from hpcdl.report.figures import png
from hpcdl.workloads import Target

TIME_CAPTION = ("Time per epoch (median per run, first epoch excluded), time to target (runs that reached it) and "
                "throughput against ranks: mean ± sample std over seeds; dashed: ideal, linear from the smallest "
                "world size.")
SPEEDUP_CAPTION = ("Left: speed-up of the mean time per epoch against ranks, relative to the smallest world size; "
                   "dashed: ideal (linear). Right: parallel efficiency, speed-up over ideal speed-up.")
METRIC_CAPTION = "Final {what} against ranks: mean ± sample std over seeds (error bars); dashed: the target."
CURVE_CAPTION = "{what} per epoch: mean over seeds (line), min to max over seeds (band)."


def _ranks_axis(ax: Axes, ranks: list[int], title: str, ylabel: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks, [str(n) for n in ranks])
    ax.minorticks_off()
    ax.set(title=title, xlabel="ranks (GPUs)", ylabel=ylabel)
    ax.grid(True, alpha=0.3)


def _all_ranks(arms: dict[str, list[Point]]) -> list[int]:
    return sorted({p.world_size for pts in arms.values() for p in pts})


def _bars(ax: Axes, i: int, arm: str, pts: list[Point], value, ideal: bool, dodge: float = 1.0) -> None:
    """``value(p)``'s spread at each point with error bars, and its ideal line (``ideal``: time
    falls, throughput rises linearly with the ranks)."""
    drawn = [(p, s) for p in pts if (s := value(p)) is not None]
    if not drawn:
        return
    n = [p.world_size for p, _ in drawn]
    ax.errorbar([k * dodge for k in n], [s.mean for _, s in drawn], yerr=[s.std for _, s in drawn], fmt="o-",
                color=f"C{i}", capsize=3, label=arm)
    if len(drawn) > 1 and ideal is not None:
        (p0, s0) = drawn[0]
        scale = (lambda k: p0.world_size / k) if ideal else (lambda k: k / p0.world_size)
        ax.plot(n, [s0.mean * scale(k) for k in n], "--", color=f"C{i}", alpha=0.7, label=f"ideal ({arm})")


def time_figure(arms: dict[str, list[Point]]) -> bytes:
    """Time per epoch, time to target and throughput against ranks, with their ideal lines."""
    fig = Figure(figsize=(14, 3.8), layout="constrained")
    left, middle, right = fig.subplots(1, 3)
    ranks = _all_ranks(arms)
    for i, (arm, pts) in enumerate(arms.items()):
        _bars(left, i, arm, pts, lambda p: p.epoch_time_s, True)
        _bars(middle, i, arm, pts, lambda p: p.time_to_target_s, True)
        _bars(right, i, arm, pts, lambda p: p.throughput, False)
    _ranks_axis(left, ranks, "Time per epoch", "seconds")
    _ranks_axis(middle, ranks, "Time to target", "seconds")
    _ranks_axis(right, ranks, "Throughput", "samples / s (all ranks)")
    middle.set_xlim(left.get_xlim())
    for ax in (left, middle, right):
        if ax.lines:
            ax.legend(fontsize="small")
    if not middle.lines:
        middle.text(0.5, 0.5, "no run reached the target", transform=middle.transAxes, ha="center", va="center",
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
        left.plot(n, [p.speedup for p in pts], "o-", color=f"C{i}", label=arm)
        right.plot(n, [100 * p.efficiency for p in pts], "o-", color=f"C{i}", label=arm)
    right.axhline(100, color="k", linestyle="--")
    top = max((p.efficiency for pts in arms.values() for p in pts), default=1.0)
    right.set_ylim(0, max(110, 105 * top))
    _ranks_axis(left, ranks, "Speed-up (time per epoch)", "speed-up")
    _ranks_axis(right, ranks, "Parallel efficiency", "efficiency %")
    left.legend()
    right.legend()
    return png(fig)


def metric_figure(arms: dict[str, list[Point]], keys: list[str], target: Target | None) -> bytes:
    """Each final metric of ``keys`` against ranks, seed spread as error bars, the target dashed."""
    fig = Figure(figsize=(6.4 * len(keys), 3.8), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        for i, (arm, pts) in enumerate(arms.items()):
            # arms side by side (3 % apart on the log axis): equal values would hide one another
            dodge = 2 ** (0.04 * (i - (len(arms) - 1) / 2))
            _bars(ax, i, arm, pts, lambda p: p.finals.get(key), None, dodge)
        if target is not None and key.endswith(f"_{target.metric}"):
            ax.axhline(target.threshold, color="C3", linestyle="--", label=f"target {target.mode} {target.threshold:g}")
        _ranks_axis(ax, _all_ranks(arms), metric_name(key), key)
        if ax.lines:
            ax.legend(fontsize="small")
    return png(fig)


def metric_name(key: str) -> str:
    """``val_accuracy`` -> ``validation accuracy``; ``gap_loss`` -> ``train − validation loss``."""
    for prefix, words in (("val_", "validation"), ("test_", "test"), ("trainset_", "training-set"),
                          ("gap_", "train − validation")):
        if key.startswith(prefix):
            return f"{words} {key.removeprefix(prefix)}"
    return key


def curve_figure(bands: dict[str, list[BandPoint]], key: str, colours: dict[str, int]) -> bytes:
    """The metric ``key`` per epoch: per line (arm, or arm at a point) the mean and its min–max band."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.set(title=metric_name(key).capitalize(), xlabel="epoch", ylabel=metric_name(key))
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    styles = ["o-", "s--", "^:", "d-."]
    seen: dict[int, int] = {}
    for label, pts in bands.items():
        colour = colours[label]
        style = styles[seen.get(colour, 0) % len(styles)]
        seen[colour] = seen.get(colour, 0) + 1
        epochs = [p.epoch for p in pts]
        ax.plot(epochs, [p.mean for p in pts], style, color=f"C{colour}", label=label)
        ax.fill_between(epochs, [p.min for p in pts], [p.max for p in pts], color=f"C{colour}", alpha=0.2,
                        linewidth=0)
    if key.startswith("gap_"):
        ax.axhline(0, color="k", linewidth=0.8)
    ax.legend(fontsize="small")
    return png(fig)


def spread_text(s: Spread | None, unit: str = "") -> str:
    """``1.234 ± 0.05678 s`` (mean ± sample std); an em dash for none."""
    return "—" if s is None else f"{s.mean:.4g} ± {s.std:.4g}{unit}"
