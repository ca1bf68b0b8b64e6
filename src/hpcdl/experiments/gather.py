"""An experiment's runs from their records (``run.json``, ``metrics.jsonl``): one :class:`Measured`
per finished run, one :class:`Missing` per run that failed or did not finish.

A run is measured by its point (world size or system), its seed (its spec's ``train.seed``), its
typical time per epoch and throughput (medians, leaving out the first epoch, which pays for
start-up, whenever there are later ones), its time to target (``elapsed_s`` of the first epoch
whose validation metric reaches the run's target), and every metric its records hold: the last
epoch's validation and clean-training (``trainset_``) metrics, the test metrics measured once
with the final weights, and for each metric recorded on both training and validation data the
gap between them (``gap_<name>``: training minus validation).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from hpcdl import records
from hpcdl.records import EpochRecord, RecordError
from hpcdl.report.runs import Run, load_run
from hpcdl.workloads import Target

TRAINSET = "trainset_"
VAL = "val_"
GAP = "gap_"


@dataclass(frozen=True)
class Measured:
    """A finished run of arm ``arm`` at point ``point`` (``w<N>`` or a system's name)."""

    arm: str
    name: str
    directory: Path
    point: str
    world_size: int
    seed: int
    status: str
    epochs: int
    epoch_time_s: float
    throughput: float | None
    time_to_target_s: float | None
    time_to_train_s: float
    metric: str
    target: Target
    workload: str
    benchmark: str | None
    finals: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Missing:
    """A run that failed (diverged) or left no readable ``run.json``; ``reason`` says which."""

    arm: str
    directory: Path
    epochs: int
    reason: str


def _target(run: Run) -> Target:
    t = run.summary.target
    return Target(t["metric"], t["mode"], float(t["threshold"]))


def time_to_target(run: Run) -> float | None:
    """``elapsed_s`` of the first epoch that reached the target; ``None`` when none did."""
    target = _target(run)
    for e in run.epochs:
        value = e.metrics.get(run.target_key)
        if value is not None and target.reached(value):
            return e.elapsed_s
    return None


def epoch_time(run: Run) -> float:
    """Median epoch time, the first epoch left out whenever there are later ones."""
    values = [e.epoch_time_s for e in run.epochs]
    return statistics.median(values[1:] if len(values) > 1 else values)


def _epoch_values(e: EpochRecord) -> dict[str, float]:
    """An epoch's finite metrics, with the training-minus-validation gap of each pair."""
    values = {k: v for k, v in e.metrics.items() if v is not None and k.startswith((VAL, TRAINSET))}
    for key in [k for k in values if k.startswith(TRAINSET)]:
        name = key.removeprefix(TRAINSET)
        if VAL + name in values:
            values[GAP + name] = values[key] - values[VAL + name]
    return values


def point_of(run: Run) -> str:
    """The point a run name ``<workload>-<experiment>-<arm>-<point>-s<k>`` holds, else ``w<N>``."""
    parts = run.name.split("-")
    return parts[-2] if len(parts) >= 5 and parts[-1].startswith("s") else f"w{run.world_size}"


def measure(arm: str, run: Run) -> Measured:
    """The numbers of one finished run; :class:`RecordError` when its spec has no seed."""
    seed = (run.summary.spec.get("train") or {}).get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecordError(f"{run.directory / records.SUMMARY}: spec has no integer train.seed")
    curves: dict[str, dict[int, float]] = {}
    for e in run.epochs:
        for key, value in _epoch_values(e).items():
            curves.setdefault(key, {})[e.epoch] = value
    finals = _epoch_values(run.epochs[-1]) if run.epochs else {}
    finals.update({k: v for k, v in run.summary.test.items() if isinstance(v, (int, float))})
    s = run.summary
    return Measured(arm, run.name, run.directory, point_of(run), run.world_size, seed, s.status, s.epochs_run,
                    epoch_time(run), run.throughput, time_to_target(run), s.time_to_train_s, s.target["metric"],
                    _target(run), s.workload, s.mlperf_benchmark, finals, curves)


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
                    missing.append(Missing(arm, directory, len(run.epochs), "diverged (non-finite training loss)"))
                    continue
                if not run.epochs:
                    raise RecordError(f"{directory / records.METRICS}: no epoch recorded")
                measured.append(measure(arm, run))
            except RecordError as exc:
                missing.append(Missing(arm, directory, _epochs_recorded(directory), f"did not finish: {exc}"))
    return measured, missing
