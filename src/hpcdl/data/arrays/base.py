"""What every reader of ``hpcdl arrays`` hands back, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ArraysError(ValueError):
    """Input that cannot become arrays; the message names the file (and row) and the reason."""


@dataclass(frozen=True)
class Loaded:
    """A dataset's official splits: ``split -> (images uint8 N,C,H,W, labels int64 N, the file
    the labels came from)``, its class names (a label is an index into them) and every source
    file read (the manifest records their checksums)."""

    splits: dict[str, tuple[np.ndarray, np.ndarray, Path]]
    classes: list[str]
    sources: list[Path]
