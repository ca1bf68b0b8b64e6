"""Run records: the contract between ``hpcdl train`` (writer) and ``hpcdl report`` / studies (readers).

A run directory holds

* ``spec.json``: the run's whole settings (:mod:`hpcdl.train.spec`);
* ``metrics.jsonl``: one :class:`EpochRecord` per completed epoch;
* ``run.json``: the :class:`RunSummary`, written last as the done-marker;
* ``mllog.txt``: the MLPerf log; ``checkpoint.pt``: the last checkpoint.

Both records are read back through :meth:`from_json`, which checks every key and type and names
the file (and line) in its :class:`RecordError`, so readers can trust the values.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC = "spec.json"
METRICS = "metrics.jsonl"
SUMMARY = "run.json"
MLLOG = "mllog.txt"
CHECKPOINT = "checkpoint.pt"
# success: target reached; aborted: out of epochs; stopped: no validation-loss gain for
# train.patience epochs (early stopping); diverged: a non-finite training loss.
STATUSES = ("success", "aborted", "stopped", "diverged")
# Run names become file names (report pages, figure folders): one safe path component.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class RecordError(ValueError):
    """A record that cannot be read; the message names the file (and line) and the reason."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class EpochRecord:
    """One completed epoch. ``metrics`` holds the validation metrics (``val_<name>``) and, when
    ``train.train_eval_samples`` is set, the same metrics over that many clean (unaugmented)
    training samples (``trainset_<name>``); non-finite values (a diverged run) are JSON ``null``."""

    epoch: int
    train_loss: float | None
    lr: float
    samples_per_s: float
    epoch_time_s: float
    elapsed_s: float
    metrics: dict[str, float | None]

    def to_json(self) -> str:
        def clean(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        data = dataclasses.asdict(self)
        data["train_loss"] = clean(self.train_loss)
        data["metrics"] = {k: clean(v) for k, v in self.metrics.items()}
        return json.dumps(data)

    @classmethod
    def from_json(cls, row: Any, where: str) -> EpochRecord:
        if not isinstance(row, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
        keys = ("epoch", "lr", "samples_per_s", "epoch_time_s", "elapsed_s")
        bad = [k for k in keys if not _number(row.get(k))]
        metrics = row.get("metrics")
        if not isinstance(metrics, dict) or not all(v is None or _number(v) for v in metrics.values()):
            bad.append("metrics")
        if row.get("train_loss") is not None and not _number(row.get("train_loss")):
            bad.append("train_loss")
        if bad:
            raise RecordError(f"{where}: missing or non-numeric {', '.join(bad)}")
        return cls(int(row["epoch"]), row.get("train_loss"), *(float(row[k]) for k in keys[1:]),
                   metrics=dict(metrics))


@dataclass(frozen=True)
class RunSummary:
    """The outcome of a run. ``target`` is ``{metric, mode, threshold}`` over the validation
    metric ``val_<metric>``; ``best``/``final`` are that metric's best and last values.

    ``test`` holds the workload's metrics over the data's ``test/`` split with the final weights
    (``test_<name>``; empty without a test split). ``tallies`` holds the workload's summed tables
    per split with the final weights, e.g. ``{"validation": {"confusion": [[...]]}}`` (rows: true
    class, columns: predicted). Both are absent from runs of older versions, hence defaults.
    """

    run_name: str
    workload: str
    status: str
    target: dict[str, Any]
    best: float | None
    final: float | None
    epochs_run: int
    time_to_train_s: float
    staging_s: float
    world_size: int
    local_world_size: int
    nodes: int
    launcher: str
    device: str
    global_batch_size: int
    train_samples: int
    eval_samples: int
    parameters: int
    metric_names: list[str]
    mlperf_benchmark: str | None
    spec: dict[str, Any]
    test: dict[str, float] = dataclasses.field(default_factory=dict)
    tallies: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: Any, where: str) -> RunSummary:
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(data).__name__}")
        fields = dataclasses.fields(cls)
        names = [f.name for f in fields if f.name in data or f.default_factory is dataclasses.MISSING]
        missing = [k for k in names if k not in data]
        if missing:
            raise RecordError(f"{where}: missing {', '.join(missing)}")
        if not isinstance(data["run_name"], str) or not NAME.fullmatch(data["run_name"]):
            raise RecordError(f"{where}: run_name {data['run_name']!r} is not a plain name (letters, digits, _ . -)")
        if data["status"] not in STATUSES:
            raise RecordError(f"{where}: status {data['status']!r} is not one of {', '.join(STATUSES)}")
        if not isinstance(data["world_size"], int) or data["world_size"] < 1:
            raise RecordError(f"{where}: world_size {data['world_size']!r} is not a positive integer")
        if not _number(data["time_to_train_s"]):
            raise RecordError(f"{where}: time_to_train_s {data['time_to_train_s']!r} is not a number")
        target = data["target"]
        if not (isinstance(target, dict) and isinstance(target.get("metric"), str)
                and target.get("mode") in ("min", "max") and _number(target.get("threshold"))):
            raise RecordError(f"{where}: target {target!r} is not {{metric, mode: min|max, threshold}}")
        test = data.get("test", {})
        if not isinstance(test, dict) or not all(isinstance(k, str) and _number(v) for k, v in test.items()):
            raise RecordError(f"{where}: test {test!r} is not an object of finite numbers")
        if not isinstance(data.get("tallies", {}), dict):
            raise RecordError(f"{where}: tallies {data['tallies']!r} is not an object")
        return cls(**{k: data[k] for k in names})

    @property
    def target_key(self) -> str:
        """The ``metrics`` key of the target metric in the epoch records."""
        return f"val_{self.target['metric']}"


def read_json(path: Path, what: str) -> Any:
    """Parsed JSON of ``path``; :class:`RecordError` naming the file when missing or malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path}: missing ({what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: malformed JSON: {exc}") from None


def read_summary(run_dir: Path) -> RunSummary:
    """The validated ``run.json`` of ``run_dir``."""
    path = run_dir / SUMMARY
    return RunSummary.from_json(read_json(path, "the run's done-marker"), str(path))


def read_epochs(run_dir: Path) -> list[EpochRecord]:
    """The validated ``metrics.jsonl`` of ``run_dir`` (at least one epoch)."""
    path = run_dir / METRICS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RecordError(f"{path}: missing (per-epoch metrics)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable: {exc}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}:{number}: malformed JSON: {exc}") from None
        rows.append(EpochRecord.from_json(row, f"{path}:{number}"))
    if not rows:
        raise RecordError(f"{path}: no epochs recorded")
    return rows
