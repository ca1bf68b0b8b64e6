"""Reading one training run directory (``run.json`` + ``metrics.jsonl``) into a typed :class:`Run`.

The records are read and validated by :mod:`hpcdl.records`; on top of that, the metric names the
report turns into file names are checked to be plain ``val_`` names. Every problem raises
:class:`~hpcdl.records.RecordError` whose message names the file (and line) and the reason.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from hpcdl import records
from hpcdl.records import EpochRecord, RecordError, RunSummary


def typical_throughput(epochs: list[EpochRecord]) -> float | None:
    """Typical training throughput (samples/s): the median over epochs, leaving out the first
    (start-up: allocator, caches, lazy init) whenever there are later ones."""
    values = [e.samples_per_s for e in epochs]
    if len(values) > 1:
        values = values[1:]
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class Run:
    """One completed training run: its summary and its epochs, in order."""

    directory: Path
    summary: RunSummary
    epochs: list[EpochRecord]

    @property
    def name(self) -> str:
        return self.summary.run_name

    @property
    def world_size(self) -> int:
        return self.summary.world_size

    @property
    def target_key(self) -> str:
        """The key of the target metric among the validation metrics, e.g. ``val_mae``."""
        return self.summary.target_key

    @property
    def target_text(self) -> str:
        """The target as direction and threshold, e.g. ``min ≤ 0.124``."""
        target = self.summary.target
        return f"{target['mode']} {'≤' if target['mode'] == 'min' else '≥'} {target['threshold']:g}"

    @property
    def throughput(self) -> float | None:
        """Typical training throughput (samples/s), see :func:`typical_throughput`."""
        return typical_throughput(self.epochs)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Epochs and values of ``train_loss``, ``lr``, ``samples_per_s`` or a validation metric
        (``val_<name>``); epochs without a finite value (a diverged run) are left out."""
        points = []
        for e in self.epochs:
            value = getattr(e, key) if key in ("train_loss", "lr", "samples_per_s") else e.metrics.get(key)
            if value is not None:
                points.append((e.epoch, value))
        return [p[0] for p in points], [p[1] for p in points]


def load_run(directory: Path) -> Run:
    """Read and validate ``directory``; raise :class:`RecordError` on the first problem."""
    summary = records.read_summary(directory)
    path = directory / records.SUMMARY
    names = summary.metric_names
    if not isinstance(names, list) or not all(
            isinstance(n, str) and n.startswith("val_") and records.NAME.fullmatch(n) for n in names):
        raise RecordError(f"{path}: metric_names {names!r} is not a list of plain val_<name> names "
                          "(letters, digits, _ . -)")
    if summary.mlperf_benchmark is not None and not isinstance(summary.mlperf_benchmark, str):
        raise RecordError(f"{path}: mlperf_benchmark {summary.mlperf_benchmark!r} is neither a name nor null")
    return Run(directory, summary, records.read_epochs(directory))
