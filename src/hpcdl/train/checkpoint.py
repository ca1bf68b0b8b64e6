"""The per-epoch checkpoint ``RUN/checkpoint.pt`` (written atomically by rank 0).

Holds model and optimizer state, the number of completed epochs, the best validation MAE, the
elapsed training time and the metrics so far. Randomness needs no saved state: shuffling and
dropout are re-seeded from ``(seed, epoch, rank)`` at the start of each epoch, so restoring the
epoch restores every rank's random streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hpcdl.atomic import atomic_open

NAME = "checkpoint.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    """Atomically write ``state`` to ``path``."""
    with atomic_open(path) as handle:
        torch.save(state, handle)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)
