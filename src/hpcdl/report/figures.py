"""The report's figures, rendered to PNG bytes with matplotlib's object API (no pyplot state).

Each function takes validated run data and returns the PNG; the caller decides where it goes
(a separate file for ``snakemake --report`` and a data URI inside the HTML page).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpcdl.report.runs import Run

FIGURE_KINDS = ("loss", "mae", "lr", "throughput")
_SIZE = (6.4, 3.6)
_DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same data gives the same bytes whatever matplotlib build drew them.
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _axes(title: str, ylabel: str, xlabel: str = "epoch"):  # type: ignore[no-untyped-def]
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return fig, ax


def _epochs(run: Run) -> list[float]:
    return [m["epoch"] for m in run.metrics]


def loss(run: Run) -> bytes:
    """Training and validation MSE loss per epoch."""
    fig, ax = _axes("Loss (MSE)", "loss")
    x = _epochs(run)
    ax.plot(x, [m["train_loss"] for m in run.metrics], "o-", label="train")
    ax.plot(x, [m["val_loss"] for m in run.metrics], "s-", label="validation")
    ax.legend()
    return _png(fig)


def mae(run: Run) -> bytes:
    """Validation MAE per epoch against the run's target."""
    fig, ax = _axes("Validation MAE", "mean absolute error")
    ax.plot(_epochs(run), [m["val_mae"] for m in run.metrics], "o-", color="C2", label="validation MAE")
    target = run.summary.get("target_mae")
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        ax.axhline(target, color="C3", linestyle="--", label=f"target {target:g}")
    ax.legend()
    return _png(fig)


def lr(run: Run) -> bytes:
    """Learning rate in force at the end of each epoch."""
    fig, ax = _axes("Learning rate schedule", "learning rate (end of epoch)")
    ax.step(_epochs(run), [m["lr"] for m in run.metrics], "o-", where="post", color="C4")
    ax.set_ylim(bottom=0)
    return _png(fig)


def throughput(run: Run) -> bytes:
    """Global training throughput per epoch, with the typical (median) value the index reports."""
    fig, ax = _axes("Training throughput", "samples / s (all ranks)")
    ax.bar(_epochs(run), [m["samples_per_s"] for m in run.metrics], color="C0", alpha=0.8)
    typical = run.throughput
    if typical is not None:
        ax.axhline(typical, color="C1", linestyle="--", label=f"median {typical:.3g} samples/s")
        ax.legend()
    return _png(fig)


RENDERERS = {"loss": loss, "mae": mae, "lr": lr, "throughput": throughput}


@dataclass(frozen=True)
class ScalingPoint:
    """Mean typical throughput of the runs at one world size, relative to the smallest one."""

    world_size: int
    runs: int
    throughput: float
    speedup: float
    efficiency: float


def scaling_points(runs: list[Run]) -> list[ScalingPoint]:
    """One point per distinct world size (empty when all runs share one)."""
    by_size: dict[int, list[float]] = {}
    for run in runs:
        if run.throughput is not None:
            by_size.setdefault(run.world_size, []).append(run.throughput)
    if len(by_size) < 2:
        return []
    base_n = min(by_size)
    base = sum(by_size[base_n]) / len(by_size[base_n])
    points = []
    for n in sorted(by_size):
        value = sum(by_size[n]) / len(by_size[n])
        speedup = value / base
        points.append(ScalingPoint(n, len(by_size[n]), value, speedup, speedup / (n / base_n)))
    return points


def scaling(points: list[ScalingPoint]) -> bytes:
    """Throughput against ranks with the ideal (linear) line, and parallel efficiency."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    ranks = [p.world_size for p in points]
    base = points[0]
    left.plot(ranks, [p.throughput for p in points], "o-", label="measured")
    left.plot(ranks, [base.throughput * n / base.world_size for n in ranks], "k--", label="ideal (linear)")
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xticks(ranks, [str(n) for n in ranks])
    left.set_title("Throughput vs ranks")
    left.set_xlabel("ranks (world size)")
    left.set_ylabel("samples / s")
    left.legend()
    right.plot(ranks, [100 * p.efficiency for p in points], "o-", color="C2")
    right.axhline(100, color="k", linestyle="--")
    right.set_xscale("log", base=2)
    right.set_xticks(ranks, [str(n) for n in ranks])
    right.set_ylim(0, max(110, 105 * max(p.efficiency for p in points)))
    for p in points:
        right.annotate(f"{p.speedup:.2f}x", (p.world_size, 100 * p.efficiency),
                       textcoords="offset points", xytext=(0, 6), ha="center")
    right.set_title(f"Parallel efficiency (speedup labelled), vs {base.world_size} rank(s)")
    right.set_xlabel("ranks (world size)")
    right.set_ylabel("efficiency %")
    for ax in (left, right):
        ax.grid(True, alpha=0.3, which="both")
    return _png(fig)
