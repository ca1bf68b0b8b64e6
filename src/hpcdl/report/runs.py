"""Reading one training run directory (``run.json`` + ``metrics.jsonl``) into a typed record.

Everything is validated here, so the figures and pages can trust the values: a problem raises
:class:`RunError` whose message names the file (and line) and the reason.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run names become file names (OUT/<name>.html, OUT/<name>/...): keep them to one safe component.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
METRIC_KEYS = ("epoch", "train_loss", "val_loss", "val_mae", "lr", "samples_per_s", "epoch_time_s", "elapsed_s")
SUMMARY_KEYS = ("run_name", "status", "epochs_run", "time_to_train_s", "world_size")


class RunError(ValueError):
    """A run directory that cannot be reported; the message names the file and the reason."""


@dataclass(frozen=True)
class Run:
    """One completed training run."""

    directory: Path
    summary: dict[str, Any]
    metrics: list[dict[str, float]]

    @property
    def name(self) -> str:
        return str(self.summary["run_name"])

    @property
    def world_size(self) -> int:
        return int(self.summary["world_size"])

    @property
    def throughput(self) -> float | None:
        """Typical training throughput (samples/s): the median over epochs, leaving out the first
        (start-up: allocator, caches, lazy init) whenever there are later ones."""
        values = [m["samples_per_s"] for m in self.metrics]
        if len(values) > 1:
            values = values[1:]
        return statistics.median(values) if values else None


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(f"{path}: missing ({what})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: malformed JSON: {exc}") from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_metrics(path: Path) -> list[dict[str, float]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RunError(f"{path}: missing (per-epoch metrics)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable: {exc}") from None
    rows: list[dict[str, float]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RunError(f"{path}:{number}: malformed JSON: {exc}") from None
        if not isinstance(row, dict):
            raise RunError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        bad = [k for k in METRIC_KEYS if not _number(row.get(k))]
        if bad:
            raise RunError(f"{path}:{number}: missing or non-numeric {', '.join(bad)}")
        rows.append({k: float(row[k]) for k in METRIC_KEYS})
    if not rows:
        raise RunError(f"{path}: no epochs recorded")
    return rows


def load_run(directory: Path) -> Run:
    """Read and validate ``directory``; raise :class:`RunError` on the first problem."""
    path = directory / "run.json"
    summary = _read_json(path, "the run's done-marker")
    if not isinstance(summary, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(summary).__name__}")
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise RunError(f"{path}: missing {', '.join(missing)}")
    name = summary["run_name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RunError(f"{path}: run_name {name!r} is not a plain name (letters, digits, _ . -)")
    if not isinstance(summary["world_size"], int) or summary["world_size"] < 1:
        raise RunError(f"{path}: world_size {summary['world_size']!r} is not a positive integer")
    if not _number(summary["time_to_train_s"]):
        raise RunError(f"{path}: time_to_train_s {summary['time_to_train_s']!r} is not a number")
    return Run(directory, summary, _load_metrics(directory / "metrics.jsonl"))
