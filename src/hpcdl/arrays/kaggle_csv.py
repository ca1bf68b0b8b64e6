"""The Kaggle digit-recognizer CSV: a header ``label,pixel0,...,pixel783``, then one 28x28
grayscale image per row, its label first. Every value is checked; an error names the file, the
line and the column."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from hpcdl.arrays.base import ArraysError, Loaded

SIDE = 28
HEADER = ["label", *(f"pixel{i}" for i in range(SIDE * SIDE))]


def read(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels of one CSV."""
    images, labels = [], []
    try:
        with path.open(newline="") as handle:
            rows = csv.reader(handle)
            if next(rows, None) != HEADER:
                raise ArraysError(f"{path}:1: expected the header label,pixel0,...,pixel{SIDE * SIDE - 1}")
            for line, row in enumerate(rows, 2):
                if len(row) != len(HEADER):
                    raise ArraysError(f"{path}:{line}: {len(row) - 1} pixels, expected {SIDE * SIDE}")
                try:
                    values = [int(v) for v in row]
                except ValueError:
                    column = next(i for i, v in enumerate(row) if not v.strip().lstrip("-").isdigit())
                    raise ArraysError(f"{path}:{line}: {HEADER[column]} {row[column]!r} is not an integer") from None
                if not 0 <= values[0] < classes:
                    raise ArraysError(f"{path}:{line}: label {values[0]} is outside 0..{classes - 1}")
                bad = next((i for i, v in enumerate(values[1:], 1) if not 0 <= v <= 255), None)
                if bad is not None:
                    raise ArraysError(f"{path}:{line}: {HEADER[bad]} {values[bad]} is outside 0..255")
                labels.append(values[0])
                images.append(values[1:])
    except (OSError, UnicodeDecodeError) as exc:
        raise ArraysError(f"{path}: unreadable ({exc})") from None
    if not images:
        raise ArraysError(f"{path}: no rows")
    return np.array(images, np.uint8).reshape(-1, 1, SIDE, SIDE), np.array(labels, np.int64)


def load(train: Path, classes: list[str], test: Path | None = None) -> Loaded:
    """The training CSV, and the test CSV when given (with labels; Kaggle's own test.csv has none)."""
    splits = {"train": (*read(train, len(classes)), train)}
    if test is not None:
        splits["test"] = (*read(test, len(classes)), test)
    return Loaded(splits, [train, *([test] if test else [])])
