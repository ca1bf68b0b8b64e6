"""The report's figures, rendered to PNG bytes with matplotlib's object API (no pyplot state).

A run's figures depend on its workload: ``loss``, one per other validation metric it declares
(named by the metric's key, e.g. ``val_mae``; the target metric's shows the target), ``lr`` and
``throughput``. :func:`run_figures` returns them with their captions; the caller decides where
the bytes go (a separate file for ``snakemake --report`` and a data URI inside the HTML page).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hpcdl.report.runs import Run

_SIZE = (6.4, 3.6)
_DPI = 110


@dataclass(frozen=True)
class RunFigure:
    """One figure of a run: its name (the file is ``<name>.png``), caption and PNG bytes."""

    name: str
    caption: str
    png: bytes


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same data gives the same bytes whatever matplotlib build drew them.
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _axes(title: str, ylabel: str, xlabel: str = "epoch") -> tuple[Figure, Axes]:
    fig = Figure(figsize=_SIZE, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    return fig, ax


def _target(run: Run, ax: Axes, key: str) -> str:
    """Draw the run's target on ``ax`` when ``key`` is the target metric; the caption's clause."""
    if key != run.target_key:
        return ""
    ax.axhline(run.summary.target["threshold"], color="C3", linestyle="--", label=f"target {run.target_text}")
    return f"; dashed: the run's target ({run.target_text})"


def loss(run: Run) -> RunFigure:
    """Training and validation loss per epoch."""
    fig, ax = _axes("Loss", "loss")
    ax.plot(*run.series("train_loss"), "o-", label="train")
    if "val_loss" in run.summary.metric_names:
        ax.plot(*run.series("val_loss"), "s-", label="validation")
    clause = _target(run, ax, "val_loss")
    ax.legend()
    return RunFigure("loss", f"Training and validation loss per epoch{clause}.", png(fig))


def metric(run: Run, key: str) -> RunFigure:
    """The validation metric ``key`` (``val_<name>``) per epoch, against the target if it is one."""
    name = key.removeprefix("val_")
    fig, ax = _axes(f"Validation {name}", name)
    ax.plot(*run.series(key), "o-", color="C2", label=f"validation {name}")
    clause = _target(run, ax, key)
    ax.legend()
    return RunFigure(key, f"Validation {name} per epoch{clause}.", png(fig))


def lr(run: Run) -> RunFigure:
    """Learning rate in force at the end of each epoch."""
    fig, ax = _axes("Learning rate schedule", "learning rate (end of epoch)")
    ax.step(*run.series("lr"), "o-", where="post", color="C4")
    ax.set_ylim(bottom=0)
    return RunFigure("lr", "Learning rate in force at the end of each epoch.", png(fig))


def throughput(run: Run) -> RunFigure:
    """Global training throughput per epoch, with the typical (median) value the index reports."""
    fig, ax = _axes("Training throughput", "samples / s (all ranks)")
    ax.bar(*run.series("samples_per_s"), color="C0", alpha=0.8)
    typical = run.throughput
    if typical is not None:
        ax.axhline(typical, color="C1", linestyle="--", label=f"median {typical:.3g} samples/s")
        ax.legend()
    return RunFigure("throughput", "Global training throughput per epoch; dashed: the median "
                     "(first epoch excluded).", png(fig))


def run_figures(run: Run) -> list[RunFigure]:
    """Every figure of ``run``, in page order: loss, the other declared metrics, lr, throughput."""
    metrics = [key for key in dict.fromkeys(run.summary.metric_names) if key != "val_loss"]
    return [loss(run), *(metric(run, key) for key in metrics), lr(run), throughput(run)]
