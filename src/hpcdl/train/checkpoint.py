"""The per-epoch checkpoint ``RUN/checkpoint.pt`` (written atomically by rank 0), and when a run
may resume from it.

Holds model and optimizer state, the number of completed epochs, the best target metric, the
elapsed training time, the metrics and MLPerf log lines so far, and the run's *fingerprint*:
the workload, every setting that changes what is computed (``settings.held``: not the epoch
limit, worker counts or MLPerf labels), the world size and the inventory of the data (sample
counts, bytes, a digest of the file names). A run resumes only when its fingerprint equals the
checkpoint's. Randomness needs no saved state: shuffling and dropout are re-seeded from
``(seed, epoch, rank)`` at the start of each epoch, so restoring the epoch restores every rank's
random streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hpcdl import settings
from hpcdl.atomic import atomic_open
from hpcdl.train.inventory import SplitInventory
from hpcdl.train.spec import RunSpec

NAME = "checkpoint.pt"


class ResumeError(ValueError):
    """A checkpoint this run must not continue from; the message says what to do."""


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``path``."""
    with atomic_open(path) as handle:
        torch.save(state, handle)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` onto the CPU; :class:`ResumeError` if unreadable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file (pickle, zip, EOF, ...)
        raise ResumeError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc});"
                          " delete it to start the run again") from None
    if not isinstance(state, dict):
        raise ResumeError(f"{path}: not a training checkpoint; delete it to start the run again")
    return state


def fingerprint(spec: RunSpec, world_size: int, data: Mapping[str, SplitInventory]) -> dict[str, Any]:
    """Everything a resumed run must share with the run that wrote the checkpoint."""
    return {
        "workload": spec.workload,
        "train": settings.held(spec.train),
        "params": settings.held(spec.params),
        "world_size": world_size,
        "data": {split: inv.as_dict() for split, inv in data.items()},
    }


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``key saved -> now`` for every value that differs (``absent`` for a missing key)."""
    a, b = _flat(saved), _flat(now)
    return [f"{k} {a.get(k, 'absent')!r} -> {b.get(k, 'absent')!r}" for k in sorted(a.keys() | b.keys())
            if a.get(k, "absent") != b.get(k, "absent")]


def check_resumable(path: Path, state: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Raise :class:`ResumeError` unless ``state`` was written by a run with fingerprint ``now``."""
    saved = state.get("fingerprint")
    if saved is None:
        raise ResumeError(f"{path}: the checkpoint has no run fingerprint; delete it to start the run again")
    diff = differences(saved, now)
    if diff:
        raise ResumeError(f"{path} was written by a different run ({'; '.join(diff)}); restore those"
                          " settings and data, or delete the checkpoint to start the run again")
