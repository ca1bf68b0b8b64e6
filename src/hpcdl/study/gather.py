"""The study's runs from their records (``run.json``, ``metrics.jsonl``): one :class:`Measured`
per finished run, one :class:`Missing` per run that failed or did not finish.

A run is measured by its world size (``run.json``), its seed (its spec's ``train.seed``), its
typical time per epoch (median ``epoch_time_s``, leaving out the first epoch, which pays for
start-up, whenever there are later ones), its time to target (``elapsed_s`` of the first epoch
whose validation metric reaches the run's target) and its final value of the target metric.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from hpcdl import records
from hpcdl.records import RecordError
from hpcdl.report.runs import Run, load_run
from hpcdl.workloads import Target


@dataclass(frozen=True)
class Measured:
    """A finished run of arm ``arm``."""

    arm: str
    name: str
    directory: Path
    world_size: int
    seed: int
    status: str
    epochs: int
    epoch_time_s: float
    time_to_target_s: float | None
    metric: str
    metric_value: float | None
    target: Target


@dataclass(frozen=True)
class Missing:
    """A run that failed (diverged) or left no readable ``run.json``; ``reason`` says which."""

    arm: str
    directory: Path
    epochs: int
    reason: str


def time_to_target(run: Run) -> float | None:
    """``elapsed_s`` of the first epoch that reached the target; ``None`` when none did."""
    t = run.summary.target
    target = Target(t["metric"], t["mode"], float(t["threshold"]))
    for e in run.epochs:
        value = e.metrics.get(run.target_key)
        if value is not None and target.reached(value):
            return e.elapsed_s
    return None


def epoch_time(run: Run) -> float:
    """Median epoch time, the first epoch left out whenever there are later ones."""
    values = [e.epoch_time_s for e in run.epochs]
    return statistics.median(values[1:] if len(values) > 1 else values)


def measure(arm: str, run: Run) -> Measured:
    """The study's numbers of one finished run; :class:`RecordError` when its spec has no seed."""
    seed = (run.summary.spec.get("train") or {}).get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecordError(f"{run.directory / records.SUMMARY}: spec has no integer train.seed")
    t = run.summary.target
    return Measured(arm, run.name, run.directory, run.world_size, seed, run.summary.status,
                    run.summary.epochs_run, epoch_time(run), time_to_target(run), t["metric"],
                    run.epochs[-1].metrics.get(run.target_key),
                    Target(t["metric"], t["mode"], float(t["threshold"])))


def _epochs_recorded(directory: Path) -> int:
    try:
        return len(records.read_epochs(directory))
    except RecordError:
        return 0


def gather(arms: dict[str, list[Path]]) -> tuple[list[Measured], list[Missing]]:
    """Every run directory of every arm, measured or listed as missing (never dropped)."""
    measured, missing = [], []
    for arm, directories in arms.items():
        for directory in directories:
            try:
                run = load_run(directory)
                if run.summary.status == "diverged":
                    missing.append(Missing(arm, directory, len(run.epochs),
                                           "diverged (non-finite training loss)"))
                    continue
                measured.append(measure(arm, run))
            except RecordError as exc:
                missing.append(Missing(arm, directory, _epochs_recorded(directory), f"did not finish: {exc}"))
    return measured, missing
